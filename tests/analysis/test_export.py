"""Exports: the per-example Parquet round trip, the metrics table in each format, ``msd export``."""

import json

import numpy as np
import pandas as pd
import pytest

from msd_core.analysis.export import (check_same_data, examples_frame, format_table, metrics_summary,
                                      parquet_bytes, read_export_meta)
from msd_core.config import DataConfig, DistillConfig
from msd_core.errors import ConfigError
from tests.conftest import teacher_and_students

DATA = dict(options={"n": 2000}, max_train_examples=64, max_eval_examples=24)


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    """A tiny teacher and two finished students (KD and MSD, seed 0) in a registry."""
    home = tmp_path_factory.mktemp("export")
    students = {method: DistillConfig(method=method) for method in ("kd", "msd")}
    with teacher_and_students(home, DataConfig("synthetic", **DATA), students) as (reg, ids):
        yield home, reg, ids


def test_examples_parquet_round_trip_equals_predict_and_the_cache(students, tmp_path, monkeypatch):
    from msd_core.data.collate import Collator
    from msd_core.data.registry import load_split
    from msd_core.data.views import named_views
    from msd_core.engine.checkpoint import load_model
    from msd_core.engine.predict import predict_views
    from msd_core.engine.teacher_cache import teacher_logits
    from msd_core.method.saliency import modality_saliency, shapley_values

    home, reg, ids = students
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(home / "cache"))
    runs = [reg.run(i) for i in ids]
    frame, meta = examples_frame(runs, "test")
    path = tmp_path / "examples.parquet"
    path.write_bytes(parquet_bytes(frame, meta))
    back = pd.read_parquet(path)
    data = DataConfig("synthetic", **DATA)
    ds = load_split(data, "test")
    assert len(back) == len(ds) == 24 and list(back["id"]) == [e.id for e in ds.examples]
    assert list(back["label"]) == [ds.labels[e.target] for e in ds.examples]
    labels = ds.labels
    expected = {"index", "id", "label"}
    for who, views in (("teacher", ["full", "only:image", "only:text", "without:image", "without:text"]),
                       *((i, ["full", "only:image", "only:text"]) for i in ids)):
        for v in views:
            expected |= {f"{who}/{v}/logit:{c}" for c in labels} | {f"{who}/{v}/pred"}
            if who != "teacher":
                expected.add(f"{who}/{v}/correct")
    expected |= {f"teacher/{k}:{m}" for k in ("sal", "shapley") for m in ("image", "text")}
    assert set(back.columns) == expected

    cache = teacher_logits(str(home / "teacher"), data, ds, subsets=True, device="cpu")
    t_full = np.stack([back[f"teacher/full/logit:{c}"] for c in labels], 1)
    np.testing.assert_allclose(t_full, cache.logits["full"][:].numpy(), rtol=1e-6)
    np.testing.assert_allclose(back["teacher/sal:image"], modality_saliency(cache)["image"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(back["teacher/shapley:text"], shapley_values(cache)["text"].numpy(), rtol=1e-6)
    model, _ = load_model(home / "msd" / "model.safetensors")
    logits, targets = predict_views(model, ds, Collator.for_data(ds, data), "cpu",
                                    named_views(ds.modality_names))
    for v in ("full", "only:text"):
        z = np.stack([back[f"{ids[1]}/{v}/logit:{c}"] for c in labels], 1)
        np.testing.assert_allclose(z, logits[v].numpy(), rtol=1e-5, atol=1e-6)
        assert list(back[f"{ids[1]}/{v}/pred"]) == [labels[i] for i in logits[v].argmax(-1).tolist()]
        assert back[f"{ids[1]}/{v}/correct"].tolist() == (logits[v].argmax(-1) == targets).tolist()
    # the saved test accuracy is the mean of the exported correct column
    saved = json.loads((home / "msd" / "metrics.json").read_text())["test"]["full"]["accuracy"]
    assert back[f"{ids[1]}/full/correct"].mean() == pytest.approx(saved)
    meta_back = read_export_meta(path)
    assert meta_back["split"] == "test" and set(meta_back["runs"]) == set(ids)
    assert meta_back["runs"][ids[0]]["group"] == "kd · student-two-tower"


def test_runs_on_different_data_are_refused():
    a = {"id": "a", "kind": "student", "config": {"teacher": "t", "data": {"name": "synthetic"}}}
    b = {"id": "b", "kind": "student", "config": {"teacher": "t", "data": {"name": "easy-vqa"}}}
    with pytest.raises(ConfigError, match="different data .*export them separately"):
        check_same_data([a, b])
    with pytest.raises(ConfigError, match="pick at least one"):
        check_same_data([])


def fake_run(tmp_path, run_id, method, seed, full, text):
    out = tmp_path / run_id
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"test": {"full": {"accuracy": full, "loss": 0.1},
                                                           "only:text": {"accuracy": text, "loss": 0.2}}}))
    return {"id": run_id, "out_dir": str(out), "config": {"distill": {"method": method, "weighting": "uniform",
                                                                      "lam": 1.0}, "model": {"preset": "s_1"},
                                                          "train": {"seed": seed}, "data": {"name": "synthetic"}}}


def test_metrics_table_in_each_format_has_mean_std_and_best_in_bold(tmp_path):
    runs = [fake_run(tmp_path, "k0", "kd", 0, 0.50, 0.40), fake_run(tmp_path, "k1", "kd", 1, 0.60, 0.30),
            fake_run(tmp_path, "m0", "msd", 0, 0.70, 0.30)]
    summary = metrics_summary(runs)
    csv = pd.read_csv(__import__("io").StringIO(format_table(summary, "csv")))
    kd = csv[csv.group == "kd · s_1"].iloc[0]
    assert kd["seeds"] == 2 and kd["full accuracy mean"] == pytest.approx(0.55)
    assert kd["full accuracy std"] == pytest.approx(0.0707107, abs=1e-6)  # sample std (ddof = 1)
    assert pd.isna(csv[csv.group.str.startswith("msd")].iloc[0]["full accuracy std"])  # one seed: no std

    md = format_table(summary, "md").splitlines()
    assert md[0] == "| data | method | seeds | full accuracy | only:text accuracy |"
    assert md[2] == "| synthetic | kd · s_1 | 2 | 0.5500 ± 0.0707 | **0.3500 ± 0.0707** |"
    assert md[3] == "| synthetic | msd uniform λ=1.0 · s_1 | 1 | **0.7000** | 0.3000 |"

    tex = format_table(summary, "tex")
    assert r"\begin{tabular}{llrrr}" in tex and r"\end{tabular}" in tex
    assert r"synthetic & kd $\cdot$ s\_1 & 2 & 0.5500 $\pm$ 0.0707 & \textbf{0.3500 $\pm$ 0.0707} \\" in tex
    assert r"msd uniform $\lambda$=1.0 $\cdot$ s\_1 & 1 & \textbf{0.7000} & 0.3000 \\" in tex
    with pytest.raises(ConfigError, match="use one of csv, md, tex"):
        format_table(summary, "xlsx")


def test_msd_export_command(students, tmp_path, monkeypatch, capsys):
    from msd_core.cli import main

    home, reg, ids = students
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(home / "cache"))
    monkeypatch.chdir(tmp_path)
    db = str(home / "registry.sqlite")
    assert main(["export", "--runs", *ids, "--what", "table", "--out", "out/table.md", "--db", db]) == 0
    text = (tmp_path / "out" / "table.md").read_text()
    assert text.startswith("| data | method | seeds | full accuracy") and text.count("**") >= 2
    assert "-> out/table.md" in capsys.readouterr().out
    assert main(["export", "--runs", ids[1], "--what", "examples", "--format", "parquet", "--out", "ex.bin",
                 "--db", db, "--split", "val"]) == 0
    back = pd.read_parquet(tmp_path / "ex.bin")
    assert len(back) == 24 and f"{ids[1]}/full/pred" in back.columns
    capsys.readouterr()
    # mistakes a user can make: each a message and exit code 2
    for argv, says in (
            (["--what", "examples", "--out", "x.md"], "cannot hold the examples export: use one of parquet, csv"),
            (["--what", "table", "--out", "x.txt"], "say the format with --format"),
            (["--what", "table", "--out", "x.csv", "--runs", "nope"], "no run 'nope'")):
        run_ids = [] if "--runs" in argv else ["--runs", *ids]
        assert main(["export", *run_ids, *argv, "--db", db]) == 2
        assert says in capsys.readouterr().err
    reg.finish(ids[0], "failed", "test")
    try:
        assert main(["export", "--runs", *ids, "--out", "t.csv", "--db", db]) == 2
        assert "only finished runs can be exported" in capsys.readouterr().err
    finally:
        reg.finish(ids[0], "finished")
