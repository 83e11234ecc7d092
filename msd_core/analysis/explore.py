"""Tables behind the saliency explorer: one row per example with the teacher's predictions on
every view, each modality's saliency (docs/METHOD.md §5), Shapley values and interactions (§6)
and the dominant modality; the weight each fixed scheme would give an example (§7).
Plain pandas out; the page only filters and draws."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ..config import DataConfig
from ..data.example import MultimodalDataset
from ..engine.teacher_cache import teacher_logits
from ..method.saliency import dominant_modality, interactions, modality_saliency, population_saliency, shapley_values
from ..data.tasks import confidence, correct, predicted_texts
from ..method.view_logits import TeacherLogits
from ..method.weighting import WEIGHTINGS, fixed_weights


def saliency_frame(cache: TeacherLogits, ds: MultimodalDataset, measure: str = "loss-drop") -> pd.DataFrame:
    """One row per example (see the module docstring)."""
    sal = modality_saliency(cache, measure)
    labels, task = ds.labels, cache.task
    frame = pd.DataFrame({"id": cache.ids, "label": [ds.label_text(e) for e in ds.examples],
                          "text": [str(e.inputs.get("text", "")) for e in ds.examples]})
    if task != "single-label":  # each example's labels (answers), to filter by one of them
        frame["labels"] = [tuple(label for label, _ in ds.label_scores(e)) for e in ds.examples]
    shown = [view for view in cache.logits if not view.startswith("subset:")]
    said = {view: [] for view in shown}

    def block(c: TeacherLogits) -> dict:  # the cache a block of rows at a time (§9.1)
        for view in shown:
            said[view] += predicted_texts(c.logits[view], labels, task)
        return {**{view: confidence(c.logits[view], c.targets, task) for view in shown},
                "correct": correct(c.logits["full"], c.targets, task)}

    scores = cache.per_example(block, views=shown)
    for view in shown:
        frame[f"pred {view}"] = said[view]
        frame[f"p(y) {view}"] = scores[view].numpy()
    frame["correct"] = scores["correct"].numpy()
    for m, v in sal.items():
        frame[f"sal {m}"] = v.numpy()
    frame["dominant"] = dominant_modality(sal)
    if any(k.startswith("subset:") for k in cache.logits):
        for m, v in shapley_values(cache).items():
            frame[f"shapley {m}"] = v.numpy()
        for pair, v in interactions(cache).items():
            frame[f"interaction {pair}"] = v.numpy()
    if any("reliance" in e.meta for e in ds.examples):
        frame["reliance"] = [e.meta.get("reliance") for e in ds.examples]
    frame["index"] = range(len(frame))
    return frame


def explorer_data(teacher: str | Path, data_cfg: DataConfig, ds: MultimodalDataset, *, removal: str = "drop",
                  device: str = "cpu", progress=None) -> TeacherLogits:
    """The teacher's logits on all ``2^|M|`` views of ``ds`` (cached on disk)."""
    return teacher_logits(teacher, data_cfg, ds, removal=removal, subsets=True, device=device, progress=progress)


def scheme_weights(frame: pd.DataFrame, row: int, modalities: list[str], lam: float = 1.0,
                   tau: float = 1.0) -> pd.DataFrame:
    """The MSD weight each fixed scheme would give the example in ``row`` (learned schemes
    depend on a trained weight network and are shown in a run's curves instead)."""
    sal_all = {m: torch.tensor(frame[f"sal {m}"].to_numpy()) for m in modalities}
    population = population_saliency(sal_all)
    one = {m: sal_all[m][row:row + 1] for m in modalities}
    rows = []
    for scheme, entry in WEIGHTINGS.items():
        if entry.learned:
            continue
        w = fixed_weights(scheme, one, population, lam, tau)
        rows += [{"scheme": scheme, "modality": m, "weight": float(w[m][0])} for m in modalities]
    return pd.DataFrame(rows)
