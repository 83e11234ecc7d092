"""``hateful-memes``: the official on-disk layout (Kiela et al. 2020).

``root/train.jsonl``, ``root/dev_seen.jsonl``, ``root/test_seen.jsonl``, one JSON object
a line with ``id``, ``img`` (``img/12345.png``, relative to ``root``), ``label`` (0/1)
and ``text``. Labels are exactly 0 or 1. Metric: AUROC (accuracy beside it).
``dev_unseen``/``test_unseen`` are used when the seen files are absent; the options ``val`` and
``test`` pick an official split by name (``val=dev_unseen``, ``test=test_unseen``). Option:
``check_images`` (true/false, default true). ``img`` paths must stay inside ``root`` unless
``images_outside_root``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, DataError
from .example import ModalitySpec, MultimodalDataset
from .images import DEFAULT_MAX_IMAGE_PIXELS
from .option_values import bool_option
from .records import check_options, data_root
from .tabular_files import Columns, rows_to_examples

FILES = {"train": ["train.jsonl"], "val": ["dev_seen.jsonl", "dev_unseen.jsonl", "dev.jsonl"],
         "test": ["test_seen.jsonl", "test_unseen.jsonl", "test.jsonl"]}
LABELS = ["0", "1"]
OPTIONS = ("check_images", "val", "test")


def make_hateful_memes(root: str | None, split: str, skip_bad: bool, options: dict, *,
                       images_outside_root: bool = False,
                       max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> MultimodalDataset:
    check_options("hateful-memes", options, OPTIONS)
    files = FILES[split]
    if split in options:
        official = [f.removesuffix(".jsonl") for f in FILES[split]]
        if options[split] not in official:
            raise ConfigError(f"hateful-memes: option {split} must name one of the official {split} splits "
                              f"{official}, got {options[split]!r}")
        files = [f"{options[split]}.jsonl"]
    check_images = bool_option("hateful-memes", options, "check_images", True)
    base = data_root("hateful-memes", root, "train.jsonl and img/")
    candidates = [base / f for f in files]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise DataError(f"none of {[p.name for p in candidates]} found", path=str(base),
                        hint="point --data-root at the unpacked Hateful Memes folder")
    examples, skipped = rows_to_examples(path, base, Columns(image="img", text="text", label="label", id="id"),
                                         LABELS, prefix=f"hm-{split}", skip_bad=skip_bad,
                                         check_images=check_images, root=base,
                                         images_outside_root=images_outside_root,
                                         max_image_pixels=max_image_pixels)
    return MultimodalDataset("hateful-memes", split, [ModalitySpec("image", "image"), ModalitySpec("text", "text")],
                             ["not-hateful", "hateful"], examples, metric="auroc", skipped=skipped,
                             neutral_text="a meme")
