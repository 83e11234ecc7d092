"""Short KD / MSD distillations end to end on a tiny synthetic teacher."""

import json

import pytest

from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.distill import distill
from msd_core.errors import ConfigError
from msd_core.teacher import train_teacher
from tests.conftest import TINY

DATA = DataConfig("synthetic", options={"n": 96}, max_eval_examples=32)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "t"
    train_teacher(TeacherRunConfig(data=DATA, model=ModelConfig("student-small", overrides=dict(TINY)),
                                   train=TrainConfig(epochs=2, batch_size=16, lr=3e-3), out_dir=str(out)),
                  progress=False)
    return out


def run(tmp_path, teacher, name, **distill_kw):
    cfg = DistillRunConfig(teacher=str(teacher), data=DATA, model=ModelConfig("student-two-tower", dict(TINY)),
                           train=TrainConfig(epochs=1, batch_size=16, lr=3e-3, modality_dropout=0.0),
                           distill=DistillConfig(**distill_kw), out_dir=str(tmp_path / name))
    steps = []
    metrics = distill(cfg, progress=False, callbacks={"on_step_end": [lambda t, logs: steps.append(logs)]},
                      log=lambda *_: None)
    return metrics, steps


@pytest.mark.parametrize("method,weighting", [("none", "uniform"), ("kd", "uniform"), ("msd", "instance-hard"),
                                              ("msd", "learned")])
def test_each_method_runs_and_reports_every_term(tmp_path, teacher, monkeypatch, method, weighting):
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    metrics, steps = run(tmp_path, teacher, method, method=method, weighting=weighting)
    assert len(steps) == (6 if weighting != "learned" else 6)
    keys = set(steps[0])
    expected = {"none": {"loss", "ce"}, "kd": {"loss", "ce", "kd"},
                "msd": {"loss", "ce", "kd", "kd:image", "kd:text", "w:image:mean", "w:text:std"}}[method]
    assert expected <= keys
    if weighting == "instance-hard":
        assert all(s["w:image:mean"] + s["w:text:mean"] == pytest.approx(2.0) for s in steps)
    assert set(metrics["test"]) == {"full", "only:image", "only:text"}
    assert 0 <= metrics["test"]["only:text"]["agreement"] <= 1
    run_json = json.loads((tmp_path / method / "run.json").read_text())
    assert run_json["status"] == "finished" and run_json["config"]["distill"]["method"] == method


def test_the_same_seed_trains_the_same_student_with_a_cold_and_a_warm_cache(tmp_path, teacher, monkeypatch):
    """Runs pair up by seed only if everything drawn after the teacher cache is built (here the
    first layer of ``learned``'s weight network) is drawn the same whether the cache was cold or warm."""
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    losses = []
    for name in ("cold", "warm"):
        cfg = DistillRunConfig(teacher=str(teacher), data=DATA,
                               model=ModelConfig("student-two-tower", dict(TINY)),
                               train=TrainConfig(epochs=1, batch_size=16, lr=3e-3, modality_dropout=0.0, seed=5),
                               distill=DistillConfig(method="msd", weighting="learned"), out_dir=str(tmp_path / name))
        steps = []
        distill(cfg, progress=False, callbacks={"on_step_end": [lambda t, logs: steps.append(float(logs["loss"]))]},
                log=lambda *_: None)
        losses.append(steps)
    assert len(losses[0]) == 6 and losses[0] == losses[1]


def test_bad_distill_settings_are_named(tmp_path, teacher):
    with pytest.raises(ConfigError, match="unknown method 'fitnets'"):
        run(tmp_path, teacher, "bad", method="fitnets")
    with pytest.raises(ConfigError, match="alpha must be in"):
        run(tmp_path, teacher, "bad2", alpha=2.0)


def test_saliency_command_writes_one_row_per_example(tmp_path, teacher, monkeypatch, capsys):
    import pandas as pd

    from msd_core.cli import main

    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    args = ["saliency", "--teacher", str(teacher), "--data", "synthetic", "--data-option", "n=96",
            "--max-eval", "32", "--out", str(tmp_path / "s.csv")]
    assert main(args) == 0
    assert "computed" in capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "s.csv")
    assert len(frame) == 24  # val of n=96 is 96 // 4
    assert {"id", "label", "pred full", "pred only:image", "saliency image", "saliency text", "dominant",
            "reliance"} <= set(frame.columns)
    assert main(args) == 0 and "cache hit" in capsys.readouterr().out
