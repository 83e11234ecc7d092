"""Which differences are real: known answers for the paired t-test, McNemar and the bootstrap."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from msd_core.analysis.significance import (bootstrap_ci, consistent_changes, example_tests, mcnemar,
                                            paired_metric_tests, paired_t, pair_by_seed, saliency_share,
                                            weight_trajectories)


def test_paired_t_matches_a_hand_computation():
    # d = [0.1, 0.05, 0.1]: mean 1/12, sd = sqrt(1/1200), t = mean / (sd/√3) = 5, dof 2.
    # With 2 dof, P(|T| ≥ t) = 1 − t/√(2 + t²) = 1 − 5/√27.
    out = paired_t([0.5, 0.6, 0.7], [0.6, 0.65, 0.8])
    assert out["dof"] == 2 and out["t"] == pytest.approx(5.0)
    assert out["mean_diff"] == pytest.approx(1 / 12)
    assert out["p"] == pytest.approx(1 - 5 / math.sqrt(27), rel=1e-9)
    # 1 dof is the Cauchy: P(|T| ≥ t) = 1 − 2·atan(t)/π; d = [0.1, 0.3] gives t = 2
    two = paired_t([0.0, 0.0], [0.1, 0.3])
    assert two["t"] == pytest.approx(2.0) and two["p"] == pytest.approx(1 - 2 * math.atan(2.0) / math.pi, rel=1e-9)


def test_paired_t_with_one_seed_says_it_needs_two():
    out = paired_t([0.5], [0.6])
    assert out["t"] is None and out["p"] is None and out["note"] == "needs ≥ 2 paired seeds (has 1)"


def test_paired_t_with_the_same_difference_every_seed():
    out = paired_t([0.5, 0.6], [0.6, 0.7])
    assert out["t"] == math.inf and out["p"] == 0.0 and "same difference" in out["note"]
    assert paired_t([0.5, 0.6], [0.5, 0.6])["p"] == 1.0


def test_the_statistics_agree_with_scipys_tests():
    from scipy import stats

    rng = np.random.default_rng(1)
    for n in (2, 3, 5, 12):
        a, b = rng.normal(size=n), rng.normal(0.3, size=n)
        want = stats.ttest_rel(b, a)
        got = paired_t(a, b)
        assert got["t"] == pytest.approx(want.statistic, rel=1e-9)
        assert got["p"] == pytest.approx(want.pvalue, rel=1e-7, abs=1e-12)
    for b, c in ((10, 2), (3, 3), (0, 7), (30, 15), (100, 60)):
        got = mcnemar([True] * b + [False] * c, [False] * b + [True] * c)
        if b + c < 25:
            assert got["p"] == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
        else:
            assert got["p"] == pytest.approx(stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1), rel=1e-9)


def test_mcnemar_matches_hand_computations():
    # b = 10 (A right, B wrong), c = 2: exact, 2·(C(12,0)+C(12,1)+C(12,2))/2^12 = 158/4096
    a = np.array([True] * 10 + [False] * 2 + [True] * 5 + [False] * 4)
    b = np.array([False] * 10 + [True] * 2 + [True] * 5 + [False] * 4)
    out = mcnemar(a, b)
    assert (out["b"], out["c"], out["test"]) == (10, 2, "exact binomial")
    assert out["p"] == pytest.approx(158 / 4096)
    # b = 30, c = 15: chi-square (|30 − 15| − 1)²/45 = 196/45 on one dof, p = erfc(√(x/2))
    out = mcnemar([True] * 30 + [False] * 15, [False] * 30 + [True] * 15)
    assert out["test"] == "chi-square (continuity corrected)" and out["statistic"] == pytest.approx(196 / 45)
    assert out["p"] == pytest.approx(math.erfc(math.sqrt(196 / 90)))
    assert out["p"] == pytest.approx(0.03689, abs=1e-5)
    assert mcnemar([True, False], [True, False])["p"] == 1.0  # no disagreement


def test_bootstrap_ci_covers_the_true_difference_and_is_seeded():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(40):
        diffs = rng.normal(0.05, 0.02, size=8)
        lo, hi = bootstrap_ci(diffs, resamples=2000, seed=3)
        covered += lo <= 0.05 <= hi
        assert lo <= diffs.mean() <= hi
    assert covered >= 32  # nominal 95%; the percentile bootstrap runs a little narrow with 8 values
    d = rng.normal(size=5)
    assert bootstrap_ci(d, seed=1) == bootstrap_ci(d, seed=1) != bootstrap_ci(d, seed=2)


def run(tmp_path, run_id, method, seed, full, data="synthetic"):
    out = tmp_path / run_id
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"test": {"full": {"accuracy": full}},
                                                  "population_saliency": {"image": 0.3, "text": 0.1}}))
    config = {"distill": {"method": method, "weighting": "instance-soft", "lam": 1.0},
              "model": {"preset": "student-small"}, "train": {"seed": seed}, "data": {"name": data}}
    return {"id": run_id, "out_dir": str(out), "config": config}


def test_runs_pair_by_seed_per_data_set_and_are_tested(tmp_path):
    runs = [run(tmp_path, "k0", "kd", 0, 0.5), run(tmp_path, "k1", "kd", 1, 0.6), run(tmp_path, "k2", "kd", 2, 0.7),
            run(tmp_path, "m0", "msd", 0, 0.6), run(tmp_path, "m1", "msd", 1, 0.65), run(tmp_path, "m2", "msd", 2, 0.8),
            run(tmp_path, "m9", "msd", 9, 0.9),  # no KD run of seed 9: unpaired
            run(tmp_path, "e0", "kd", 0, 0.1, data="easy-vqa"), run(tmp_path, "f0", "msd", 0, 0.2, data="easy-vqa")]
    kd, msd = "kd · student-small", "msd instance-soft λ=1.0 · student-small"
    pairs = pair_by_seed(runs, kd, msd)
    assert [(s, a["id"], b["id"]) for s, a, b in pairs["synthetic"]] == [(0, "k0", "m0"), (1, "k1", "m1"),
                                                                         (2, "k2", "m2")]
    table = paired_metric_tests(runs, kd, msd).set_index("data")
    assert table.loc["synthetic", "t"] == pytest.approx(5.0) and table.loc["synthetic", "seeds"] == [0, 1, 2]
    assert table.loc["synthetic", "CI low"] <= 1 / 12 <= table.loc["synthetic", "CI high"]
    assert table.loc["easy-vqa", "note"] == "needs ≥ 2 paired seeds (has 1)"
    assert table.loc["easy-vqa", "B − A"] == pytest.approx(0.1) and pd.isna(table.loc["easy-vqa", "p"])


def test_example_tests_pool_seeds_and_find_consistent_fixes(tmp_path):
    pairs = [(0, {"id": "a0"}, {"id": "b0"}), (1, {"id": "a1"}, {"id": "b1"})]
    correct = {"a0": np.array([0, 0, 1, 1, 0], bool), "b0": np.array([1, 1, 0, 1, 0], bool),
               "a1": np.array([0, 1, 1, 1, 0], bool), "b1": np.array([1, 1, 0, 0, 0], bool)}
    out = example_tests(pairs, correct)
    assert (out["b"], out["c"], out["pairs"], out["seed pairs"]) == (3, 3, 10, 2) and out["p"] == 1.0
    changes = consistent_changes(pairs, correct, ["x0", "x1", "x2", "x3", "x4"], ["p", "q", "p", "q", "p"])
    assert changes.to_dict("records") == [
        {"index": 0, "id": "x0", "label": "p", "change": "fixed by B in every seed"},
        {"index": 2, "id": "x2", "label": "p", "change": "broken by B in every seed"}]


def test_weight_trajectories_share_and_saliency_share(tmp_path):
    r = run(tmp_path, "m0", "msd", 0, 0.6)
    logged = [{"step": s, "name": f"train/w:{m}:mean", "value": v, "time": 0.0}
              for s, (wi, wt) in enumerate([(1.0, 1.0), (1.5, 0.5)]) for m, v in (("image", wi), ("text", wt))]
    curves = weight_trajectories(r, lambda run_id, names: [x for x in logged if x["name"] in names])
    assert list(curves.columns) == ["step", "modality", "weight", "share"]
    assert curves[(curves.step == 1) & (curves.modality == "image")]["share"].item() == pytest.approx(0.75)
    assert saliency_share({"image": 0.3, "text": 0.1}) == pytest.approx({"image": 0.75, "text": 0.25})
    assert saliency_share({"image": -0.1, "text": 0.2}) == {"image": 0.0, "text": 1.0}
    assert saliency_share({"image": -0.1, "text": -0.2}) == {"image": 0.5, "text": 0.5}
    assert weight_trajectories(r, lambda *_: []).empty
