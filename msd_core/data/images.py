"""Every image goes through here: any size, any format and any mode PIL opens in, a
``3 x S x S`` uint8 tensor out. Normalisation to floats happens in the model's input,
so a zero (``mask``) image is the data mean of the normalisation.

Modes: ``1``, ``L``, ``P``, ``RGB``, ``RGBX``, ``CMYK``, ``YCbCr``, ``LAB`` and ``HSV``
are converted by PIL; transparency (``LA``, ``La``, ``PA``, ``RGBA``, ``RGBa``, a ``P``
or ``L``/``RGB`` image with a transparent colour) is composited on white. Deeper
grayscale is brought to 8 bit first: ``I;16``/``I;16B``/``I;16L`` always by 1/257,
``I`` (32-bit) by 1/257 when any value is above 255 (else as is), and ``F`` (float)
by 255 when every value lies in 0..1, else clipped to 0..255 (NaN becomes 0).

Size: ``open_checked`` refuses an image whose header says it has more than
``max_pixels`` pixels (0: no limit) before decoding it; PIL's own decompression-bomb
check is off while we open and decode, so this limit is the one that applies. An
image above ``LARGE_IMAGE_PIXELS`` is decoded at reduced scale where the format allows
(JPEG ``draft``) and box-reduced (``Image.reduce``) before the final resize.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..config import DataConfig
from ..errors import DataError
from .image_cache import ImageCache

# Mean/std of ImageNet, applied by ``normalize``.
IMAGE_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGE_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

# For callers without a DataConfig: its default (PIL's own limit).
DEFAULT_MAX_IMAGE_PIXELS = DataConfig.max_image_pixels
# Images with more pixels are decoded at reduced scale where possible.
LARGE_IMAGE_PIXELS = 4096 * 4096
MAX_PIXELS_FLAG = "--max-image-pixels"

_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class ImageTooLarge(Exception):
    """An image whose header gives more pixels than the limit; ``str`` says size, limit and flag."""


def _to_8bit_gray(img: Image.Image) -> Image.Image:
    """``I;16*``, ``I`` or ``F`` -> ``L`` by the rule in the module docstring."""
    a = np.asarray(img)
    if img.mode.startswith("I;16"):
        a = a.astype(np.float64) / 257.0
    elif img.mode == "I":
        a = a.astype(np.float64)
        if a.size and a.max() > 255:
            a = a / 257.0
    else:  # F
        a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if a.size and a.min() >= 0.0 and a.max() <= 1.0:
            a = a * 255.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def to_rgb_array(img: Image.Image, size: int) -> np.ndarray:
    """``img`` in any PIL mode as ``size x size x 3`` uint8 (see the module docstring)."""
    if img.mode.startswith("I") or img.mode == "F":
        img = _to_8bit_gray(img)
    if img.mode in _ALPHA_MODES or ("transparency" in img.info and img.mode in ("P", "L", "RGB", "1")):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


_limit_lock = threading.Lock()
_limit_users = 0
_saved_limit = Image.MAX_IMAGE_PIXELS


@contextmanager
def _pil_bomb_check_off() -> Iterator[None]:
    """PIL's decompression-bomb check off while we open and decode (ours applies instead)."""
    global _limit_users, _saved_limit
    with _limit_lock:
        if _limit_users == 0:
            _saved_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _limit_users += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _saved_limit


def too_large(width: int, height: int, max_pixels: int) -> str | None:
    """Why a ``width x height`` image is over ``max_pixels`` (0: no limit), or None."""
    if max_pixels and width * height > max_pixels:
        return (f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}; "
                f"raise {MAX_PIXELS_FLAG} (0: no limit) to read it")
    return None


@contextmanager
def open_checked(path: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, size: int | None = None
                 ) -> Iterator[Image.Image]:
    """Open ``path`` lazily, refuse it (``ImageTooLarge``) when over ``max_pixels``, and decode
    it, at reduced scale when it is large and ``size`` (the target side) allows."""
    with _pil_bomb_check_off(), Image.open(path) as img:
        w, h = img.size
        why = too_large(w, h, max_pixels)
        if why:
            raise ImageTooLarge(why)
        large = w * h > LARGE_IMAGE_PIXELS
        if large:
            img.draft(None, (size or 1024, size or 1024))  # JPEG: DCT scaling, no effect elsewhere
        img.load()
        out = img
        if large:
            factor = min(img.size) // (2 * (size or 1024))
            if factor >= 2:
                try:
                    out = img.reduce(factor)
                except ValueError:  # a mode reduce does not take
                    pass
        yield out


DECODED = ImageCache(capacity=8192)  # 64 MB a size: 5,461 images at 64 px, all of easy-VQA's 5,000


def _load_path(path: str, size: int, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """The decoded image, cached (``DECODED``) by its file's size and modification time too, so a
    file replaced in place is read again in a long-lived process (the dashboard)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(path) from None
    return DECODED.get((path, st.st_size, st.st_mtime_ns, max_pixels), size,
                       lambda: _decode(path, size, max_pixels))


def _decode(path: str, size: int, max_pixels: int) -> np.ndarray:
    if not Path(path).is_file():
        raise FileNotFoundError(path)
    with open_checked(path, max_pixels, size) as img:
        return to_rgb_array(img, size)


def _array_to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
    a = np.nan_to_num(a.astype(np.float64))
    return np.clip(a * (255.0 if a.size and a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)


def load_image(raw, size: int, source: str | None = None,
               max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> torch.Tensor:
    """Return ``raw`` (a path or an ``HxWxC``/``HxW`` array) as a ``3 x size x size`` uint8 tensor.

    Raises ``DataError`` naming the file (and the data row in ``source``) for a missing,
    corrupt, truncated or oversized (more than ``max_pixels``, 0: no limit) image.
    """
    where = f" (referenced at {source})" if source else ""
    if isinstance(raw, (str, Path)):
        try:
            arr = _load_path(str(raw), size, max_pixels)
        except FileNotFoundError:
            raise DataError(f"image file not found{where}", path=str(raw),
                            hint="check the image column and the image folder") from None
        except ImageTooLarge as e:
            raise DataError(f"{e}{where}", path=str(raw), hint="shrink the image, or skip bad rows") from None
        except _DECODE_ERRORS as e:
            raise DataError(f"image cannot be decoded ({e.__class__.__name__}: {e}){where}",
                            path=str(raw), hint="re-export the file or skip bad rows") from None
    else:
        a = np.asarray(raw)
        if a.ndim == 2:
            a = np.stack([a] * 3, axis=-1)
        if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
            raise DataError(f"image array of shape {a.shape} is not HxW or HxWxC{where}")
        a = _array_to_uint8(a)
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[a.shape[-1]]
        arr = to_rgb_array(Image.fromarray(a.squeeze(-1) if mode == "L" else a, mode), size)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def check_image(path: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> str | None:
    """Decode ``path`` (a large one at reduced scale); return None if fine, else why it is unusable."""
    try:
        with open_checked(path, max_pixels):
            return None
    except FileNotFoundError:
        return "image file not found"
    except ImageTooLarge as e:
        return str(e)
    except _DECODE_ERRORS as e:
        return f"image cannot be decoded ({e.__class__.__name__})"


def normalize(images_uint8: torch.Tensor, mean: torch.Tensor = IMAGE_MEAN, std: torch.Tensor = IMAGE_STD
              ) -> torch.Tensor:
    """uint8 ``B x 3 x H x W`` -> float, standardised with ``mean``/``std`` (``1 x 3 x 1 x 1``;
    default ImageNet's, which the project's own models use)."""
    x = images_uint8.float() / 255.0
    return (x - mean.to(x.device)) / std.to(x.device)
