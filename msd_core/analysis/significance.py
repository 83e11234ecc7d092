"""Which differences between two methods are real (docs/METHOD.md §13).

Two methods are two groups of runs that differ only in seed (``compare.group_name``); their
runs pair up by seed within a data set (§4: same seed, same batches, same initial weights).

- Per seed: a paired t-test of the per-seed metric difference ``B − A`` and a seeded
  percentile bootstrap 95% CI of its mean (§13.1, §13.2).
- Per example: McNemar's test on the pooled (A right?, B right?) pairs of every paired seed,
  and the examples B fixes (or breaks) in every seed (§13.3).
- The learned weightings' trajectories next to the teacher's population saliency (§13.4).

Distributions and the exact binomial test come from scipy.stats; the tests check them against
hand computations.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..paths import METRICS_FILE
from ..engine.evaluate import headline
from .compare import group_name, run_metric, split_metrics

MIN_SEEDS = 2          # a paired t-test needs at least two paired seeds
EXACT_BELOW = 25       # McNemar: the exact binomial test when b + c is below this, else chi-square
RESAMPLES = 10_000     # bootstrap resamples
LEVEL = 0.95           # confidence level of the bootstrap interval


# -- tests -----------------------------------------------------------------------------
def paired_t(a, b) -> dict:
    """Paired t-test of ``d = b − a`` (§13.1): ``t = mean(d) / (sd(d)/√n)``, ``dof = n − 1``,
    two-sided p. Fewer than ``MIN_SEEDS`` pairs: t, dof and p are None and ``note`` says why."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    n = len(d)
    out = {"n": n, "mean_diff": float(d.mean()) if n else math.nan, "t": None, "dof": None, "p": None, "note": ""}
    if n < MIN_SEEDS:
        out["note"] = f"needs ≥ {MIN_SEEDS} paired seeds (has {n})"
        return out
    sd = float(d.std(ddof=1))
    mean = float(d.mean())
    if sd == 0.0:
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        out["note"] = "the same difference in every seed"
    else:
        t = mean / (sd / math.sqrt(n))
    out.update(t=t, dof=n - 1, p=1.0 if t == 0.0 else float(2.0 * stats.t.sf(abs(t), n - 1)))
    return out


def bootstrap_ci(diffs, *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``mean(diffs)`` (§13.2): ``resamples`` draws of ``n`` values
    with replacement from a generator seeded with ``seed``."""
    d = np.asarray(diffs, dtype=float)
    if len(d) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return float(lo), float(hi)


def mcnemar(a_right, b_right) -> dict:
    """McNemar's test on paired outcomes (§13.3). ``b``: A right and B wrong; ``c``: A wrong
    and B right. ``b + c < EXACT_BELOW``: exact two-sided binomial p,
    ``min(1, 2·Σ_{k ≤ min(b,c)} C(b+c, k)/2^{b+c})``; otherwise chi-square with continuity
    correction, ``(|b − c| − 1)² / (b + c)`` on one degree of freedom."""
    a_right, b_right = np.asarray(a_right, dtype=bool), np.asarray(b_right, dtype=bool)
    b = int((a_right & ~b_right).sum())
    c = int((~a_right & b_right).sum())
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "test": "none (no disagreements)", "statistic": None, "p": 1.0}
    if n < EXACT_BELOW:
        p = stats.binomtest(min(b, c), n, 0.5).pvalue
        return {"b": b, "c": c, "test": "exact binomial", "statistic": None, "p": float(p)}
    stat = (abs(b - c) - 1.0) ** 2 / n
    return {"b": b, "c": c, "test": "chi-square (continuity corrected)", "statistic": stat,
            "p": float(stats.chi2.sf(stat, 1))}


# -- runs ------------------------------------------------------------------------------
def data_name(config: dict) -> str:
    """The data set a run used (its name, and its folder for folder data sets)."""
    data = config.get("data", {})
    return data.get("name", "?") + (f" ({Path(data['root']).name})" if data.get("root") else "")


def seed_of(run: dict):
    return run["config"].get("train", {}).get("seed")


def groups(runs: list[dict]) -> list[str]:
    """The run groups (methods) among ``runs``, in order of first appearance."""
    return list(dict.fromkeys(group_name(r["config"]) for r in runs))


def pair_by_seed(runs: list[dict], group_a: str, group_b: str) -> dict[str, list[tuple[object, dict, dict]]]:
    """``{data set: [(seed, run of A, run of B), ...]}`` for the seeds both groups ran on that data
    set (sorted by seed); with two runs of one group and seed, the first listed (the newest) counts."""
    by = {}
    for r in runs:
        key = (data_name(r["config"]), group_name(r["config"]), seed_of(r))
        by.setdefault(key, r)
    out: dict[str, list] = {}
    for (data, group, seed), run_a in by.items():
        if group != group_a:
            continue
        run_b = by.get((data, group_b, seed))
        if run_b is not None:
            out.setdefault(data, []).append((seed, run_a, run_b))
    return {data: sorted(pairs, key=lambda p: (p[0] is None, p[0])) for data, pairs in out.items()}


def metric_of(run: dict, split: str, view: str, metric: str) -> float | None:
    value = ((split_metrics(run, split) or {}).get(view) or {}).get(metric)
    return None if value is None else float(value)


def paired_metric_tests(runs: list[dict], group_a: str, group_b: str, split: str = "test", view: str = "full",
                        metric: str | None = None, *, resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """One row per data set: the paired t-test and bootstrap CI of ``metric`` on ``view``, B − A
    (``metric`` None: each data set's headline metric, ``evaluate.headline``)."""
    rows = []
    for data, pairs in pair_by_seed(runs, group_a, group_b).items():
        first = pairs[0][1]
        name = metric or headline((split_metrics(first, split) or {}).get(view) or {"accuracy": None},
                                  run_metric(first))[0]
        values = [(s, metric_of(a, split, view, name), metric_of(b, split, view, name)) for s, a, b in pairs]
        values = [v for v in values if v[1] is not None and v[2] is not None]
        a = np.array([v[1] for v in values])
        b = np.array([v[2] for v in values])
        test = paired_t(a, b)
        lo, hi = bootstrap_ci(b - a, resamples=resamples, seed=seed) if test["t"] is not None else (None, None)
        rows.append({"data": data, "view": view, "metric": name, "seeds": [v[0] for v in values],
                     "A mean": float(a.mean()) if len(a) else None, "B mean": float(b.mean()) if len(b) else None,
                     "B − A": test["mean_diff"] if len(a) else None, "t": test["t"], "dof": test["dof"],
                     "p": test["p"], "CI low": lo, "CI high": hi, "note": test["note"]})
    return pd.DataFrame(rows)


def example_tests(pairs: list[tuple[object, dict, dict]], correct: dict[str, np.ndarray]) -> dict:
    """McNemar's test over the pooled per-example outcomes of every seed pair (``correct[run id]``:
    a bool per example, the same examples in the same order for every run)."""
    a = np.concatenate([correct[ra["id"]] for _, ra, _ in pairs])
    b = np.concatenate([correct[rb["id"]] for _, _, rb in pairs])
    return {"seed pairs": len(pairs), "pairs": len(a), **mcnemar(a, b)}


def consistent_changes(pairs: list[tuple[object, dict, dict]], correct: dict[str, np.ndarray], ids: list[str],
                       labels: list[str]) -> pd.DataFrame:
    """The examples B fixes in every seed (A wrong, B right in each seed pair) and those it breaks
    in every seed (A right, B wrong): ``index``, ``id``, ``label``, ``change``."""
    a = np.stack([correct[ra["id"]] for _, ra, _ in pairs])
    b = np.stack([correct[rb["id"]] for _, _, rb in pairs])
    fixed = (~a & b).all(axis=0)
    broken = (a & ~b).all(axis=0)
    rows = [{"index": i, "id": ids[i], "label": labels[i], "change": "fixed by B in every seed"}
            for i in np.flatnonzero(fixed)]
    rows += [{"index": i, "id": ids[i], "label": labels[i], "change": "broken by B in every seed"}
             for i in np.flatnonzero(broken)]
    return pd.DataFrame(rows, columns=["index", "id", "label", "change"])


# -- learned weights against the teacher's saliency ------------------------------------
def population_saliency_of(run: dict) -> dict[str, float]:
    """The teacher's population saliency ``S`` recorded in the run's metrics.json (§5.5)."""
    path = Path(run.get("out_dir") or "") / METRICS_FILE
    return json.loads(path.read_text()).get("population_saliency") or {} if path.is_file() else {}


def saliency_share(population: dict[str, float]) -> dict[str, float]:
    """``S_m⁺ / Σ_m' S_m'⁺`` (§13.4): each modality's share of the positive saliency (uniform when
    no modality helps)."""
    pos = {m: max(float(v), 0.0) for m, v in population.items()}
    total = sum(pos.values())
    return {m: (v / total if total > 0 else 1.0 / len(pos)) for m, v in pos.items()}


def is_learned_run(run: dict) -> bool:
    from ..method.objectives import OBJECTIVES
    from ..method.weighting import WEIGHTINGS

    d = run["config"].get("distill", {})
    method = d.get("method")
    return (method in OBJECTIVES and OBJECTIVES.get(method).weighted and d.get("weighting") in WEIGHTINGS
            and WEIGHTINGS.get(d["weighting"]).learned)


def weight_trajectories(run: dict, metrics) -> pd.DataFrame:
    """The logged batch-mean weight of each modality per step (``train/w:<m>:mean``, §4) and its
    share of the step's total ``w_m / Σ_m' w_m'`` (§13.4); ``metrics(run id, names)`` reads the
    registry (``Registry.metrics``). Columns: step, modality, weight, share."""
    modalities = list(population_saliency_of(run))
    names = [f"train/w:{m}:mean" for m in modalities]
    rows = pd.DataFrame(metrics(run["id"], names)) if names else pd.DataFrame()
    if rows.empty:
        return pd.DataFrame(columns=["step", "modality", "weight", "share"])
    rows["modality"] = rows["name"].str.removeprefix("train/w:").str.removesuffix(":mean")
    rows = rows.rename(columns={"value": "weight"})[["step", "modality", "weight"]]
    total = rows.groupby("step")["weight"].transform("sum")
    rows["share"] = rows["weight"] / total.where(total != 0)
    return rows.reset_index(drop=True)
