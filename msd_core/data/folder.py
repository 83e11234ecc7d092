"""``folder``: any CSV/TSV/JSONL with image, text and label columns beside an image folder.

Options: ``train`` (file name, default ``train.csv``, then ``train.jsonl``), ``val`` and
``test`` (optional; a missing val split is carved from train, a missing test split is an
error when asked for), ``image_column`` / ``text_column`` / ``label_column`` / ``id_column``,
``image_dir`` (relative to ``root``; default ``root``), ``labels`` (the label set, in
order; default: the sorted labels of the train file), ``check_images`` (true/false,
default true). Image paths must stay inside ``root`` unless ``images_outside_root``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, DataError
from .example import ModalitySpec, MultimodalDataset
from .images import DEFAULT_MAX_IMAGE_PIXELS
from .option_values import bool_option
from .tabular_files import Columns, collect_labels, image_dir_option, rows_to_examples

OPTIONS = {"train", "val", "test", "image_column", "text_column", "label_column", "id_column",
           "image_dir", "labels", "check_images"}


def split_file(base: Path, options: dict, split: str) -> Path | None:
    if split in options:
        return base / options[split]
    for ext in (".csv", ".jsonl", ".tsv"):
        if (base / f"{split}{ext}").is_file():
            return base / f"{split}{ext}"
    return None


def make_folder(root: str | None, split: str, skip_bad: bool, options: dict, *, images_outside_root: bool = False,
                max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> MultimodalDataset:
    unknown = set(options) - OPTIONS
    if unknown:
        raise ConfigError(f"folder: unknown option(s) {sorted(unknown)}; known: {sorted(OPTIONS)}")
    check_images = bool_option("folder", options, "check_images", True)
    if not root:
        raise DataError("the folder data set needs a folder: pass --data-root DIR")
    base = Path(root)
    if not base.is_dir():
        raise DataError("data folder not found", path=str(base), hint="check --data-root")
    cols = Columns(options.get("image_column", "image"), options.get("text_column", "text"),
                   options.get("label_column", "label"), options.get("id_column"))
    train_path = split_file(base, options, "train")
    if train_path is None:
        raise DataError("no train.csv / train.jsonl / train.tsv", path=str(base),
                        hint="add one, or name it with the 'train' option")
    path = split_file(base, options, split)
    if path is None:
        raise DataError(f"no {split} file", path=str(base), hint=f"add {split}.csv or name it in the options")
    labels = [str(x) for x in options["labels"]] if "labels" in options else collect_labels(train_path, cols.label)
    image_dir = image_dir_option("folder", base, options, images_outside_root)
    examples, skipped = rows_to_examples(path, image_dir, cols, labels, prefix=f"folder-{split}",
                                         skip_bad=skip_bad, check_images=check_images, root=base,
                                         images_outside_root=images_outside_root,
                                         max_image_pixels=max_image_pixels)
    return MultimodalDataset("folder", split, [ModalitySpec("image", "image"), ModalitySpec("text", "text")],
                             labels, examples, metric="auroc" if len(labels) == 2 else "accuracy",
                             skipped=skipped, neutral_text="nothing")
