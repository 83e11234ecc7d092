"""Every image goes through here: any size or mode (RGB, RGBA, L, P; PNG, JPEG) in,
a ``3 x S x S`` uint8 tensor out. Normalisation to floats happens in the model's
input, so a zero (``mask``) image is the data mean of the normalisation."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

# Mean/std of ImageNet, applied by ``normalize``.
IMAGE_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGE_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def to_rgb_array(img: Image.Image, size: int) -> np.ndarray:
    """Composite transparency on white, convert to RGB, resize to ``size x size``."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


@lru_cache(maxsize=8192)
def _load_path(path: str, size: int) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(path)
    with Image.open(p) as img:
        img.load()
        return to_rgb_array(img, size)


def load_image(raw, size: int, source: str | None = None) -> torch.Tensor:
    """Return ``raw`` (a path or an ``HxWxC``/``HxW`` array) as a ``3 x size x size`` uint8 tensor.

    Raises ``DataError`` naming the file (and the data row in ``source``) for a missing,
    corrupt or truncated image.
    """
    where = f" (referenced at {source})" if source else ""
    if isinstance(raw, (str, Path)):
        try:
            arr = _load_path(str(raw), size)
        except FileNotFoundError:
            raise DataError(f"image file not found{where}", path=str(raw),
                            hint="check the image column and the image folder") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise DataError(f"image cannot be decoded ({e.__class__.__name__}: {e}){where}",
                            path=str(raw), hint="re-export the file or skip bad rows") from None
    else:
        a = np.asarray(raw)
        if a.ndim == 2:
            a = np.stack([a] * 3, axis=-1)
        if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
            raise DataError(f"image array of shape {a.shape} is not HxW or HxWxC{where}")
        if a.dtype != np.uint8:
            a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[a.shape[-1]]
        arr = to_rgb_array(Image.fromarray(a.squeeze(-1) if mode == "L" else a, mode), size)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def check_image(path: str) -> str | None:
    """Decode ``path`` fully; return None if fine, else why it is unusable."""
    try:
        with Image.open(path) as img:
            img.load()
        return None
    except FileNotFoundError:
        return "image file not found"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return f"image cannot be decoded ({e.__class__.__name__})"


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 ``B x 3 x H x W`` -> float, standardised with ``IMAGE_MEAN``/``IMAGE_STD``."""
    x = images_uint8.float() / 255.0
    return (x - IMAGE_MEAN.to(x.device)) / IMAGE_STD.to(x.device)
