"""Modality saliency of the teacher, per example (docs/METHOD.md §5 and §6).

Measures (a registry, ``MEASURES``), each from the teacher's logits on the full view and on the
view without ``m`` (``without:m``):

- ``loss-drop`` (default): ``sal_m(x) = CE(y, t(x|M∖{m})) − CE(y, t(x))``
- ``kl-shift``: ``KL(softmax(t(x)) ‖ softmax(t(x|M∖{m})))`` (label-free)
- ``confidence-drop``: ``p_t(y|x) − p_t(y|x|M∖{m})``

each in the task's own form (§5, ``data.tasks``): for multi-label and soft targets the loss is
the mean binary cross-entropy over labels, the shift the mean binary KL between the sigmoids, and
the confidence the target-weighted mean sigmoid.

Beyond the paper: exact modality Shapley values over all ``2^|M|`` views with the value
``v(S) = −CE(y, t(x|S))`` and ``v(∅)`` the loss of the label prior (a model never sees an
empty input), and the pairwise interaction ``ℓ(x|∅) − ℓ(x|{a}) − ℓ(x|{b}) + ℓ(x|{a,b})``.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

import torch

from ..data.tasks import confidence, label_prior, label_rates, prior_loss, sigmoid_task
from ..registries import NamedRegistry
from .losses import ce_per_example, kd_per_example
from .view_logits import TeacherLogits, dense

Measure = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, str], torch.Tensor]
MEASURES: NamedRegistry[Measure] = NamedRegistry("saliency measure")
register_measure = MEASURES.register


@register_measure("loss-drop")
def loss_drop(full: torch.Tensor, removed: torch.Tensor, y: torch.Tensor, task: str = "single-label") -> torch.Tensor:
    """§5.1: ``sal_m(x) = CE(y, t(x|M∖{m})) − CE(y, t(x))``; positive when ``m`` helps."""
    return ce_per_example(removed, y, task) - ce_per_example(full, y, task)


@register_measure("kl-shift")
def kl_shift(full: torch.Tensor, removed: torch.Tensor, y: torch.Tensor, task: str = "single-label") -> torch.Tensor:
    """§5.2: ``KL(softmax(t(x)) ‖ softmax(t(x|M∖{m})))`` (the mean binary KL between the labels'
    sigmoids for multi-label and soft tasks); needs no label."""
    return kd_per_example(full, removed, 1.0, task)


@register_measure("confidence-drop")
def confidence_drop(full: torch.Tensor, removed: torch.Tensor, y: torch.Tensor,
                    task: str = "single-label") -> torch.Tensor:
    """§5.3: ``p_t(y|x) − p_t(y|x|M∖{m})`` (``data.tasks.confidence`` for multi-label and soft)."""
    return confidence(full, y, task) - confidence(removed, y, task)


def modality_saliency(cache: TeacherLogits, measure: str = "loss-drop") -> dict[str, torch.Tensor]:
    """``{m: sal_m(x)}`` for every example of the cache (``N`` values per modality), read a chunk of
    rows at a time."""
    fn = MEASURES.get(measure)
    return cache.per_example(lambda c: {m: fn(c.logits["full"], c.logits[f"without:{m}"], c.targets, c.task)
                                        for m in c.modalities},
                             views=["full", *(f"without:{m}" for m in cache.modalities)])


def population_saliency(sal: dict[str, torch.Tensor]) -> dict[str, float]:
    """§5.5: ``S_m = mean_x sal_m(x)``."""
    return {m: v.mean().item() for m, v in sal.items()}


def dominant_modality(sal: dict[str, torch.Tensor]) -> list[str]:
    """``argmax_m sal_m(x)`` per example."""
    names = list(sal)
    return [names[i] for i in torch.stack([sal[m] for m in names], 1).argmax(1).tolist()]


def dominance_share(sal: dict[str, torch.Tensor]) -> dict[str, float]:
    """The share of examples each modality dominates (``argmax_m sal_m(x)``)."""
    dom = dominant_modality(sal)
    return {m: dom.count(m) / max(len(dom), 1) for m in sal}


def subset_losses(cache: TeacherLogits, prior: torch.Tensor | None = None) -> dict[frozenset, torch.Tensor]:
    """``ℓ(x|S)`` for every subset ``S`` of the modalities (``∅`` from the label prior, by default
    the split's own, ``data.tasks.label_prior``)."""
    mods = cache.modalities
    prior = split_prior(cache) if prior is None else prior
    combos = [c for k in range(1, len(mods) + 1) for c in itertools.combinations(mods, k)]

    def losses(c: TeacherLogits) -> dict:
        out = {frozenset(): prior_loss(c.targets, c.task, len(c.labels), prior)}
        out.update({frozenset(combo): ce_per_example(c.subset_logits(combo), c.targets, c.task) for combo in combos})
        return out

    return cache.per_example(losses, views=list(dict.fromkeys(cache.subset_view(combo) for combo in combos)))


def split_prior(cache: TeacherLogits) -> torch.Tensor:
    """``data.tasks.label_prior`` of the cache's targets, summed a chunk at a time."""
    if torch.is_tensor(cache.targets):
        return label_prior(cache.targets, cache.task, len(cache.labels))
    if not sigmoid_task(cache.task):
        return label_prior(dense(cache.targets), cache.task, len(cache.labels))
    total = sum((c.targets.float().sum(0) for c in cache.chunks(views=())), torch.zeros(len(cache.labels)))
    return label_rates(total, len(cache.ids))


def shapley_values(cache: TeacherLogits, prior: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Exact Shapley value of each modality per example, value ``v(S) = −ℓ(x|S)``:
    ``φ_m = Σ_{S⊆M∖{m}} |S|!(|M|−|S|−1)!/|M|! · (v(S∪{m}) − v(S))``. They sum to ``v(M) − v(∅)``."""
    mods = cache.modalities
    n = len(mods)
    loss = subset_losses(cache, prior)
    phi = {}
    for m in mods:
        rest = [x for x in mods if x != m]
        total = torch.zeros_like(loss[frozenset()])
        for k in range(len(rest) + 1):
            weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for combo in itertools.combinations(rest, k):
                s = frozenset(combo)
                total += weight * (loss[s] - loss[s | {m}])
        phi[m] = total
    return phi


def interactions(cache: TeacherLogits, prior: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Pairwise interaction ``ℓ(x|∅) − ℓ(x|{a}) − ℓ(x|{b}) + ℓ(x|{a,b})`` for each pair ``a×b``
    (EMAP-like, Hessel & Lee 2020). Positive: the pair helps less together than the sum of
    its parts; negative: the two modalities are needed jointly (synergy)."""
    loss = subset_losses(cache, prior)
    out = {}
    for a, b in itertools.combinations(cache.modalities, 2):
        out[f"{a}×{b}"] = loss[frozenset()] - loss[frozenset({a})] - loss[frozenset({b})] + loss[frozenset({a, b})]
    return out
