"""Comparing runs: config differences, groups, mean ± std across seeds, seed bands."""

import json

import pandas as pd
import pytest

from msd_core.analysis.compare import config_diff, default_curve, flatten, per_run_metrics, results_table, seed_bands
from msd_core.analysis.finished import group_name


def finished_run(tmp_path, run_id, method, seed, full, text, weighting="uniform", lam=1.0):
    out = tmp_path / run_id
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"test": {
        "full": {"accuracy": full, "loss": 0.1, "agreement": 0.9},
        "only:text": {"accuracy": text, "loss": 0.2}}}))
    config = {"distill": {"method": method, "weighting": weighting, "lam": lam}, "model": {"preset": "student-small"},
              "train": {"seed": seed}}
    return {"id": run_id, "out_dir": str(out), "config": config}


def test_flatten_and_config_diff_keep_only_what_differs():
    a = {"train": {"seed": 0, "lr": 1e-3}, "data": {"name": "synthetic", "options": {"n": 5}}}
    b = {"train": {"seed": 1, "lr": 1e-3}, "data": {"name": "synthetic", "options": {"n": 5}}}
    assert flatten(a) == {"train.seed": 0, "train.lr": 1e-3, "data.name": "synthetic", "data.options.n": 5}
    diff = config_diff({"A": a, "B": b})
    assert diff.to_dict("records") == [{"setting": "train.seed", "A": 0, "B": 1}]
    assert config_diff({"A": a, "B": a}).empty


def test_group_name_says_what_a_run_is_seed_aside():
    assert group_name({"distill": {"method": "msd", "weighting": "instance-soft", "lam": 0.5},
                       "model": {"preset": "student-small"}}) == "msd instance-soft λ=0.5 · student-small"
    assert group_name({"distill": {"method": "kd", "weighting": "uniform"},
                       "model": {"preset": "student-two-tower"}}) == "kd · student-two-tower"
    assert group_name({"kind": "teacher", "model": {"preset": "teacher-small"}}) == "teacher · teacher-small"


def test_results_table_is_mean_and_sample_std_over_seeds(tmp_path):
    runs = [finished_run(tmp_path, "k0", "kd", 0, 0.50, 0.40), finished_run(tmp_path, "k1", "kd", 1, 0.60, 0.30),
            finished_run(tmp_path, "m0", "msd", 0, 0.70, 0.65)]
    table = results_table(runs).set_index("group")
    assert table.loc["kd · student-small", "seeds"] == 2
    assert table.loc["kd · student-small", "full accuracy"] == "0.5500 ± 0.0707"  # std with ddof=1
    assert table.loc["msd uniform λ=1.0 · student-small", "only:text accuracy"] == "0.6500"
    assert table.loc["kd · student-small", "full agreement"] == "0.9000 ± 0.0000"
    long = per_run_metrics(runs)
    assert len(long) == 3 * 5 and set(long["metric"]) == {"accuracy", "loss", "agreement"}
    assert long[(long.run == "k1") & (long.view == "only:text") & (long.metric == "accuracy")]["value"].item() == 0.3


def test_runs_without_metrics_are_left_out(tmp_path):
    runs = [{"id": "x", "out_dir": str(tmp_path / "nothing"), "config": {}}]
    assert results_table(runs).empty and per_run_metrics(runs).empty


def test_seed_bands_span_the_seeds_step_by_step():
    curves = {"a": pd.DataFrame({"step": [0, 1, 2], "value": [1.0, 2.0, 3.0]}),
              "b": pd.DataFrame({"step": [0, 2], "value": [3.0, 1.0]})}
    band = seed_bands(curves)["band"]
    assert band["lo"].tolist() == [1.0, 2.0, 1.0] and band["hi"].tolist() == [3.0, 2.0, 3.0]
    assert seed_bands({"a": curves["a"]}) == {}


def test_compare_opens_on_a_curve_every_method_shares():
    logged = ["train/ce", "train/kd", "train/kd:image", "train/loss", "val/full/accuracy", "val/only:image/accuracy"]
    assert default_curve(logged) == "val/full/accuracy"
    assert default_curve(["train/loss", "val/full/accuracy", "val/full/auroc"]) == "val/full/auroc"  # the headline
    assert default_curve(["train/ce", "train/loss"]) == "train/ce"  # before the first validation
    assert default_curve(["train/loss", "train/lr"]) == "train/loss"
    assert default_curve(["train/lr"]) == "train/lr"
