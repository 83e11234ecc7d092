"""The significance tables of RESULTS.md (docs/METHOD.md §13): every comparison of a table tested
over seeds (and examples, where the runs recorded their per-question outcomes), with Holm's
correction over the whole table, shared by ``experiments.quality`` (the grid) and
``experiments.page_defaults`` (the 5-seed settings)."""

from __future__ import annotations

from experiments.predictions import pooled_mcnemar


def significance(df, predictions: dict | None = None) -> str:
    """Every MSD configuration against KD, and every weighting against ``uniform`` at the same λ, on the
    full view's test accuracy, paired by seed (docs/METHOD.md §13): where every paired run recorded its
    test outcomes (``predictions[(regime, student, method, seed)]``), the test over seeds and examples
    (§13.2), else the paired t-test over seeds (§13.1); the t-interval; Holm's p over every comparison
    of the table, one family (§13.5); the seeds the difference would need (§13.6); and, beside them,
    McNemar's test on the pooled outcomes, which holds these trained models fixed and decides nothing
    (§13.3). A comparison is real when its Holm p is below 0.05."""
    import numpy as np

    from msd_core.analysis.significance import holm, paired_t, seeds_and_examples, seeds_needed
    from experiments.predictions import unbits

    predictions = predictions or {}
    full = df[df["view"] == "full"]
    found = []
    for (regime, student), part in full.groupby(["regime", "student"], sort=False):
        acc = {m: g.set_index("seed")["accuracy"] for m, g in part.groupby("method")}
        pairs = [(m, "kd") for m in sorted(acc) if m.startswith("msd")]
        pairs += [(m, m.replace(m.split()[1], "uniform")) for m in sorted(acc)
                  if m.startswith("msd") and m.split()[1] != "uniform"]
        for b, a in pairs:
            if a not in acc:
                continue
            seeds = sorted(acc[a].index.intersection(acc[b].index))
            diffs = (acc[b][seeds] - acc[a][seeds]).to_numpy()
            keys = [(regime, student, m, sd) for sd in seeds for m in (a, b)]
            outcomes = seeds and all(k in predictions for k in keys)
            if outcomes:
                rows_a, rows_b = ([unbits(predictions[(regime, student, m, sd)]).astype(float) for sd in seeds]
                                  for m in (a, b))
                test, name = seeds_and_examples(np.stack(rows_a), np.stack(rows_b)), "seeds × examples"
                mc = p_text(pooled_mcnemar(*([predictions[(regime, student, m, sd)] for sd in seeds]
                                             for m in (a, b)))["p"], digits=2)
            else:
                test, name, mc = paired_t(acc[a][seeds].to_numpy(), acc[b][seeds].to_numpy()), "seeds", "—"
            found.append((regime, student, b, a, test, name, len(seeds), seeds_needed(diffs), mc))
    adjusted = holm([f[4]["p"] for f in found])
    lines = ["| regime | student | comparison | mean difference | test | 95 % t-interval | p | Holm p | seeds | "
             "seeds needed | verdict | McNemar p (these models) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (regime, student, b, a, t, name, n, needed, mc), hp in zip(found, adjusted):
        lo, hi = t["ci"] or (float("nan"), float("nan"))
        real = hp is not None and hp < 0.05
        lines.append(f"| {regime} | {student} | {b} − {a} | {t['mean_diff']:+.4f} | {name} | [{lo:+.4f}, {hi:+.4f}] | "
                     f"{p_text(t['p'])} | {p_text(hp)} | {n} | {needed_text(needed)} | "
                     f"{'**real**' if real else 'within the noise'} | {mc} |")
    return "\n".join(lines)


def needed_text(n: int | None) -> str:
    return "—" if n is None else (f"> {n - 1}" if n > 1000 else str(n))


def significance_rule(table: str) -> str:
    """What a table of ``significance`` decides with, and over which family."""
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    real = sum("**real**" in line for line in rows)
    return (f"A difference is called real when its Holm-adjusted p is below 0.05, Holm's correction taken over "
            f"all {len(rows)} comparisons of the table at once ({real} {'is' if real == 1 else 'are'} real). The test is over seeds and "
            f"examples where every paired run recorded its per-question outcomes (docs/METHOD.md §13.2: the "
            f"spread between seeds and the test set's sampling spread), else the paired t-test over seeds "
            f"(§13.1); the interval is the t-interval, which with 3 seeds has 2 degrees of freedom. \"Seeds needed\" "
            f"is how many paired seeds a paired t-test would need to find the difference 80 % of the time, if the "
            f"observed difference and spread were the truth (§13.6). \"Within the noise\" does not mean \"no "
            f"difference\": it means these seeds cannot tell. McNemar's p (pooled over the seed pairs) is shown "
            f"beside the verdict and decides nothing: it holds these trained models fixed and counts one question "
            f"in five seeds as five independent pairs (§13.3).")


def p_text(p: float | None, digits: int = 3) -> str:
    """A p-value for a table: ``digits`` decimals, scientific below 0.001, and "< 1e-300" where the
    float underflowed to 0 (McNemar's on tens of thousands of pooled questions)."""
    if p is None:
        return "—"
    if p == 0:
        return "< 1e-300"
    if digits == 2:
        return f"{p:.2g}"
    return f"{p:.{digits}f}" if p >= 0.001 else f"{p:.1e}"
