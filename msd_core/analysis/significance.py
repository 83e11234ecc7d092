"""Which differences are real (docs/METHOD.md §13).

Two methods are two groups of runs that differ only in seed (``compare.group_name``); their
runs pair up by seed within a data set (§4: same seed, same batches, same initial weights).

- The method comparison, "does B beat A on a new seed?": a t-test over the paired seeds that
  also carries the test set's sampling uncertainty when per-example scores are there (§13.2,
  ``seeds_and_examples``), else the paired t-test over seeds (§13.1); a t-interval either way,
  never a percentile interval (three seeds cannot resolve one). Holm's correction over every
  comparison shown at once (§13.5); how many seeds the difference would need (§13.6); a warning
  when a method's seeds split into two clusters (§13.7).
- Per example: McNemar's test on the pooled (A right?, B right?) pairs of every paired seed —
  these trained models on these examples — and the examples B fixes (or breaks) in every seed
  (§13.3).
- The learned weightings' trajectories next to the teacher's population saliency (§13.4).

Distributions and the exact binomial test come from scipy.stats; the tests check them against
hand computations.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ..engine.evaluate import headline
from .finished import (data_setting, group_name, metric_of, population_saliency_of, run_metric, seed_of,
                       split_metrics)

MIN_SEEDS = 2          # a test over seeds needs at least two paired seeds
EXACT_BELOW = 25       # McNemar: the exact binomial test when b + c is below this, else chi-square
LEVEL = 0.95           # confidence level of the t-intervals
ALPHA = 0.05           # a difference is called real when its Holm-adjusted p is below this
POWER = 0.8            # the power the seeds-needed line asks for (§13.6)
PER_EXAMPLE = ("accuracy", "vqa-accuracy", "exact-match")  # metrics that are a mean of per-example scores


# -- tests -----------------------------------------------------------------------------
def t_interval(mean: float, se: float, dof: float, level: float = LEVEL) -> tuple[float, float]:
    """``mean ± t_{dof, (1+level)/2} · se`` (§13.1)."""
    half = float(stats.t.ppf((1.0 + level) / 2.0, dof)) * se
    return mean - half, mean + half


def paired_t(a, b) -> dict:
    """Paired t-test of ``d = b − a`` (§13.1): ``t = mean(d) / (sd(d)/√n)``, ``dof = n − 1``,
    two-sided p, and the t-interval of the mean difference. Fewer than ``MIN_SEEDS`` pairs: t, dof,
    p and the interval are None and ``note`` says why."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    n = len(d)
    out = {"n": n, "mean_diff": float(d.mean()) if n else math.nan, "t": None, "dof": None, "p": None,
           "ci": None, "note": ""}
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
    out.update(t=t, dof=n - 1, p=1.0 if t == 0.0 else float(2.0 * stats.t.sf(abs(t), n - 1)),
               ci=t_interval(mean, sd / math.sqrt(n), n - 1))
    return out


def seeds_and_examples(scores_a, scores_b) -> dict:
    """The test of §13.2: ``scores_*[s, i]`` is seed ``s``'s score on example ``i`` (1 or 0 for
    right or wrong, a VQA score), the same examples for every seed; ``d[s, i] = scores_b − scores_a``.

    ``D̄ = mean(d)``, ``V = s²_seed / n + s²_ex / N`` with ``s²_seed`` the variance of the per-seed
    means ``d[s, :]`` over the ``n`` seeds and ``s²_ex`` that of the per-example means ``d[:, i]``
    over the ``N`` examples; ``t = D̄ / √V`` on Satterthwaite's degrees of freedom
    ``V² / ((s²_seed/n)²/(n−1) + (s²_ex/N)²/(N−1))``; a two-sided p and the t-interval.
    ``seed_share`` is the seed term's part of ``V``."""
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"per-example scores of both methods must be seeds × examples of one shape, got "
                         f"{a.shape} and {b.shape}")
    d = b - a
    n, N = d.shape
    out = {"n": n, "examples": N, "mean_diff": float(d.mean()) if d.size else math.nan, "t": None, "dof": None,
           "p": None, "ci": None, "se": None, "seed_share": None, "note": ""}
    if n < MIN_SEEDS:
        out["note"] = f"needs ≥ {MIN_SEEDS} paired seeds (has {n})"
        return out
    if N < 2:
        out["note"] = f"needs ≥ 2 examples (has {N})"
        return out
    seed_part = float(d.mean(axis=1).var(ddof=1)) / n
    example_part = float(d.mean(axis=0).var(ddof=1)) / N
    v = seed_part + example_part
    mean = out["mean_diff"]
    if v == 0.0:
        out.update(t=0.0 if mean == 0.0 else math.copysign(math.inf, mean), dof=n - 1,
                   p=1.0 if mean == 0.0 else 0.0, ci=(mean, mean), se=0.0, seed_share=0.0,
                   note="the same difference on every seed and example")
        return out
    dof = v ** 2 / (seed_part ** 2 / (n - 1) + example_part ** 2 / (N - 1))
    se = math.sqrt(v)
    t = mean / se
    out.update(t=t, dof=dof, p=float(2.0 * stats.t.sf(abs(t), dof)), ci=t_interval(mean, se, dof), se=se,
               seed_share=seed_part / v)
    return out


def holm(ps) -> list:
    """Holm's step-down adjustment of the p-values ``ps`` (§13.5): the k-th smallest of m becomes
    ``max_{j ≤ k} min(1, (m − j + 1)·p_(j))``; a None stays None and is not counted in the family."""
    order = sorted((p, i) for i, p in enumerate(ps) if p is not None and not math.isnan(p))
    m = len(order)
    out: list = [None] * len(ps)
    running = 0.0
    for k, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out


def seeds_needed(diffs, *, alpha: float = ALPHA, power: float = POWER, most: int = 1000) -> int | None:
    """How many paired seeds a paired t-test at ``alpha`` (two-sided) needs to detect a mean
    difference of ``mean(diffs)`` with the seed-to-seed spread ``sd(diffs)``, with probability
    ``power`` (§13.6): the smallest ``n ≥ 2`` with ``P(|T_{n−1, δ√n/σ}| > t_{n−1, 1−α/2}) ≥ power``,
    ``T`` noncentral. None when it cannot be said (fewer than two values, a mean of 0); ``most + 1``
    past ``most``."""
    d = np.asarray(diffs, dtype=float)
    if len(d) < MIN_SEEDS:
        return None
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if mean == 0.0:
        return None
    if sd == 0.0:
        return MIN_SEEDS
    effect = abs(mean) / sd
    for n in range(MIN_SEEDS, most + 1):
        crit = stats.t.ppf(1.0 - alpha / 2.0, n - 1)
        ncp = effect * math.sqrt(n)
        if stats.nct.sf(crit, n - 1, ncp) + stats.nct.cdf(-crit, n - 1, ncp) >= power:
            return n
    return most + 1


def two_clusters(values, *, ratio: float = 3.0, least_gap: float = 0.02) -> dict | None:
    """Whether one method's per-seed results split into two clusters (§13.7): with at least three
    seeds, the largest gap between neighbours in sorted order is at least ``least_gap`` and at least
    ``ratio`` times the wider of the two sides' ranges. The two sides and the gap, or None."""
    v = np.sort(np.asarray(values, dtype=float))
    if len(v) < 3:
        return None
    gaps = np.diff(v)
    k = int(gaps.argmax())
    low, high = v[:k + 1], v[k + 1:]
    within = max(float(low.max() - low.min()), float(high.max() - high.min()))
    gap = float(gaps[k])
    if gap < least_gap or gap < ratio * within:
        return None
    return {"low": low.tolist(), "high": high.tolist(), "gap": gap}


def mcnemar(a_right, b_right) -> dict:
    """McNemar's test on paired outcomes (§13.3). ``b``: A right and B wrong; ``c``: A wrong
    and B right. ``b + c < EXACT_BELOW``: exact two-sided binomial p,
    ``min(1, 2·Σ_{k ≤ min(b,c)} C(b+c, k)/2^{b+c})``; otherwise chi-square with continuity
    correction, ``max(|b − c| − 1, 0)² / (b + c)`` on one degree of freedom (``b = c``: p = 1)."""
    a_right, b_right = np.asarray(a_right, dtype=bool), np.asarray(b_right, dtype=bool)
    b = int((a_right & ~b_right).sum())
    c = int((~a_right & b_right).sum())
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "test": "none (no disagreements)", "statistic": None, "p": 1.0}
    if n < EXACT_BELOW:
        p = stats.binomtest(min(b, c), n, 0.5).pvalue
        return {"b": b, "c": c, "test": "exact binomial", "statistic": None, "p": float(p)}
    stat = max(abs(b - c) - 1.0, 0.0) ** 2 / n
    return {"b": b, "c": c, "test": "chi-square (continuity corrected)", "statistic": stat,
            "p": float(stats.chi2.sf(stat, 1))}


# -- runs ------------------------------------------------------------------------------
def groups(runs: list[dict]) -> list[str]:
    """The run groups (methods) among ``runs``, in order of first appearance."""
    return list(dict.fromkeys(group_name(r["config"]) for r in runs))


def pair_by_seed(runs: list[dict], group_a: str, group_b: str) -> dict[str, list[tuple[object, dict, dict]]]:
    """``{data set: [(seed, run of A, run of B), ...]}`` for the seeds both groups ran on that data
    set (sorted by seed); with two runs of one group and seed, the first listed (the newest) counts."""
    by = {}
    for r in runs:
        key = (data_setting(r["config"]), group_name(r["config"]), seed_of(r))
        by.setdefault(key, r)
    out: dict[str, list] = {}
    for (data, group, seed), run_a in by.items():
        if group != group_a:
            continue
        run_b = by.get((data, group_b, seed))
        if run_b is not None:
            out.setdefault(data, []).append((seed, run_a, run_b))
    return {data: sorted(pairs, key=lambda p: (p[0] is None, p[0])) for data, pairs in out.items()}


def baseline_group(names: list[str]) -> str:
    """The method a comparison starts from: KD where it is among ``names``, else the first."""
    return next((g for g in names if g.startswith("kd")), names[0])


def first_pair(runs: list[dict]) -> tuple[dict, dict] | None:
    """The two runs a side-by-side view opens on: the baseline method's and another method's run of
    the lowest seed both ran on one data setting (the pairing of ``pair_by_seed``, which the tests
    use); None when no two methods share a seed."""
    names = groups(runs)
    if len(names) < 2:
        return None
    baseline = baseline_group(names)
    for other in names:
        for pairs in (pair_by_seed(runs, baseline, other).values() if other != baseline else ()):
            return pairs[0][1], pairs[0][2]
    return None


def seeds_by_data(runs: list[dict], group: str) -> dict[str, list]:
    """``{data set: [seeds]}`` of ``group``'s runs among ``runs``."""
    out: dict[str, list] = {}
    for r in runs:
        if group_name(r["config"]) == group:
            out.setdefault(data_setting(r["config"]), []).append(seed_of(r))
    return {d: sorted(set(s), key=lambda x: (x is None, x)) for d, s in out.items()}


def metric_name(run: dict, split: str, view: str, metric: str | None = None) -> str:
    """``metric``, or the run's data set's headline metric on ``view`` (``evaluate.headline``)."""
    return metric or headline((split_metrics(run, split) or {}).get(view) or {"accuracy": None}, run_metric(run))[0]


def method_tests(runs: list[dict], baseline: str, split: str = "test", view: str = "full", metric: str | None = None,
                 *, scores=None, methods: list[str] | None = None) -> pd.DataFrame:
    """Every method among ``runs`` (or ``methods``) against ``baseline``, on every data set they
    share, as one family (§13.5): one row per data set and method with the test of §13.2 where
    ``scores(run)`` gives each paired run's per-example scores of a per-example metric, else the
    paired t-test over seeds (§13.1); the t-interval, Holm's p over every row that has a p, the
    verdict, and the seeds the difference would need (§13.6). A row that cannot be tested says what
    is missing and what to launch (``note``), and has no p."""
    rows = []
    for method in methods or groups(runs):
        if method == baseline:
            continue
        pairs_by_data = pair_by_seed(runs, baseline, method)
        seeds_a, seeds_b = seeds_by_data(runs, baseline), seeds_by_data(runs, method)
        for data in dict.fromkeys([*pairs_by_data, *(d for d in seeds_b if d in seeds_a)]):
            rows.append(_one_comparison(data, method, pairs_by_data.get(data, []), seeds_a.get(data, []),
                                        seeds_b.get(data, []), split, view, metric, scores))
        for data in seeds_b:
            if data not in seeds_a:
                rows.append(_untested(data, method, view, f"{baseline} has no run on {data}: launch it with the seeds "
                                                         f"{_listed(seeds_b[data])}"))
    table = pd.DataFrame(rows, columns=["data", "method", "view", "metric", "seeds", "A mean", "B mean", "B − A",
                                        "test", "t", "dof", "p", "Holm p", "CI low", "CI high", "seeds needed",
                                        "verdict", "note"])
    table["Holm p"] = holm([None if pd.isna(p) else p for p in table["p"]])
    table["verdict"] = [_verdict(r) for r in table.to_dict("records")]
    return table


def _listed(seeds) -> str:
    return ", ".join(str(s) for s in seeds)


def _untested(data, method, view, note) -> dict:
    return {"data": data, "method": method, "view": view, "seeds": [], "test": "", "note": note}


def _one_comparison(data, method, pairs, seeds_a, seeds_b, split, view, metric, scores) -> dict:
    if not pairs:
        return _untested(data, method, view, f"no seed in common (baseline: {_listed(seeds_a)}; this method: "
                                             f"{_listed(seeds_b)}): runs pair up by seed, so launch both with the "
                                             f"same seeds")
    name = metric_name(pairs[0][1], split, view, metric)
    values = [(s, metric_of(a, split, view, name), metric_of(b, split, view, name), a, b) for s, a, b in pairs]
    missing = [f"{r['id']} ({name} on {view})" for _, va, vb, ra, rb in values for r, v in ((ra, va), (rb, vb))
               if v is None]
    values = [v for v in values if v[1] is not None and v[2] is not None]
    notes = [f"no {name} on the {view} view in: {', '.join(missing)}"] if missing else []
    unpaired = sorted(set(seeds_a) ^ set(seeds_b), key=str)
    if unpaired:
        notes.append(f"seeds without a partner (not counted): {_listed(unpaired)}")
    a = np.array([v[1] for v in values])
    b = np.array([v[2] for v in values])
    row = {"data": data, "method": method, "view": view, "metric": name, "seeds": [v[0] for v in values],
           "A mean": float(a.mean()) if len(a) else None, "B mean": float(b.mean()) if len(b) else None,
           "B − A": float((b - a).mean()) if len(a) else None}
    per_example = None
    if scores is not None and name in PER_EXAMPLE and len(values) >= MIN_SEEDS:
        got = [(scores(ra), scores(rb)) for *_, ra, rb in values]
        if any(x is None or y is None for x, y in got):
            notes.append("no per-example scores for some runs (no model in the folder?): tested over seeds only")
        else:
            sa, sb = np.stack([x for x, _ in got]), np.stack([y for _, y in got])
            if np.allclose(sa.mean(1), a, atol=1e-4) and np.allclose(sb.mean(1), b, atol=1e-4):
                per_example = seeds_and_examples(sa, sb)
            else:
                notes.append("the per-example scores do not give the recorded metric (the run folder changed?): "
                             "tested over seeds only")
    test = per_example or paired_t(a, b)
    if test["note"]:
        notes.insert(0, test["note"] + (": launch more seeds of both methods" if test["t"] is None else ""))
    ci = test["ci"] or (None, None)
    row.update(test="seeds × examples" if per_example else ("seeds" if test["t"] is not None else ""),
               t=test["t"], dof=test["dof"], p=test["p"], **{"CI low": ci[0], "CI high": ci[1]},
               **{"seeds needed": seeds_needed(b - a)}, note="; ".join(notes))
    return row


def _verdict(row: dict) -> str:
    if row.get("Holm p") is None or pd.isna(row.get("Holm p")):
        return "not tested"
    if row["Holm p"] >= ALPHA:
        return "no clear difference"
    return "B better" if row["B − A"] > 0 else "A better"


def cluster_warnings(runs: list[dict], split: str = "test", view: str = "full", metric: str | None = None) -> list[dict]:
    """The methods whose per-seed results split into two clusters (§13.7), per data set: ``data``,
    ``method``, ``metric``, ``low`` and ``high`` (``{seed: value}``) and the ``gap``."""
    out = []
    by: dict[tuple, dict] = {}
    for r in runs:
        by.setdefault((data_setting(r["config"]), group_name(r["config"])), {}).setdefault(seed_of(r), r)
    for (data, method), seeds in by.items():
        name = metric_name(next(iter(seeds.values())), split, view, metric)
        values = {s: metric_of(r, split, view, name) for s, r in sorted(seeds.items(), key=lambda kv: str(kv[0]))}
        values = {s: v for s, v in values.items() if v is not None}
        found = two_clusters(list(values.values()))
        if found:
            cut = max(found["low"])
            out.append({"data": data, "method": method, "metric": name, "gap": found["gap"],
                        "low": {s: v for s, v in values.items() if v <= cut},
                        "high": {s: v for s, v in values.items() if v > cut}})
    return out


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
