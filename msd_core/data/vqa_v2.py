"""``vqa-v2``: VQA v2 (Goyal et al. 2017) in its official layout, with soft answer scores.

Under ``root``, for each of ``train2014`` and ``val2014``:

- ``v2_OpenEnded_mscoco_<part>_questions.json``: ``{"questions": [{"question_id", "image_id",
  "question"}, ...]}``;
- ``v2_mscoco_<part>_annotations.json``: ``{"annotations": [{"question_id", "image_id",
  "answers": [{"answer": ...}, ... ten of them]}, ...]}``;
- ``<part>/COCO_<part>_<image_id, 12 digits>.jpg``: the COCO images.

Splits: ``train`` is train2014; val2014 is shared between ``val`` (questions on images of even
id) and ``test`` (odd id), so that no image is in both, since the test-dev answers are not public.

Targets (docs/METHOD.md §3.4, soft): the answer vocabulary is the ``answers`` (option, default
3129) most frequent answers of train2014, ties broken alphabetically; each question's target is
``{answer: min(1, #annotators who gave it / 3)}`` over the answers in the vocabulary (answers are
compared lower-cased and trimmed: a simpler normalisation than the official evaluator's, which
also rewrites punctuation, number words and articles). Headline metric: VQA accuracy, the
predicted answer's score.

Large sets stream: both files are read record by record (``json_stream``), images are read only
when a batch needs them, and the examples are kept as compact columns (``VqaExamples``), built
one at a time when read, so a 400k-question split does not hold 400k objects.

Bad records, each named by file and question id: an annotation whose question is missing from the
questions file, an annotation without answers (or only empty ones), a question without its
annotation, a missing or undecodable image (with ``check_images``, default false here: checking
every image of VQA's 120k takes long; a missing image otherwise stops the batch that reads it,
naming the file). Options: ``answers``, ``check_images``.
"""

from __future__ import annotations

import functools
from array import array
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError
from .example import Example, ModalitySpec, MultimodalDataset
from .images import DEFAULT_MAX_IMAGE_PIXELS
from .json_stream import stream_array
from .option_values import bool_option, int_option
from .records import BadRecords, check_options, data_root
from .tabular_files import image_problem

PARTS = {"train": "train2014", "val": "val2014", "test": "val2014"}
DEFAULT_ANSWERS = 3129
HUMANS_FOR_FULL_SCORE = 3


def questions_file(root: Path, part: str) -> Path:
    return root / f"v2_OpenEnded_mscoco_{part}_questions.json"


def annotations_file(root: Path, part: str) -> Path:
    return root / f"v2_mscoco_{part}_annotations.json"


def image_file(root: Path, part: str, image_id: int) -> Path:
    return root / part / f"COCO_{part}_{image_id:012d}.jpg"


def normalise(answer) -> str:
    return " ".join(str(answer).lower().split()).rstrip(".")


def record_answers(record: dict) -> list[str]:
    """The annotators' answers of one annotation record, normalised; empty and null ones left out."""
    return [a for a in (normalise(x.get("answer") or "") for x in record.get("answers") or [] if isinstance(x, dict))
            if a]


def soft_scores(answers: list[str], vocabulary: dict[str, int]) -> dict[int, float]:
    """``{answer index: min(1, count / 3)}`` for the annotators' ``answers`` in the vocabulary."""
    counts = Counter(a for a in map(normalise, answers) if a in vocabulary)
    return {vocabulary[a]: min(1.0, n / HUMANS_FOR_FULL_SCORE) for a, n in counts.items()}


@functools.lru_cache(maxsize=4)
def _vocabulary(path: Path, stamp: tuple, k: int) -> tuple[str, ...]:
    counts: Counter = Counter()
    for record in stream_array(path, "annotations"):
        if isinstance(record, dict):
            counts.update(record_answers(record))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(a for a, _ in ranked[:k])


def answer_vocabulary(root: Path, k: int) -> list[str]:
    """The ``k`` most frequent (normalised) answers of train2014's annotations."""
    path = annotations_file(root, PARTS["train"])
    if not path.is_file():
        raise DataError("file not found (the answer vocabulary comes from the train annotations)", path=str(path),
                        hint="point --data-root at the folder holding the official VQA v2 json files")
    st = path.stat()
    return list(_vocabulary(path, (st.st_size, st.st_mtime_ns), k))


class VqaExamples(Sequence):
    """The examples of a VQA split as columns; ``[i]`` builds example ``i`` (a slice, a list)."""

    def __init__(self, root: Path, part: str, source: str):
        self.root, self.part, self.source = root, part, source
        self.question_ids, self.image_ids = array("q"), array("q")
        self.questions: list[str] = []
        self.offsets, self.answers, self.scores = array("q", [0]), array("i"), array("f")

    def append(self, question_id: int, image_id: int, question: str, target: dict[int, float]) -> None:
        self.question_ids.append(question_id)
        self.image_ids.append(image_id)
        self.questions.append(question)
        self.answers.extend(target)
        self.scores.extend(target.values())
        self.offsets.append(len(self.answers))

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        lo, hi = self.offsets[i], self.offsets[i + 1]
        qid = self.question_ids[i]
        return Example(f"vqa-{qid}", {"image": str(image_file(self.root, self.part, self.image_ids[i])),
                                      "text": self.questions[i]},
                       {self.answers[j]: float(self.scores[j]) for j in range(lo, hi)},
                       {"source": f"{self.source}: question {qid}"})


def _in_split(split: str, image_id: int) -> bool:
    return split == "train" or (image_id % 2 == 0) == (split == "val")


def make_vqa_v2(root: str | None, split: str, skip_bad: bool, options: dict, *, images_outside_root: bool = False,
                max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> MultimodalDataset:
    check_options("vqa-v2", options, {"answers", "check_images"})
    k = int_option("vqa-v2", options, "answers", DEFAULT_ANSWERS, lo=1)
    check_images = bool_option("vqa-v2", options, "check_images", False)
    base = data_root("vqa-v2", root, "the official questions and annotations json files and the train2014/ "
                     "and val2014/ image folders")
    part = PARTS[split]
    vocabulary = answer_vocabulary(base, k)
    index = {a: i for i, a in enumerate(vocabulary)}
    q_path, a_path = questions_file(base, part), annotations_file(base, part)
    questions: dict[int, tuple[int, str]] = {}
    bad = BadRecords(skip_bad)
    for n, q in enumerate(stream_array(q_path, "questions"), start=1):
        try:
            qid, image_id, text = int(q["question_id"]), int(q["image_id"]), str(q["question"]).strip()
        except (KeyError, TypeError, ValueError):
            bad.add(q_path, None, f"question record {n} lacks question_id, image_id or question",
                    "restore the file from the download")
            continue
        if _in_split(split, image_id):
            if not text:
                bad.add(q_path, None, f"question {qid}: empty question", "restore the file from the download")
            else:
                questions[qid] = (image_id, text)
    examples = VqaExamples(base, part, a_path.name)
    for n, record in enumerate(stream_array(a_path, "annotations"), start=1):
        try:
            qid, image_id = int(record["question_id"]), int(record["image_id"])
        except (KeyError, TypeError, ValueError):
            bad.add(a_path, None, f"annotation record {n} lacks question_id or image_id",
                    "restore the file from the download")
            continue
        if not _in_split(split, image_id):
            continue
        answers = record_answers(record)
        if qid not in questions:
            bad.add(a_path, None, f"question {qid}: annotated, but not in {q_path.name}",
                    "use the questions and annotations files of the same release")
            continue
        if not answers:
            bad.add(a_path, None, f"question {qid}: no answers", "restore the file from the download")
            questions.pop(qid)
            continue
        image_id, text = questions.pop(qid)
        problem = image_problem(image_file(base, part, image_id), base, images_outside_root=images_outside_root,
                                check_images=check_images, max_image_pixels=max_image_pixels)
        if problem:
            bad.add(a_path, None, f"question {qid}: {problem[0]}", problem[1])
            continue
        examples.append(qid, image_id, text, soft_scores(answers, index))
    for qid in questions:
        bad.add(q_path, None, f"question {qid}: no annotation in {a_path.name}",
                "use the questions and annotations files of the same release")
    skipped = bad.finish(a_path)
    if not len(examples):
        raise DataError(f"no usable questions for the {split} split", path=str(a_path),
                        hint="check the data folder" + (" (every question was skipped)" if skipped else ""))
    return MultimodalDataset("vqa-v2", split, [ModalitySpec("image", "image"), ModalitySpec("text", "text")],
                             vocabulary, examples, metric="vqa-accuracy", skipped=skipped, neutral_text="a question",
                             task="soft")
