"""Which differences are real: known answers for the paired t-test and its interval, the test over
seeds and examples (against a two-level bootstrap), McNemar, Holm, the seeds needed and the
two-cluster warning, and the table of method tests on made-up runs."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from msd_core.analysis.significance import (cluster_warnings, consistent_changes, example_tests, holm, mcnemar,
                                            method_tests, paired_t, pair_by_seed, saliency_share, seeds_and_examples,
                                            seeds_needed, two_clusters, weight_trajectories)


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
            assert got["p"] == pytest.approx(stats.chi2.sf(max(abs(b - c) - 1, 0) ** 2 / (b + c), 1), rel=1e-9)


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


def test_the_t_interval_of_three_seeds_is_wide_not_the_range_of_the_seeds():
    # The Distill page's default launch: MSD − KD per seed +0.0450, +0.0277, +0.0209. A percentile
    # bootstrap of 3 values returns their range [+0.0209, +0.0450]; the t-interval on 2 dof is
    # mean ± t_{2, 0.975}·sd/√3 with t_{2, 0.975} = 4.30265.
    d = np.array([0.0450, 0.0277, 0.0209])
    out = paired_t(np.zeros(3), d)
    half = 4.302652729749464 * d.std(ddof=1) / math.sqrt(3)
    assert out["ci"] == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-12)
    assert out["ci"][0] == pytest.approx(0.00033, abs=1e-5) and out["ci"][1] == pytest.approx(0.06206, abs=1e-5)
    assert out["p"] == pytest.approx(0.0490, abs=5e-4) and out["dof"] == 2
    assert paired_t([0.5], [0.6])["ci"] is None


def test_seeds_and_examples_matches_a_hand_computation():
    # 2 seeds × 4 examples. d = B − A per seed: [1, 0, 1, 0] and [1, 1, 0, 0].
    a = np.array([[0, 1, 0, 1], [0, 0, 1, 1]], float)
    b = np.array([[1, 1, 1, 1], [1, 1, 1, 1]], float)
    out = seeds_and_examples(a, b)
    # D̄ = 0.5; per-seed means [0.5, 0.5]: s²_seed = 0; per-example means [1, .5, .5, 0]: s²_ex = 1/6.
    # V = 0 + (1/6)/4 = 1/24, t = 0.5·√24 = √6, dof = V²/((1/24)²/3) = 3.
    assert out["mean_diff"] == 0.5 and out["se"] == pytest.approx(math.sqrt(1 / 24))
    assert out["t"] == pytest.approx(math.sqrt(6)) and out["dof"] == pytest.approx(3.0)
    assert out["p"] == pytest.approx(2 * __import__("scipy").stats.t.sf(math.sqrt(6), 3))
    assert out["seed_share"] == 0.0
    # Seeds that disagree: d per seed [1,1,1,1] and [0,0,0,0]: s²_seed = 0.5, s²_ex = 0, dof = n − 1 = 1.
    out = seeds_and_examples(np.zeros((2, 4)), np.array([[1, 1, 1, 1], [0, 0, 0, 0]], float))
    assert out["se"] == pytest.approx(0.5) and out["dof"] == pytest.approx(1.0) and out["seed_share"] == 1.0
    assert seeds_and_examples(np.zeros((1, 4)), np.ones((1, 4)))["note"] == "needs ≥ 2 paired seeds (has 1)"
    with pytest.raises(ValueError, match="seeds × examples of one shape"):
        seeds_and_examples(np.zeros((2, 4)), np.zeros((2, 5)))


def test_seeds_and_examples_agrees_with_a_two_level_bootstrap():
    """The peer: resample seeds, then examples, with replacement; the standard deviation of the mean
    difference over the resamples is the standard error §13.2 computes in closed form."""
    rng = np.random.default_rng(7)
    n, N = 5, 400
    skill = rng.normal(0, 1, N)  # some examples are hard for every run
    seed_effect = rng.normal(0.03, 0.02, n)
    p_a = 1 / (1 + np.exp(-(skill[None, :] + rng.normal(0, 0.3, (n, 1)))))
    p_b = 1 / (1 + np.exp(-(skill[None, :] + 0.15 + seed_effect[:, None] * 5)))
    a, b = (rng.random((n, N)) < p_a).astype(float), (rng.random((n, N)) < p_b).astype(float)
    out = seeds_and_examples(a, b)
    d = b - a
    means = [d[rng.integers(0, n, n)][:, rng.integers(0, N, N)].mean() for _ in range(4000)]
    assert out["se"] == pytest.approx(float(np.std(means)), rel=0.15)


def test_mcnemar_with_equal_disagreements_is_p_one():
    for k in (25, 40, 400):
        out = mcnemar([True] * k + [False] * k, [False] * k + [True] * k)
        assert out["test"] == "chi-square (continuity corrected)" and out["statistic"] == 0.0 and out["p"] == 1.0
    assert mcnemar([True] * 13 + [False] * 12, [False] * 13 + [True] * 12)["p"] == 1.0  # |b − c| = 1


def test_holm_matches_a_hand_computation():
    # m = 4 sorted 0.01, 0.02, 0.03, 0.2 → 0.04, max(0.04, 0.06), max(0.06, 0.06), max(0.06, 0.2)
    assert holm([0.03, 0.01, None, 0.2, 0.02]) == pytest.approx([0.06, 0.04, None, 0.2, 0.06])
    assert holm([0.5, 0.6]) == [1.0, 1.0] and holm([0.01, 0.6]) == [0.02, 0.6] and holm([]) == []


def test_seeds_needed_matches_the_textbook_sample_sizes():
    # A paired (one-sample) t-test, two-sided α = 0.05, power 0.8, by effect size mean/sd: 1 → 10,
    # 0.8 → 15, 0.5 → 34, 0.2 → 199 (Cohen's tables; G*Power's one-sample t-test gives the same).
    h = math.sqrt(2) / 2  # two values e ± h have mean e and sd 1
    for effect, n in ((1.0, 10), (0.8, 15), (0.5, 34), (0.2, 199)):
        assert seeds_needed(np.array([effect - h, effect + h])) == n
        assert seeds_needed(-np.array([effect - h, effect + h])) == n  # either sign
    assert seeds_needed([0.1, 0.1]) == 2 and seeds_needed([0.1]) is None and seeds_needed([-0.1, 0.1]) is None
    assert seeds_needed(np.array([0.01 - h, 0.01 + h]), most=50) == 51


def test_two_clusters_finds_a_seed_apart_and_nothing_in_ordinary_spread():
    # student-small's KD over 5 seeds: four near 0.67, one at 0.79
    found = two_clusters([0.6809, 0.6708, 0.7878, 0.6690, 0.6673])
    assert found == {"low": [0.6673, 0.669, 0.6708, 0.6809], "high": [0.7878], "gap": pytest.approx(0.1069)}
    assert two_clusters([0.79, 0.80, 0.81, 0.805]) is None  # even spread
    assert two_clusters([0.70, 0.701, 0.71]) is None  # a gap below 2 points
    assert two_clusters([0.67, 0.79]) is None  # two seeds cannot show it
    assert two_clusters([0.60, 0.62, 0.70, 0.72])  # 8 points between pairs 2 points wide


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
    table = method_tests(runs, kd).set_index("data")
    syn, easy = table.loc["synthetic"], table.loc["easy-vqa"]
    assert syn["t"] == pytest.approx(5.0) and syn["seeds"] == [0, 1, 2] and syn["test"] == "seeds"
    assert syn["CI low"] <= 1 / 12 <= syn["CI high"]
    assert syn["seeds needed"] == 4  # the observed effect (t = 5 on 3 seeds) has power 0.72 at 3 seeds, 0.96 at 4
    assert syn["note"] == "seeds without a partner (not counted): 9"
    assert syn["Holm p"] == syn["p"]  # the easy-vqa row has no test, so a family of one
    assert easy["note"] == "needs ≥ 2 paired seeds (has 1): launch more seeds of both methods"
    assert easy["B − A"] == pytest.approx(0.1) and pd.isna(easy["p"]) and easy["verdict"] == "not tested"


def test_method_tests_use_per_example_scores_and_correct_over_the_family(tmp_path):
    """Two methods against KD on one data set: the test over seeds and examples where each run's
    per-example scores are given (and give its recorded accuracy), Holm over both rows."""
    rng = np.random.default_rng(3)
    scores, runs = {}, []
    for method, shift in (("kd", 0.0), ("msd", 0.2), ("none", -0.02)):
        for seed in range(3):
            s = (rng.random(200) < 0.6 + shift + 0.01 * seed).astype(float)
            r = run(tmp_path, f"{method}{seed}", method, seed, float(s.mean()))
            scores[r["id"]] = s
            runs.append(r)
    table = method_tests(runs, "kd · student-small", scores=lambda r: scores[r["id"]]).set_index("method")
    msd, none = table.loc["msd instance-soft λ=1.0 · student-small"], table.loc["none · student-small"]
    want = seeds_and_examples(np.stack([scores[f"kd{s}"] for s in range(3)]),
                              np.stack([scores[f"msd{s}"] for s in range(3)]))
    assert msd["test"] == "seeds × examples" and msd["p"] == pytest.approx(want["p"])
    assert (msd["CI low"], msd["CI high"]) == pytest.approx(want["ci"])
    assert msd["Holm p"] == pytest.approx(min(1.0, 2 * min(msd["p"], none["p"])) if msd["p"] < none["p"] else
                                          max(msd["p"], 2 * none["p"]))
    assert msd["verdict"] == "B better" and none["verdict"] == "no clear difference"
    # scores that do not give the recorded metric are not used: the test falls back to the seeds
    table = method_tests(runs, "kd · student-small", scores=lambda r: 1 - scores[r["id"]]).set_index("method")
    assert table.loc["msd instance-soft λ=1.0 · student-small", "test"] == "seeds"
    assert "do not give the recorded metric" in table.loc["msd instance-soft λ=1.0 · student-small", "note"]


def test_what_cannot_be_tested_says_what_to_launch(tmp_path):
    runs = [run(tmp_path, "k0", "kd", 0, 0.5), run(tmp_path, "k1", "kd", 1, 0.6),
            run(tmp_path, "m2", "msd", 2, 0.6), run(tmp_path, "m3", "msd", 3, 0.7),
            run(tmp_path, "f0", "msd", 0, 0.2, data="easy-vqa")]
    table = method_tests(runs, "kd · student-small").set_index("data")
    assert table.loc["synthetic", "note"] == ("no seed in common (baseline: 0, 1; this method: 2, 3): runs pair up "
                                              "by seed, so launch both with the same seeds")
    assert table.loc["easy-vqa", "note"] == "kd · student-small has no run on easy-vqa: launch it with the seeds 0"
    assert table["p"].isna().all() and (table["verdict"] == "not tested").all()
    runs = [run(tmp_path / "x", "k0", "kd", 0, 0.5) if (tmp_path / "x").mkdir() is None else None,
            run(tmp_path / "x", "k1", "kd", 1, 0.6), run(tmp_path / "x", "m0", "msd", 0, 0.6),
            run(tmp_path / "x", "m1", "msd", 1, 0.65)]
    (tmp_path / "x" / "m1" / "metrics.json").write_text(json.dumps({"test": {"full": {"loss": 1.0}}}))
    row = method_tests(runs, "kd · student-small").iloc[0]
    assert row["note"].startswith("needs ≥ 2 paired seeds (has 1): launch more seeds of both methods; no accuracy "
                                  "on the full view in: m1 (accuracy on full)") and pd.isna(row["p"])


def test_runs_of_two_regimes_of_one_data_set_never_pair(tmp_path):
    """KD and MSD on 2,000 and on all easy-VQA questions, seeds 0 and 1: two data settings, each tested
    on its own seeds (pairing across them would compare a 2k run with an all-data run)."""
    runs = []
    for examples, base in ((2000, 0.7), (None, 0.8)):
        for seed in (0, 1):
            for method, lift in (("kd", 0.0), ("msd", 0.05)):
                r = run(tmp_path, f"{method}{seed}-{examples}", method, seed, base + lift + 0.01 * seed, "easy-vqa")
                r["config"]["data"]["max_train_examples"] = examples
                runs.append(r)
    table = method_tests(runs, "kd · student-small").set_index("data")
    assert list(table.index) == ["easy-vqa · 2,000 training examples", "easy-vqa"]
    assert table["B − A"].tolist() == pytest.approx([0.05, 0.05]) and table["seeds"].tolist() == [[0, 1], [0, 1]]


def test_cluster_warnings_name_the_method_and_its_seeds(tmp_path):
    values = [0.6809, 0.6708, 0.7878, 0.6690, 0.6673]
    runs = [run(tmp_path, f"k{s}", "kd", s, v) for s, v in enumerate(values)]
    runs += [run(tmp_path, f"m{s}", "msd", s, v) for s, v in enumerate([0.86, 0.87, 0.86, 0.88, 0.87])]
    (found,) = cluster_warnings(runs)
    assert found["method"] == "kd · student-small" and found["high"] == {2: 0.7878}
    assert sorted(found["low"]) == [0, 1, 3, 4] and found["gap"] == pytest.approx(0.1069)


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
