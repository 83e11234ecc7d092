"""What a student (or teacher) minimises, by name: the objectives of docs/METHOD.md §4.

``OBJECTIVES`` registers ``none``, ``kd`` and ``msd``. Each is built from a ``DistillConfig``
plus what it needs (the teacher's logits on the training split, the population saliency, the
meta split for meta-learned weights) and called by the trainer once per step as

    objective(model, batch, step=global_step, lr=current learning rate, total_steps=the run's)
        -> {"loss": ..., terms}

and under ``torchrun`` also with ``share=`` this rank's share of the global batch. Every term is a
mean over ``batch``; the trainer weights each rank's terms by its share (docs/METHOD.md §17.2), and
only a meta-learned weighting, whose meta step mixes the ranks' batches itself, reads ``share``.

It never sees the trainer: everything it uses arrives as an argument. The returned dict holds
the total under ``loss`` and every term the run logs (``ce``, ``kd``, ``kd:m``, ``w:m:mean``,
``w:m:std``).
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch import nn
from torch.func import functional_call

from ..config import DistillConfig
from ..data.batch import Batch
from ..data.views import make_view
from ..distributed import Share, rank_world, shard
from ..registries import NamedRegistry
from .losses import ce_per_example, kd_loss, msd_loss
from .saliency import modality_saliency
from .view_logits import TeacherLogits
from .weighting import MetaWeighter, fixed_weights, is_learned, weight_features

Terms = dict[str, torch.Tensor]
WeightSource = Callable[[list[str], torch.device], dict[str, torch.Tensor]]


class Objective(Protocol):
    """The loss of one batch. An objective that reads the teacher's cached rows may also have
    ``prefetch(ids)``: the trainer names the next batch's examples before this batch's step, so
    their rows are read from disk while the step runs (§9.1)."""

    def __call__(self, model: nn.Module, batch: Batch, *, step: int, lr: float,
                 total_steps: int | None = None, share: Share | None = None) -> Terms: ...


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel or ``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or (
            model.module if isinstance(model, nn.parallel.DistributedDataParallel) else None)
        if inner is None:
            return model
        model = inner


def random_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose random state ``torch.random.fork_rng`` must keep (none on a CPU)."""
    return [device.index or 0] if device.type == "cuda" else []


class Supervised:
    """The teacher's objective, §3.1: the batch mean of ``CE(y, t(x))`` in the task's own form."""

    def __call__(self, model, batch: Batch, *, step: int, lr: float, total_steps: int | None = None,
                 share: Share | None = None) -> Terms:
        ce = ce_per_example(model(batch), batch.targets, batch.task).mean()
        return {"loss": ce, "ce": ce}


OBJECTIVES: NamedRegistry[type] = NamedRegistry("method")


@OBJECTIVES.register("none")
class LabelsOnly(Supervised):
    """§4 ``none``: the student learns from the labels alone, ``L = CE(y, s(x))``: the teacher's own
    objective (``Supervised``), as a distillation method."""

    needs_teacher = False  # whether it reads the teacher's logits on the training split
    weighted = False       # whether DistillConfig.weighting (and a meta split) applies

    def __init__(self, cfg: DistillConfig, **_):
        self.cfg = cfg


@OBJECTIVES.register("kd")
class KnowledgeDistillation:
    """§4 ``kd``: ``L_KD = (1−α)·CE(y, s(x)) + α·KD_T(t(x), s(x))`` (§3.2), teacher logits from
    the cache."""

    needs_teacher, weighted = True, False

    def __init__(self, cfg: DistillConfig, *, teacher: TeacherLogits, **_):
        self.cfg, self.teacher = cfg, teacher

    def prefetch(self, ids: list[str]) -> None:
        self.teacher.prefetch(ids, ["full"])

    def __call__(self, model, batch: Batch, *, step: int, lr: float, total_steps: int | None = None,
                 share: Share | None = None) -> Terms:
        rows = self.teacher.rows(batch.ids)
        t_full = self.teacher.logits["full"][rows].to(batch.targets.device)
        return kd_loss(model(batch), t_full, batch.targets, alpha=self.cfg.alpha, T=self.cfg.temperature,
                       task=batch.task)


class _ForwardViews(nn.Module):
    """``model.forward_views`` as a module's ``forward``, so that ``functional_call`` can run it
    with look-ahead parameters and each modality's encoder still runs once for all views."""

    def __init__(self, model: nn.Module, views: dict[str, tuple[str, ...]]):
        super().__init__()
        self.model, self.views = model, views

    def forward(self, batch):
        return self.model.forward_views(batch, self.views)


@OBJECTIVES.register("msd")
class ModalitySpecificDistillation:
    """§4 ``msd``: ``L_MSD = L_KD + Σ_m w_m(x)·KD_T(t(x|{m}), s(x|{m}))`` (§3.3) with the weights of
    ``cfg.weighting`` (§7): fixed schemes from the teacher's saliency ``cfg.saliency`` on the
    training split (``population`` from ``population``), meta-learned ones from a ``MetaWeighter``
    stepped on ``meta_examples`` every ``cfg.meta_every`` steps (§7.6). The student's views remove
    modalities as ``cfg.removal`` says, like the teacher's (``mean`` fills in ``fill``).
    ``saliency_from``, when given, is the table the training examples' saliency (and the learned
    weighting's features) is read from instead of ``teacher``: out-of-fold saliency (§5.6).

    ``weights``, when given, replaces the weights the configured weighting would give: a function
    of the batch's example ids and the device to ``{m: w_m}`` (for experiments that fix the
    weights by hand). Everything else stays as configured, the meta step of a learned weighting
    included."""

    needs_teacher, weighted = True, True

    def __init__(self, cfg: DistillConfig, *, teacher: TeacherLogits, population: dict[str, float] | None = None,
                 meta_examples: list | None = None, collator=None, batch_size: int = 32,
                 weights: WeightSource | None = None, fill: dict | None = None,
                 saliency_from: TeacherLogits | None = None, **_):
        self.cfg, self.teacher = cfg, teacher
        self.fill = fill  # what ``mean`` removal fills in (§2.3); see data.views.mean_fill
        self.mods = teacher.modalities
        self.population = population
        self.weight_source = weights
        self.batch_size = batch_size
        source = saliency_from or teacher  # out-of-fold saliency (§5.6): the same rows, other teachers
        if source.ids != teacher.ids:
            raise ValueError("the saliency table must hold the teacher table's examples in its order")
        self.sal = modality_saliency(source, cfg.saliency)
        self.weighter = self.features = None
        self.meta_examples, self.collator = meta_examples or [], collator
        if is_learned(cfg.weighting):
            views = ["full", *(f"only:{m}" for m in self.mods)]
            losses = source.per_example(lambda c: {v: ce_per_example(c.logits[v], c.targets, c.task) for v in views},
                                        views=views)
            view_losses = {m: losses[f"only:{m}"] for m in self.mods}
            full_loss = losses["full"]
            feats = weight_features(view_losses, self.sal, full_loss)
            self.features = (feats - feats.mean(0)) / feats.std(0).clamp_min(1e-6)
            with torch.random.fork_rng(devices=[]):  # the student's random numbers stay a fixed weighting's
                self.weighter = MetaWeighter(self.mods, cfg.weighting, lam=cfg.lam, lr=cfg.meta_lr)

    def state_dict(self) -> dict:
        """What a resumed run needs besides the student: the weight network and its optimizer."""
        if self.weighter is None:
            return {}
        return {"weighter": self.weighter.state_dict(), "optimizer": self.weighter.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.weighter is not None:
            self.weighter.load_state_dict(state["weighter"])
            self.weighter.optimizer.load_state_dict(state["optimizer"])

    def student_views(self, model, batch: Batch, params=None) -> dict[str, torch.Tensor]:
        """The student's logits on the full view and each single-modality view, with its own
        parameters or, for the meta step's look-ahead, with ``params``."""
        views = {"full": tuple(batch.modalities), **{m: (m,) for m in self.mods}}
        if self.cfg.removal == "drop":
            if params is None:
                return model(batch, views=views)  # through __call__: DistributedDataParallel sees it
            return functional_call(_ForwardViews(model, views), {f"model.{k}": p for k, p in params.items()},
                                   (batch,))
        call = (lambda b: functional_call(model, params, (b,))) if params is not None else model
        return {k: call(make_view(batch, keep, self.cfg.removal, fill=self.fill,
                                  generator=torch.Generator().manual_seed(0)))
                for k, keep in views.items()}

    def weights(self, batch: Batch, rows: torch.Tensor, device) -> dict[str, torch.Tensor]:
        """``w_m(x)`` for the examples of ``batch`` (``rows`` of the teacher table)."""
        if self.weight_source is not None:
            return self.weight_source(batch.ids, device)
        if self.weighter is not None:
            with torch.no_grad():
                w = self.weighter(self.features[rows])
        else:
            w = fixed_weights(self.cfg.weighting, {m: self.sal[m][rows] for m in self.mods}, self.population,
                              self.cfg.lam, self.cfg.tau)
        return {m: v.to(device) for m, v in w.items()}

    def prefetch(self, ids: list[str]) -> None:
        self.teacher.prefetch(ids, ["full", *(f"only:{m}" for m in self.mods)])

    def example_weights(self) -> dict[str, torch.Tensor]:
        """``w_m(x)`` for every example of the teacher table, in its row order (for reports)."""
        rows = torch.arange(len(self.teacher.ids))
        if self.weighter is not None:
            with torch.no_grad():
                return self.weighter(self.features)
        return fixed_weights(self.cfg.weighting, {m: self.sal[m][rows] for m in self.mods}, self.population,
                             self.cfg.lam, self.cfg.tau)

    def __call__(self, model, batch: Batch, *, step: int, lr: float, total_steps: int | None = None,
                 share: Share | None = None) -> Terms:
        cfg = self.cfg
        dev = batch.targets.device
        rows = self.teacher.rows(batch.ids)
        t_full = self.teacher.logits["full"][rows].to(dev)
        t_views = {m: self.teacher.logits[f"only:{m}"][rows].to(dev) for m in self.mods}
        started = total_steps is None or step >= cfg.meta_start * total_steps
        if self.weighter is not None and step % cfg.meta_every == 0 and self.meta_examples and started:
            with torch.random.fork_rng(devices=random_devices(dev)):
                self.meta_step(unwrap(model), batch, rows, t_full, t_views, step, lr, share)
        w = self.weights(batch, rows, dev)
        s = self.student_views(model, batch)
        out = msd_loss(s["full"], t_full, batch.targets, {m: s[m] for m in self.mods}, t_views, w,
                       alpha=cfg.alpha, T=cfg.temperature, task=batch.task)
        for m in self.mods:
            out[f"w:{m}:mean"] = w[m].float().mean()
            out[f"w:{m}:std"] = w[m].float().std() if len(w[m]) > 1 else torch.zeros(())
        return out

    def meta_step(self, module, batch: Batch, rows, t_full, t_views, step: int, lr: float,
                  share: Share | None = None) -> None:
        """One update of the weight network (§7.6): look ahead with learning rate ``lr`` on
        ``batch``, then lower the student's CE on the next meta batch. Under ``torchrun`` (§17.3)
        ``batch`` is this rank's ``share`` of the global batch and the meta batch, one global batch
        long, is shared out the same way: each rank's losses count by its share, the look-ahead's
        gradients are summed over the ranks (so every rank looks ahead to the same ``θ'``) and so
        are ``φ``'s, so that ``φ`` takes the step one process with the global batch takes."""
        cfg = self.cfg
        world = rank_world()[1]
        size = self.batch_size * world
        k = (step // cfg.meta_every) * size % len(self.meta_examples)
        meta_items, meta_share = shard(self.meta_examples[k:k + size])
        meta_batch = self.collator(meta_items).to(batch.targets.device)
        part = (lambda x, s: x) if world == 1 else (lambda x, s: x * s.fraction)  # noqa: E731
        share = share or Share(len(batch), len(batch))

        def train_loss(params, w):
            s = self.student_views(module, batch, params)
            return part(msd_loss(s["full"], t_full, batch.targets, {m: s[m] for m in self.mods}, t_views,
                                 {m: v.to(t_full.device) for m, v in w.items()}, alpha=cfg.alpha,
                                 T=cfg.temperature, task=batch.task)["loss"], share)

        def meta_loss(params):
            return part(ce_per_example(functional_call(module, params, (meta_batch,)), meta_batch.targets,
                                       meta_batch.task).mean(), meta_share)

        self.weighter.meta_step(module, train_loss, meta_loss, self.features[rows], lr,
                                lookahead=cfg.meta_lookahead, entropy=cfg.meta_entropy,
                                fraction=1.0 if world == 1 else share.fraction)


def build_objective(cfg: DistillConfig, **inputs) -> Objective:
    """The objective named by ``cfg.method``, given what it needs (see each class)."""
    return OBJECTIVES.get(cfg.method)(cfg, **inputs)
