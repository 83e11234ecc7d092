"""The modality ledger: how much any model — the teacher or a student — relies on each modality
(docs/METHOD.md §14), per example and per data set.

- saliency (§5) and exact Shapley values and interactions (§6), from the model's logits on every
  subset view (the teacher's from its cache, a student's through ``predict_views`` with the same
  views, removal and batch size, so both see the same inputs);
- the perceptual score (Gat et al. 2021): the metric's drop when modality ``m`` is permuted across
  examples, averaged over ``K`` seeded permutations; per example, the loss increase;
- the EMAP gap (Hessel & Lee 2020), two modalities only: the metric of the model on the original
  pairs minus that of its empirical additive projection over all ``n × n`` cross pairs;
- reliance shares and "modality collapse": examples where the teacher relies on a modality that a
  student ignores.

Plain pandas and tensors out; no streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from ..config import DataConfig
from ..data.collate import Collator
from ..data.example import Example, MultimodalDataset
from ..data.views import named_views
from ..engine.checkpoint import check_fits, load_model, model_file
from ..engine.evaluate import headline_metric
from ..engine.predict import predict_views
from ..errors import ConfigError
from ..method.losses import ce_per_example
from ..method.saliency import interactions, modality_saliency, shapley_values
from ..data.tasks import label_prior
from ..method.view_logits import TeacherLogits

CACHE_BATCH = 256  # the teacher cache's batch size: students use it too, so `swap` pairs the same partners


def predict_mixed(model, ds: MultimodalDataset, collator: Collator, device, sources: dict[str, torch.Tensor], *,
                  targets_from: torch.Tensor | None = None, batch_size: int = CACHE_BATCH) -> torch.Tensor:
    """Logits of ``model`` on recombined examples: row ``k`` takes modality ``m`` from example
    ``sources[m][k]`` of ``ds`` (and its target and id from ``targets_from[k]``, by default the
    first modality's source)."""
    mods = ds.modality_names
    n = len(sources[mods[0]])
    base = sources[mods[0]] if targets_from is None else targets_from
    src = {m: sources[m].tolist() for m in mods}
    rows = base.tolist()
    mixed = [Example(f"{ds.examples[rows[k]].id}#{k}", {m: ds.examples[src[m][k]].inputs[m] for m in mods},
                     ds.examples[rows[k]].target, ds.examples[rows[k]].meta) for k in range(n)]
    logits, _ = predict_views(model, MultimodalDataset(ds.name, ds.split, ds.modalities, ds.labels, mixed,
                                                       metric=ds.metric, neutral_text=ds.neutral_text, task=ds.task),
                              collator, device, {"full": tuple(mods)}, batch_size=batch_size)
    return logits["full"]


def model_views(model, ds: MultimodalDataset, collator: Collator, device, *, removal: str = "drop",
                batch_size: int = CACHE_BATCH) -> TeacherLogits:
    """Any model's logits on every view (``full``, ``only:m``, ``without:m``, every subset) of
    ``ds``, the table the saliency functions read (§5, §6), built as the teacher cache builds its own."""
    views = named_views(ds.modality_names, without=True, subsets=True)
    logits, targets = predict_views(model, ds, collator, device, views, removal=removal, batch_size=batch_size)
    return TeacherLogits([e.id for e in ds.examples], targets, logits, ds.labels, ds.modality_names, removal,
                         task=ds.task)


def select_rows(views: TeacherLogits, rows: list[int]) -> TeacherLogits:
    idx = torch.tensor(rows, dtype=torch.long)
    return TeacherLogits([views.ids[i] for i in rows], views.targets[idx], {k: v[idx] for k, v in views.logits.items()},
                         views.labels, views.modalities, views.removal, views.hit, views.task)


@dataclass
class Perceptual:
    """§14.1: ``score[m]`` the metric's drop, ``loss_increase[m]`` per example (mean over permutations)."""

    metric: float
    score: dict[str, float]
    loss_increase: dict[str, torch.Tensor]
    permuted_metric: dict[str, list[float]]


def perceptual_score(model, ds: MultimodalDataset, collator: Collator, device, *, permutations: int = 5,
                     seed: int = 0, full_logits: torch.Tensor | None = None,
                     batch_size: int = CACHE_BATCH, progress=None) -> Perceptual:
    """Perceptual score (Gat et al. 2021, §14.1): for each modality ``m`` and each of ``permutations``
    seeded permutations ``π``, example ``i`` gets example ``π(i)``'s ``m``; the score is the
    metric on the data minus the mean metric on the permuted data."""
    if permutations < 1:
        raise ConfigError(f"permutations must be at least 1, got {permutations}")
    if len(ds) < 2:
        raise ConfigError("the perceptual score permutes examples: it needs at least two")
    mods = ds.modality_names
    n = len(ds)
    ident = torch.arange(n)
    if full_logits is None:
        full_logits = predict_mixed(model, ds, collator, device, {m: ident for m in mods}, batch_size=batch_size)
    y = ds.targets()
    base_loss = ce_per_example(full_logits, y, ds.task)
    base = headline_metric(full_logits, y, ds.metric, ds.task)
    score, increase, permuted = {}, {}, {}
    steps, done = len(mods) * permutations, 0
    for mi, m in enumerate(mods):
        total = torch.zeros(n)
        permuted[m] = []
        for k in range(permutations):
            pi = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1009 + k))
            z = predict_mixed(model, ds, collator, device, {x: (pi if x == m else ident) for x in mods},
                              targets_from=ident, batch_size=batch_size)
            permuted[m].append(headline_metric(z, y, ds.metric, ds.task))
            total += ce_per_example(z, y, ds.task) - base_loss
            done += 1
            if progress is not None:
                progress(done, steps)
        score[m] = base - sum(permuted[m]) / permutations
        increase[m] = total / permutations
    return Perceptual(base, score, increase, permuted)


def additive_projection(f: torch.Tensor) -> torch.Tensor:
    """§14.2: ``f̂(i,j) = mean_j' f(i,j') + mean_i' f(i',j) − mean f`` for an ``n × n × C`` table
    ``f`` of logits on cross pairs (image of ``i``, text of ``j``), per class."""
    return f.mean(1, keepdim=True) + f.mean(0, keepdim=True) - f.mean((0, 1), keepdim=True)


@dataclass
class Emap:
    """§14.2: the metric of the model and of its additive projection on the original pairs."""

    metric: float
    projection_metric: float
    gap: float
    rows: list[int]
    logits: torch.Tensor  # n x C, the model on the original pairs
    projected: torch.Tensor  # n x C, its additive projection there


def emap_gap(model, ds: MultimodalDataset, collator: Collator, device, *, n: int = 200, seed: int = 0,
             rows: list[int] | None = None, batch_size: int = CACHE_BATCH, progress=None) -> Emap:
    """EMAP (Hessel & Lee 2020, §14.2) on ``n`` seeded examples of ``ds`` (or on ``rows``): the
    model runs on all ``n × n`` cross pairs; two modalities only."""
    mods = ds.modality_names
    if len(mods) != 2:
        raise ConfigError(f"the EMAP gap is defined for two modalities; {ds.name!r} has {len(mods)} "
                          f"({', '.join(mods)}). Use a two-modality data set, or read the Shapley interactions")
    if rows is None:
        order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed)).tolist()
        rows = order[:max(n, 0)]
    k = len(rows)
    if k < 2:
        raise ConfigError(f"the EMAP gap needs at least two examples, got {k}")
    r = torch.tensor(rows, dtype=torch.long)
    a, b = mods
    chunks, per = [], max(1, batch_size // k) * k  # whole rows i of the table per call
    for start in range(0, k * k, per):
        flat = torch.arange(start, min(start + per, k * k))
        chunks.append(predict_mixed(model, ds, collator, device, {a: r[flat // k], b: r[flat % k]},
                                    batch_size=batch_size))
        if progress is not None:
            progress(min(start + per, k * k), k * k)
    f = torch.cat(chunks).view(k, k, -1)
    proj = additive_projection(f)
    diag = torch.arange(k)
    y = ds.targets()[r]
    own, projected = f[diag, diag], proj[diag, diag]
    m_own, m_proj = (headline_metric(z, y, ds.metric, ds.task) for z in (own, projected))
    return Emap(m_own, m_proj, m_own - m_proj, list(rows), own, projected)


def reliance_shares(sal: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """§14.3: ``share_m(x) = max(sal_m(x), 0) / Σ_m' max(sal_m'(x), 0)`` (0 where no modality helps)."""
    pos = {m: v.clamp(min=0) for m, v in sal.items()}
    total = sum(pos.values())
    return {m: torch.where(total > 0, v / total.clamp(min=1e-12), torch.zeros_like(v)) for m, v in pos.items()}


def collapse_flags(teacher_sal: dict[str, torch.Tensor], student_sal: dict[str, torch.Tensor], *,
                   relies: float = 0.5, ignores: float = 0.1) -> dict[str, torch.Tensor]:
    """§14.3: per modality, True where the teacher's share is ``≥ relies`` and the student's ``≤ ignores``."""
    if not 0 <= ignores < relies <= 1:
        raise ConfigError(f"collapse thresholds need 0 ≤ ignores < relies ≤ 1, got ignores={ignores}, "
                          f"relies={relies}")
    t, s = reliance_shares(teacher_sal), reliance_shares(student_sal)
    return {m: (t[m] >= relies) & (s[m] <= ignores) for m in t}


def reliance_frame(ids: list[str], labels: list[str], teacher_sal: dict[str, torch.Tensor],
                   student_sal: dict[str, torch.Tensor], *, relies: float = 0.5, ignores: float = 0.1,
                   student: str = "student") -> pd.DataFrame:
    """One row per (example, modality): teacher's and student's saliency and share, and ``collapsed``."""
    t, s = reliance_shares(teacher_sal), reliance_shares(student_sal)
    flags = collapse_flags(teacher_sal, student_sal, relies=relies, ignores=ignores)
    parts = [pd.DataFrame({"student": student, "index": range(len(ids)), "id": ids, "label": labels, "modality": m,
                           "teacher saliency": teacher_sal[m].numpy(), "student saliency": student_sal[m].numpy(),
                           "teacher share": t[m].numpy(), "student share": s[m].numpy(),
                           "collapsed": flags[m].numpy()}) for m in teacher_sal]
    return pd.concat(parts, ignore_index=True)


def flag_collapse(reliance: pd.DataFrame, *, relies: float = 0.5, ignores: float = 0.1) -> pd.DataFrame:
    """``reliance`` (from ``reliance_frame``) with ``collapsed`` recomputed for new thresholds."""
    collapse_flags({}, {}, relies=relies, ignores=ignores)
    return reliance.assign(collapsed=(reliance["teacher share"] >= relies) & (reliance["student share"] <= ignores))


@dataclass
class Ledger:
    """``table``: one row per model; ``examples``: per (model, example, modality) values;
    ``reliance``: teacher vs each student per (example, modality), ``collapsed`` flagged."""

    table: pd.DataFrame
    examples: pd.DataFrame
    reliance: pd.DataFrame
    modalities: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def collapsed(self) -> pd.DataFrame:
        return self.reliance[self.reliance["collapsed"]].reset_index(drop=True)


def _model_row(name: str, views: TeacherLogits, perc: Perceptual, emap: Emap | None, measure: str,
               prior: torch.Tensor) -> tuple[dict, pd.DataFrame, dict[str, torch.Tensor]]:
    sal = modality_saliency(views, measure)
    phi = shapley_values(views, prior)
    inter = interactions(views, prior)
    row = {"model": name, "metric": perc.metric}
    for m in views.modalities:
        row[f"saliency {m}"] = sal[m].mean().item()
        row[f"shapley {m}"] = phi[m].mean().item()
    for pair, v in inter.items():
        row[f"interaction {pair}"] = v.mean().item()
    for m in views.modalities:
        row[f"perceptual {m}"] = perc.score[m]
    row["EMAP metric"] = emap.projection_metric if emap else float("nan")
    row["EMAP gap"] = emap.gap if emap else float("nan")
    shares = reliance_shares(sal)
    frames = [pd.DataFrame({"model": name, "index": range(len(views.ids)), "id": views.ids, "modality": m,
                            "saliency": sal[m].numpy(), "share": shares[m].numpy(), "shapley": phi[m].numpy(),
                            "perceptual loss increase": perc.loss_increase[m].numpy()})
              for m in views.modalities]
    return row, pd.concat(frames, ignore_index=True), sal


def modality_ledger(teacher: str | Path, data_cfg: DataConfig, ds: MultimodalDataset,
                    students: list[str | Path] = (), *, removal: str = "drop", measure: str = "loss-drop",
                    permutations: int = 5, emap_examples: int = 200, max_examples: int | None = None,
                    relies: float = 0.5, ignores: float = 0.1, seed: int = 0, device: str = "cpu",
                    progress=None) -> Ledger:
    """The ledger (§14) of the teacher and each student on ``ds``: every number on one seeded
    subsample of ``max_examples`` examples (all by default); EMAP on its first ``emap_examples``.
    ``progress(fraction, text)`` is called as models finish their parts."""
    from ..engine.teacher_cache import teacher_logits

    if max_examples is not None and max_examples < 2:
        raise ConfigError(f"the ledger needs at least two examples, got max_examples={max_examples}")
    collapse_flags({}, {}, relies=relies, ignores=ignores)  # check the thresholds before any work
    say = progress or (lambda *_: None)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed)).tolist()
    rows = sorted(order[:max_examples]) if max_examples else list(range(len(ds)))
    sample = ds.subset(rows)
    position = {r: k for k, r in enumerate(rows)}
    emap_local = [position[r] for r in order[:min(emap_examples, len(rows))]]  # order[:n] ⊆ rows
    prior = label_prior(ds.targets(), ds.task, len(ds.labels))  # §6: the analysed split's label frequencies
    notes = []
    if len(ds.modality_names) != 2:
        notes.append(f"EMAP is defined for two modalities; this data set has {len(ds.modality_names)} "
                     f"({', '.join(ds.modality_names)}), so its EMAP columns are empty")
    models = [("teacher", Path(teacher))] + [(Path(s).name, Path(s)) for s in students]
    names = [n for n, _ in models]
    models = [(f"{n} ({i})" if names.count(n) > 1 else n, p) for i, (n, p) in enumerate(models)]
    table, examples, sals = [], [], {}
    for i, (name, path) in enumerate(models):
        frac = i / len(models)
        say(frac, f"{name}: views")
        ckpt = model_file(path)
        model, meta = load_model(ckpt, device)
        check_fits(meta, ds, ckpt)
        collator = Collator.for_model(ds, data_cfg, model)
        if i == 0:
            views = teacher_logits(path, data_cfg, ds, removal=removal, subsets=True, device=device)
        elif removal in ("mean", "swap") or max_examples is None:
            views = model_views(model, ds, collator, device, removal=removal)  # same fill / partners as the cache
        else:
            views = None
        views = select_rows(views, rows) if views is not None else model_views(model, sample, collator, device,
                                                                               removal=removal)
        say(frac + 0.2 / len(models), f"{name}: perceptual score")
        perc = perceptual_score(model, sample, collator, device, permutations=permutations, seed=seed,
                                full_logits=views.logits["full"])
        emap = None
        if len(ds.modality_names) == 2 and emap_examples >= 2:
            say(frac + 0.6 / len(models), f"{name}: EMAP on {len(emap_local)}² pairs")
            emap = emap_gap(model, sample, collator, device, rows=emap_local)
        row, frame, sals[name] = _model_row(name, views, perc, emap, measure, prior)
        table.append(row)
        frame["label"] = [sample.label_text(e) for e in sample.examples] * len(ds.modality_names)
        examples.append(frame)
    say(1.0, "done")
    labels = [sample.label_text(e) for e in sample.examples]
    ids = [e.id for e in sample.examples]
    t_sal = sals[models[0][0]]
    reliance = [reliance_frame(ids, labels, t_sal, sals[name], relies=relies, ignores=ignores, student=name)
                for name, _ in models[1:]]
    reliance = pd.concat(reliance, ignore_index=True) if reliance else reliance_frame(
        ids, labels, t_sal, t_sal, relies=relies, ignores=ignores).iloc[:0]
    return Ledger(pd.DataFrame(table), pd.concat(examples, ignore_index=True), reliance, ds.modality_names, notes)
