"""``mm-imdb``: MM-IMDB (Arevalo et al. 2017) in its official layout, as MMBT reads it.

``root/split.json`` lists the ids of ``train``, ``dev`` (our ``val``) and ``test``;
``root/dataset/<id>.json`` holds the movie's ``plot`` (a list of summaries: the longest is the
text, as in MMBT; a plain string is taken as is) and ``genres``; ``root/dataset/<id>.jpeg`` its
poster. Targets: the 23 genres of ``GENRES``, multi-label (docs/METHOD.md §3.4); headline metric
micro-F1, with macro-, weighted- and samples-F1 beside it. Option: ``check_images`` (true/false,
default true).

Bad records, each named by its file: an id of ``split.json`` without its json or jpeg, a json
that does not parse, an empty plot, no genres, a genre outside ``GENRES``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError
from .example import Example, ModalitySpec, MultimodalDataset
from .images import DEFAULT_MAX_IMAGE_PIXELS
from .option_values import bool_option
from .records import BadRecords, check_options, data_root
from .tabular_files import image_problem

GENRES = ["Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror", "Documentary",
          "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History", "Animation", "Musical",
          "Music", "Western", "Sport", "Short", "Film-Noir"]
SPLIT_KEYS = {"train": "train", "val": "dev", "test": "test"}


def _plot_text(plot) -> str:
    if isinstance(plot, str):
        return plot.strip()
    if isinstance(plot, list):
        texts = [str(p).strip() for p in plot if str(p).strip()]
        return max(texts, key=len) if texts else ""
    return ""


def _split_ids(path: Path, split: str) -> list[str]:
    if not path.is_file():
        raise DataError("file not found", path=str(path),
                        hint="point --data-root at the unpacked MM-IMDB folder (split.json and dataset/)")
    try:
        splits = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"not valid JSON ({e})", path=str(path), hint="restore split.json from the download") from None
    key = SPLIT_KEYS[split]
    if not isinstance(splits, dict) or not isinstance(splits.get(key), list):
        raise DataError(f"no list of ids under {key!r}", path=str(path),
                        hint=f"split.json maps {sorted(SPLIT_KEYS.values())} to lists of ids")
    return [str(i) for i in splits[key]]


def make_mm_imdb(root: str | None, split: str, skip_bad: bool, options: dict, *, images_outside_root: bool = False,
                 max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> MultimodalDataset:
    check_options("mm-imdb", options, {"check_images"})
    check_images = bool_option("mm-imdb", options, "check_images", True)
    base = data_root("mm-imdb", root, "split.json and dataset/")
    split_path = base / "split.json"
    ids = _split_ids(split_path, split)
    folder = base / "dataset"
    if not folder.is_dir():
        raise DataError("folder not found", path=str(folder), hint="MM-IMDB keeps each movie's json and jpeg in "
                                                                   "dataset/ beside split.json")
    bad = BadRecords(skip_bad)
    examples = []
    for movie in ids:
        meta_path, image_path = folder / f"{movie}.json", folder / f"{movie}.jpeg"
        if not meta_path.is_file():
            bad.add(split_path, None, f"id {movie} has no dataset/{movie}.json", "restore the movie's files, or "
                    "remove its id from split.json")
            continue
        try:
            record = json.loads(meta_path.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            bad.add(meta_path, None, f"not valid JSON ({e})", "restore the file from the download")
            continue
        if not isinstance(record, dict):
            bad.add(meta_path, None, "not a JSON object", "restore the file from the download")
            continue
        text = _plot_text(record.get("plot"))
        genres = record.get("genres")
        outside = [g for g in genres if g not in GENRES] if isinstance(genres, list) else []
        if not text:
            bad.add(meta_path, None, "no plot text", "fill in the plot")
        elif not isinstance(genres, list) or not genres:
            bad.add(meta_path, None, "no genres", "list the movie's genres")
        elif outside:
            bad.add(meta_path, None, f"genre(s) {outside} not among the 23 MM-IMDB genres {GENRES}",
                    "fix the genres (MM-IMDB's 23-genre version leaves the others out)")
        elif (problem := image_problem(image_path, base, images_outside_root=images_outside_root,
                                       check_images=check_images, max_image_pixels=max_image_pixels)):
            bad.add(image_path if image_path.exists() else split_path, None,
                    f"id {movie}: {problem[0]}", problem[1])
        else:
            examples.append(Example(f"mmimdb-{movie}", {"image": str(image_path), "text": text},
                                    {GENRES.index(g): 1.0 for g in genres}, {"source": str(meta_path)}))
    skipped = bad.finish(split_path)
    if not examples:
        raise DataError(f"no usable movies in the {SPLIT_KEYS[split]} split", path=str(split_path),
                        hint="check the data folder" + (" (every movie was skipped)" if skipped else ""))
    return MultimodalDataset("mm-imdb", split, [ModalitySpec("image", "image"), ModalitySpec("text", "text")],
                             GENRES, examples, metric="f1-micro", skipped=skipped, neutral_text="a movie",
                             task="multi-label")
