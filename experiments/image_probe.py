"""Can an image encoder read shape and colour off easy-VQA's images? A probe per encoder kind.

    python -m experiments.image_probe [--epochs 6] [--kinds strided maxpool]

Each easy-VQA image holds one shape (circle, rectangle or triangle) of one of 8 colours. The
labels come from the data set's own questions: an image asked "what shape ..." or "what colour
..." has its answer as label (images asked both are kept: 2,435 train, about 600 test). For each
``ImagePatchEncoder`` kind, the probe trains the encoder (mean of its patch tokens, hidden 192)
with two linear heads, shape and colour, by AdamW (lr 1e-3, batch 32) and prints test accuracy
per epoch. The teacher needs both to answer the colour and shape questions and the yes/no ones
about them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHAPES = ("circle", "rectangle", "triangle")


def answer_kind(answer: str) -> str:
    """What an easy-VQA answer names: ``"yes/no"``, ``"shape"`` (the image's shape) or ``"colour"``."""
    return "yes/no" if answer in ("yes", "no") else "shape" if answer in SHAPES else "colour"


def image_labels(train: bool):
    """``images (uint8 N x 3 x 64 x 64), shape ids, colour ids, colour names`` of one easy-VQA split."""
    import easy_vqa
    import torch

    from msd_core.data.images import load_image

    questions, answers, image_ids = easy_vqa.get_train_questions() if train else easy_vqa.get_test_questions()
    paths = easy_vqa.get_train_image_paths() if train else easy_vqa.get_test_image_paths()
    shape, colour = {}, {}
    for answer, image in zip(answers, image_ids):
        kind = answer_kind(answer)
        if kind == "shape":
            shape[image] = answer
        elif kind == "colour":
            colour[image] = answer
    keep = sorted(set(shape) & set(colour))
    colours = sorted(a for a in easy_vqa.get_answers() if answer_kind(a) == "colour")
    images = torch.stack([load_image(paths[i], 64) for i in keep])
    return (images, torch.tensor([SHAPES.index(shape[i]) for i in keep]),
            torch.tensor([colours.index(colour[i]) for i in keep]), colours)


def probe(kind: str, epochs: int, data) -> Iterator[tuple[float, float, float]]:
    """Yields, after each epoch, ``(shape accuracy, colour accuracy, seconds)`` on the test images."""
    import torch
    from torch.nn import functional as F

    from msd_core.data.images import normalize
    from msd_core.models.encoders import ImagePatchEncoder

    (x, shape, colour, names), (x_test, shape_test, colour_test, _) = data
    torch.manual_seed(0)
    encoder = ImagePatchEncoder(192, kind=kind)
    heads = torch.nn.ModuleDict({"shape": torch.nn.Linear(192, len(SHAPES)),
                                 "colour": torch.nn.Linear(192, len(names))})
    opt = torch.optim.AdamW([*encoder.parameters(), *heads.parameters()], lr=1e-3)
    for _ in range(epochs):
        t0 = time.perf_counter()
        encoder.train()
        for idx in torch.randperm(len(x)).split(32):
            z = encoder(normalize(x[idx])).mean(1)
            loss = F.cross_entropy(heads["shape"](z), shape[idx]) + F.cross_entropy(heads["colour"](z), colour[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        encoder.eval()
        with torch.no_grad():
            z = encoder(normalize(x_test)).mean(1)
            yield ((heads["shape"](z).argmax(1) == shape_test).float().mean().item(),
                   (heads["colour"](z).argmax(1) == colour_test).float().mean().item(),
                   time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.image_probe")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--kinds", nargs="*", default=["strided", "maxpool"])
    a = p.parse_args()
    data = image_labels(True), image_labels(False)
    print(f"{len(data[0][0])} train / {len(data[1][0])} test images", flush=True)
    print("| encoder | epoch | shape | colour | seconds |\n|---|---|---|---|---|")
    for kind in a.kinds:
        for epoch, (s, c, sec) in enumerate(probe(kind, a.epochs, data), 1):
            print(f"| {kind} | {epoch} | {s:.3f} | {c:.3f} | {sec:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
