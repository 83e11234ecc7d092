"""``synthetic``: a procedural data set whose per-example modality reliance is known.

Each example has a reliance type, stored as ``meta['reliance']``:

- ``image-only``: a filled square whose colour is the class; the text is filler.
- ``text-only``: a class word in the text; the image is noise.
- ``redundant``: both carry the class (square colour and word agree).
- ``both-required``: a circle of colour ``a`` and a word ``b``; the class is
  ``(a + b) mod C``, so neither modality alone says anything about it.
- ``vector-only`` (with ``with_vector``): a third modality, ``tabular``, a noisy
  one-hot of the class; image and text are uninformative.

Options (``DataConfig.options``), checked before any work: ``n`` (train size, an
integer ≥ 1, default 2000; val and test get a quarter each), ``num_classes`` (2..8,
default 4), ``mixture`` (reliance type -> weight), ``label_noise`` (probability of a
random label, 0..1), ``pixel_noise`` (std of image noise, 0-255 scale, ≥ 0),
``with_vector`` (true/false: add the tabular modality), ``seed`` (an integer ≥ 0), ``task``
(``single-label``, the default, or ``multi-label``).

Multi-label mode (``task=multi-label``): each example carries 1 to 3 of the ``num_classes``
labels, each shown by its own evidence, drawn per label from ``mixture`` restricted to
``image-only`` (a small square of the label's colour), ``text-only`` (the label's word) and
``redundant`` (both). ``meta['label_reliance']`` maps each present label to how it is shown;
``meta['reliance']`` is ``image-only`` or ``text-only`` when every label is shown that way,
``redundant`` when every label is shown by both, else ``mixed``. Label noise flips each label's
presence with probability ``label_noise``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .example import Example, ModalitySpec, MultimodalDataset
from .option_values import bool_option, float_option, int_option

COLOURS = np.array([[220, 40, 40], [40, 180, 60], [40, 80, 220], [230, 200, 40],
                    [200, 60, 200], [40, 200, 200], [240, 130, 30], [120, 70, 30]], dtype=np.float32)
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
FILLER = ["look", "at", "this", "picture", "here", "there", "is", "something", "the", "we", "see", "now"]
VECTOR_DIM = 8
RELIANCES = ("image-only", "text-only", "redundant", "both-required", "vector-only")
SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}
IMAGE_PX = 32


def _image(rng, px, colour, shape, noise):
    img = rng.normal(128.0, noise, size=(px, px, 3)).astype(np.float32)
    if isinstance(colour, list):  # multi-label: a small square per label, in distinct quadrants
        size = px // 3
        for colour_k, quadrant in zip(colour, rng.permutation(4)):
            qx, qy = (quadrant % 2) * (px // 2), (quadrant // 2) * (px // 2)
            x0, y0 = qx + rng.integers(0, px // 2 - size + 1), qy + rng.integers(0, px // 2 - size + 1)
            img[y0:y0 + size, x0:x0 + size] = COLOURS[colour_k]
    elif colour is not None:
        size = px // 2
        x0, y0 = rng.integers(0, px - size, size=2)
        if shape == "square":
            img[y0:y0 + size, x0:x0 + size] = COLOURS[colour]
        else:
            yy, xx = np.mgrid[0:px, 0:px]
            r = size / 2
            inside = (yy - y0 - r) ** 2 + (xx - x0 - r) ** 2 <= r * r
            img[inside] = COLOURS[colour]
    return np.clip(img, 0, 255).astype(np.uint8)


def _text(rng, word):
    words = list(rng.choice(FILLER, size=rng.integers(3, 6), replace=True))
    for w in [word] if isinstance(word, str) else word or []:
        words.insert(int(rng.integers(0, len(words) + 1)), w)
    return " ".join(words)


MULTI_LABEL_RELIANCES = ("image-only", "text-only", "redundant")


def _multi_label_example(rng, C, kinds, probs, label_noise, pixel_noise):
    """One multi-label example: ``(inputs, target, label_reliance)`` (see the module docstring)."""
    present = sorted(rng.choice(C, size=int(rng.integers(1, min(3, C) + 1)), replace=False).tolist())
    how = {y: kinds[rng.choice(len(kinds), p=probs)] for y in present}
    colours = [y for y in present if how[y] != "text-only"]
    words = [WORDS[y] for y in present if how[y] != "image-only"]
    inputs = {"image": _image(rng, IMAGE_PX, colours, "square", pixel_noise), "text": _text(rng, words)}
    flips = rng.random(C) < label_noise
    target = {y: 1.0 for y in range(C) if (y in present) != bool(flips[y])}
    return inputs, target, how


def _summary_reliance(how: dict) -> str:
    kinds = set(how.values())
    return kinds.pop() if len(kinds) == 1 else "mixed"


def make_synthetic(split: str, options: dict) -> MultimodalDataset:
    """Generate the ``split`` of the synthetic data set (deterministic in ``seed``)."""
    known = {"n", "num_classes", "mixture", "label_noise", "pixel_noise", "with_vector", "seed", "task"}
    unknown = set(options) - known
    if unknown:
        raise ConfigError(f"synthetic: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    n_train = int_option("synthetic", options, "n", 2000, lo=1)
    n = n_train if split == "train" else max(n_train // 4, 1)
    C = int_option("synthetic", options, "num_classes", 4, lo=2, hi=len(WORDS))
    with_vector = bool_option("synthetic", options, "with_vector", False)
    label_noise = float_option("synthetic", options, "label_noise", 0.0, lo=0.0, hi=1.0)
    pixel_noise = float_option("synthetic", options, "pixel_noise", 20.0, lo=0.0)
    seed = int_option("synthetic", options, "seed", 0, lo=0)
    task = options.get("task", "single-label")
    if task not in ("single-label", "multi-label"):
        raise ConfigError(f"synthetic: option task must be single-label or multi-label, got {task!r}")
    if task == "multi-label" and with_vector:
        raise ConfigError("synthetic: task=multi-label has image and text only; drop with_vector")
    default_mix = {r: 1.0 for r in RELIANCES[:4]} | ({"vector-only": 1.0} if with_vector else {})
    mixture = options.get("mixture", default_mix)
    if not isinstance(mixture, dict) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and np.isfinite(w) for w in mixture.values()):
        raise ConfigError(f"synthetic: option mixture must map reliance types {list(RELIANCES)} to "
                          f"numbers, got {mixture!r}")
    if task == "multi-label" and "mixture" not in options:
        mixture = {r: 1.0 for r in MULTI_LABEL_RELIANCES}
    bad = [r for r in mixture if r not in RELIANCES or (r == "vector-only" and not with_vector)]
    if bad:
        raise ConfigError(f"synthetic: unknown reliance type(s) {bad} in mixture "
                          f"(vector-only needs with_vector=true)")
    if task == "multi-label" and set(mixture) - set(MULTI_LABEL_RELIANCES):
        raise ConfigError(f"synthetic: task=multi-label takes the reliance types {list(MULTI_LABEL_RELIANCES)} "
                          f"in mixture, got {sorted(mixture)}")
    kinds = list(mixture)
    probs = np.array([mixture[k] for k in kinds], dtype=float)
    if probs.sum() <= 0 or (probs < 0).any():
        raise ConfigError("synthetic: mixture weights must be non-negative and not all zero")
    probs /= probs.sum()
    rng = np.random.default_rng([seed, SPLIT_OFFSET.get(split, 3)])

    labels = [w.upper() for w in WORDS[:C]]
    examples = []
    if task == "multi-label":
        for i in range(n):
            inputs, target, how = _multi_label_example(rng, C, kinds, probs, label_noise, pixel_noise)
            examples.append(Example(f"synthetic-{split}-{i}", inputs, target, {
                "reliance": _summary_reliance(how), "label_reliance": {labels[y]: k for y, k in how.items()},
                "source": f"synthetic {split} #{i}"}))
        return MultimodalDataset("synthetic", split, [ModalitySpec("image", "image"), ModalitySpec("text", "text")],
                                 labels, examples, metric="f1-micro", neutral_text="look at this",
                                 task="multi-label")
    for i in range(n):
        kind = kinds[rng.choice(len(kinds), p=probs)]
        y = int(rng.integers(C))
        colour, shape, word, vec_class = None, "square", None, None
        if kind == "image-only":
            colour = y
        elif kind == "text-only":
            word = WORDS[y]
        elif kind == "redundant":
            colour, word = y, WORDS[y]
        elif kind == "both-required":
            a = int(rng.integers(C))
            colour, shape, word = a, "circle", WORDS[(y - a) % C]
        else:  # vector-only
            vec_class = y
        inputs = {"image": _image(rng, IMAGE_PX, colour, shape, pixel_noise), "text": _text(rng, word)}
        if with_vector:
            vec = rng.normal(0.0, 0.3, size=VECTOR_DIM).astype(np.float32)
            if vec_class is not None:
                vec[vec_class] += 2.0
            inputs["tabular"] = vec
        target = int(rng.integers(C)) if rng.random() < label_noise else y
        examples.append(Example(f"synthetic-{split}-{i}", inputs, target,
                                {"reliance": kind, "clean_target": y, "source": f"synthetic {split} #{i}"}))

    modalities = [ModalitySpec("image", "image"), ModalitySpec("text", "text")]
    if with_vector:
        modalities.append(ModalitySpec("tabular", "vector", VECTOR_DIM))
    return MultimodalDataset("synthetic", split, modalities, labels, examples,
                             metric="accuracy", neutral_text="look at this")
