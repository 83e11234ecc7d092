"""Within-modality attributions of one example through captum (docs/METHOD.md §11), as arrays a
page can draw.

- image: Integrated Gradients on the normalised pixels (baseline: the zero image, i.e. the
  normalisation mean), summed over colour channels -> ``H x W``; or occlusion of square
  patches (``FeatureAblation`` with a patch grid as the feature mask) -> ``H x W``.
- text: Layer Integrated Gradients on the word-embedding layer (baseline: every non-special
  token replaced by ``[PAD]``), summed over the embedding -> one score per token.

Scores explain the model's logit of ``target`` (default: its predicted class) on the full input.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import FeatureAblation, IntegratedGradients, LayerIntegratedGradients

from ..data.batch import Batch
from ..data.views import make_view


def _with(batch: Batch, **values) -> Batch:
    b = make_view(batch, batch.modalities)  # a shallow copy
    b.values = {**batch.values, **values}
    return b


def _expand(batch: Batch, n: int) -> Batch:
    return batch.select(torch.zeros(n, dtype=torch.long))


def image_attribution(model, batch: Batch, target: int, method: str = "ig", n_steps: int = 32,
                      patch: int = 8) -> np.ndarray:
    """``H x W`` attribution of the image of a one-example ``batch``."""
    image = batch.values["image"]

    def f(img):
        return model(_with(_expand(batch, img.shape[0]), image=img))

    if method == "ig":
        attr = IntegratedGradients(f).attribute(image, baselines=torch.zeros_like(image), target=target,
                                                n_steps=n_steps, internal_batch_size=n_steps)
    else:
        h, w = image.shape[-2:]
        grid = (torch.arange(h)[:, None] // patch) * ((w + patch - 1) // patch) + torch.arange(w)[None, :] // patch
        with torch.no_grad():
            attr = FeatureAblation(f).attribute(image, baselines=0.0, target=target,
                                                feature_mask=grid.expand_as(image[0])[None])
    return attr[0].sum(0).detach().cpu().numpy()


def text_attribution(model, batch: Batch, target: int, tokenizer, n_steps: int = 32) -> list[tuple[str, float]]:
    """``[(token, score)]`` for the real tokens of a one-example ``batch``."""
    ids = batch.values["text"]
    real = batch.token_mask["text"][0]
    special = batch.special_mask["text"]
    baseline = torch.where(special | ~batch.token_mask["text"], ids, torch.full_like(ids, tokenizer.pad_token_id))

    def f(text_ids):
        n = text_ids.shape[0]
        b = _expand(batch, n)
        return model(_with(b, text=text_ids))

    lig = LayerIntegratedGradients(f, model.word_embeddings())
    attr = lig.attribute(ids, baselines=baseline, target=target, n_steps=n_steps, internal_batch_size=n_steps)
    scores = attr[0].sum(-1).detach().cpu()
    tokens = tokenizer.convert_ids_to_tokens(ids[0][real].tolist())
    return list(zip(tokens, scores[real].tolist()))


def explain(model, batch: Batch, tokenizer=None, target: int | None = None, image_method: str = "ig",
            n_steps: int = 32) -> dict:
    """Attributions for every image/text modality of a one-example batch, plus the target used."""
    model.eval()
    if target is None:
        with torch.no_grad():
            target = int(model(batch).argmax(-1)[0])
    out: dict = {"target": target}
    if "image" in batch.values:
        out["image"] = image_attribution(model, batch, target, image_method, n_steps)
    if "text" in batch.values:
        if tokenizer is None:
            from ..data.text import default_tokenizer

            tokenizer = default_tokenizer()
        out["text"] = text_attribution(model, batch, target, tokenizer, n_steps)
    return out
