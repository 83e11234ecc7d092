"""``snli-ve``: SNLI-VE visual entailment (Xie et al. 2019) in its official layout.

``root/snli_ve_{train,dev,test}.jsonl`` (``dev`` is our ``val``), one JSON object a line with
``Flickr30K_ID`` (the premise image), ``sentence2`` (the hypothesis), ``gold_label``
(``entailment``, ``neutral`` or ``contradiction``) and ``pairID``; the images are
``<image_dir>/<Flickr30K_ID>.jpg``, with ``image_dir`` the first of ``IMAGE_DIRS`` that exists
under ``root`` unless the option names one. Single-label, 3 classes, scored by accuracy.
Options: ``image_dir``, ``check_images`` (true/false, default true).

Bad records, each named by file and line: JSON that does not parse, a missing field, an empty
hypothesis, a ``gold_label`` of ``-`` (SNLI's "no consensus") or any other unknown label, a
missing or undecodable image.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .example import Example, ModalitySpec, MultimodalDataset
from .images import DEFAULT_MAX_IMAGE_PIXELS
from .option_values import bool_option
from .records import BadRecords, check_options, data_root
from .tabular_files import image_dir_option, image_problem, read_rows

LABELS = ["entailment", "neutral", "contradiction"]
FILES = {"train": "snli_ve_train.jsonl", "val": "snli_ve_dev.jsonl", "test": "snli_ve_test.jsonl"}
IMAGE_DIRS = ("flickr30k_images", "Flickr30K/flickr30k_images", "Flickr30k/flickr30k_images", "images")
FIELDS = ("Flickr30K_ID", "sentence2", "gold_label")


def image_folder(base: Path, options: dict, images_outside_root: bool) -> Path:
    if "image_dir" in options:
        candidates = [image_dir_option("snli-ve", base, options, images_outside_root)]
    else:
        candidates = [base / d for d in IMAGE_DIRS]
    found = next((c for c in candidates if c.is_dir()), None)
    if found is None:
        raise DataError(f"no Flickr30k image folder (looked for {[str(c.relative_to(base)) for c in candidates]})",
                        path=str(base), hint="unpack flickr30k_images under the data root, or name the folder "
                                             "with --data-option image_dir=DIR")
    return found


def make_snli_ve(root: str | None, split: str, skip_bad: bool, options: dict, *, images_outside_root: bool = False,
                 max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> MultimodalDataset:
    check_options("snli-ve", options, {"image_dir", "check_images"})
    check_images = bool_option("snli-ve", options, "check_images", True)
    base = data_root("snli-ve", root, "snli_ve_train.jsonl and the Flickr30k images")
    path = base / FILES[split]
    images = image_folder(base, options, images_outside_root)
    bad = BadRecords(skip_bad)
    examples = []
    for lineno, row in read_rows(path):
        if isinstance(row, str):
            bad.add(path, lineno, row, "fix the JSON lines")
            continue
        missing = [f for f in FIELDS if row.get(f) in (None, "")]
        label = str(row.get("gold_label", "")).strip()
        if missing:
            bad.add(path, lineno, f"missing field(s) {missing}", "restore the line from the download")
        elif not str(row["sentence2"]).strip():
            bad.add(path, lineno, "empty hypothesis (sentence2)", "fill in the hypothesis")
        elif label == "-":
            bad.add(path, lineno, "gold_label '-': SNLI's annotators reached no consensus on this pair",
                    "leave such pairs out (--skip-bad-rows), as SNLI-VE's own splits do")
        elif label not in LABELS:
            bad.add(path, lineno, f"gold_label {label!r} is not one of {LABELS}", "fix the label")
        else:
            image = images / f"{row['Flickr30K_ID']}.jpg"
            problem = image_problem(image, base, images_outside_root=images_outside_root, check_images=check_images,
                                    max_image_pixels=max_image_pixels, shown=str(row["Flickr30K_ID"]))
            if problem:
                bad.add(path, lineno, problem[0], problem[1])
                continue
            pair = str(row.get("pairID") or lineno)
            examples.append(Example(f"snlive-{split}-{pair}", {"image": str(image), "text": str(row["sentence2"])},
                                    LABELS.index(label), {"source": f"{path}:{lineno}"}))
    skipped = bad.finish(path)
    if not examples:
        raise DataError("no usable pairs", path=str(path),
                        hint="check the file" + (" (every pair was skipped)" if skipped else ""))
    return MultimodalDataset("snli-ve", split, [ModalitySpec("image", "image"), ModalitySpec("text", "text")],
                             LABELS, examples, metric="accuracy", skipped=skipped, neutral_text="a picture")
