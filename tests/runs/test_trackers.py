"""``--report-to``: every tracker gets what the live curves show, the config and seed, and the final
metrics; each is read back with its own reader (TensorBoard's event accumulator, ``MlflowClient``,
the records of W&B's offline run file). A tracker not installed is a message with the install
command before any work; one that fails mid-run never costs the run."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from msd_core.cli import main
from msd_core.runs import Registry
from msd_core.runs.trackers import TRACKERS, Tracker
from tests.runs.test_terminal_runs import DISTILL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One registered terminal run of MSD reporting to all three trackers, offline."""
    home = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "WANDB_MODE", "WANDB_PROJECT"):
            mp.delenv(name, raising=False)
        mp.setenv("MSD_STUDIO_RUNS", str(home / "runs"))
        mp.setenv("MSD_STUDIO_CACHE", str(home / "cache"))
        assert main([*DISTILL, "--report-to", "tensorboard,mlflow,wandb", "--out", str(home / "runs" / "tracked")]) == 0
    out = home / "runs" / "tracked"
    reg = Registry(home / "runs" / "registry.sqlite")
    (run,) = reg.runs()
    live: dict[str, dict[int, float]] = {}
    for m in reg.metrics(run["id"]):
        live.setdefault(m["name"], {})[m["step"]] = m["value"]
    return home, out, run, live, json.loads((out / "metrics.json").read_text())


def final_rows(metrics: dict) -> dict[str, float]:
    return {f"final/{split}/{view}/{k}": v for split in ("val", "test") for view, m in metrics[split].items()
            for k, v in m.items()}


def test_tensorboard_holds_every_live_curve_the_config_and_the_final_metrics(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    home, out, run, live, metrics = tracked
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert set(live) <= tags and {"train/loss", "train/kd:image", "train/w:image:mean", "train/lr",
                                  "val/full/accuracy"} <= tags
    for name, by_step in live.items():
        got = {e.step: e.value for e in events.Scalars(name)}
        assert got.keys() == by_step.keys(), name
        assert all(got[s] == pytest.approx(v, rel=1e-6, abs=1e-7) for s, v in by_step.items()), name
    for name, value in final_rows(metrics).items():
        assert events.Scalars(name)[-1].value == pytest.approx(value, rel=1e-6), name
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    params = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert params["train.lr"].number_value == pytest.approx(1e-3) and params["seed"].number_value == 0
    assert params["distill.method"].string_value == "msd" and params["run_id"].string_value == run["id"]


def test_mlflow_holds_the_params_every_live_curve_the_final_metrics_and_the_checkpoint(tracked):
    from mlflow.tracking import MlflowClient

    home, out, run, live, metrics = tracked
    client = MlflowClient(f"sqlite:///{home / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("msd-studio")
    (found,) = client.search_runs([experiment.experiment_id], f"tags.`msd_studio.run_id` = '{run['id']}'")
    assert found.info.status == "FINISHED" and found.info.run_name == "tracked"
    assert found.data.params["train.lr"] == "0.001" and found.data.params["seed"] == "0"
    for name, by_step in live.items():
        history = {m.step: m.value for m in client.get_metric_history(found.info.run_id, name)}
        assert history == pytest.approx(by_step), name
    assert {k: v for k, v in found.data.metrics.items() if k.startswith("final/")} == pytest.approx(final_rows(metrics))
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id, "checkpoint")}
    assert artifacts == {"checkpoint/model.safetensors", "checkpoint/run.json", "checkpoint/metrics.json"}


def wandb_records(path: Path) -> list:
    """The records of a W&B offline run file (``run-*.wandb``): a log of 32 KiB blocks after a 7-byte
    header, each record chunk a 7-byte header (CRC32, little-endian length, type: full, first, middle,
    last) and its bytes; each record a ``wandb_internal_pb2.Record``, W&B's own message."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block = path.read_bytes(), 7, 32768
    assert data[:4] == b":W&B", data[:8]
    chunks, pending = [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        piece, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            chunks.append(piece)
        elif kind == 2:
            pending = piece
        elif kind == 3:
            pending += piece
        elif kind == 4:
            chunks.append(pending + piece)
            pending = b""
    return [wandb_internal_pb2.Record.FromString(c) for c in chunks]


def key_of(item) -> str:
    """A W&B history or summary item's name (names with a slash come as a one-part nested key)."""
    return item.key or "/".join(item.nested_key)


def test_wandb_offline_files_hold_the_config_every_live_curve_and_the_final_metrics(tracked):
    home, out, run, live, metrics = tracked
    (path,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(path)
    (start,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in start.config.update}
    assert config["train.lr"] == 1e-3 and config["seed"] == 0 and start.display_name == "tracked"
    history: dict[str, dict[int, float]] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {key_of(item): json.loads(item.value_json) for item in r.history.item}
            for k, v in row.items():
                if not k.startswith("_"):
                    history.setdefault(k, {})[r.history.step.num] = v
    for name, by_step in live.items():
        assert history[name] == pytest.approx(by_step), name
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update({key_of(item): json.loads(item.value_json) for item in r.summary.update if key_of(item)})
    assert {k: v for k, v in summary.items() if k.startswith("final/")} == pytest.approx(final_rows(metrics))


class Failing:
    """A tracker that starts, then fails at its second batch of rows."""

    calls = 0

    def __init__(self, *args):
        pass

    def log(self, rows):
        Failing.calls += 1
        if Failing.calls >= 2:
            raise OSError("the tracking server went away")

    def finish(self, rows, out_dir):
        raise AssertionError("a tracker that failed is not called again")

    close = finish


@pytest.fixture
def toy_trackers():
    TRACKERS.register("failing")(Tracker("json", "json", Failing, "fails mid-run"))
    TRACKERS.register("absent")(Tracker("msd_studio_no_such_tracker", "msd-studio-no-such-tracker", Failing, ""))
    yield
    TRACKERS.unregister("failing")
    TRACKERS.unregister("absent")


def test_a_tracker_not_installed_is_a_message_before_any_work_and_one_that_fails_never_costs_the_run(
        tmp_path, monkeypatch, capsys, toy_trackers):
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    assert main([*DISTILL, "--report-to", "absent", "--out", str(tmp_path / "runs" / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --report-to absent: absent is not installed — install it with .venv/bin/pip "
                          "install -r requirements-trackers.txt (the pinned versions; or pip install "
                          "msd-studio-no-such-tracker)"), err
    assert not (tmp_path / "runs" / "a").exists() and Registry(tmp_path / "runs" / "registry.sqlite").runs() == []
    assert main([*DISTILL, "--report-to", "bogus", "--out", str(tmp_path / "runs" / "b")]) == 2
    assert "bogus is not a tracker; give none, or a comma-separated list of tensorboard, mlflow, wandb" \
        in capsys.readouterr().err
    assert main([*DISTILL, "--report-to", "failing", "--out", str(tmp_path / "runs" / "c")]) == 0
    err = capsys.readouterr().err
    assert "warning: the failing tracker failed at step" in err and "the tracking server went away" in err
    info = json.loads((tmp_path / "runs" / "c" / "run.json").read_text())
    assert info["status"] == "finished" and info["trackers"]["failing"].startswith("failed at step ")


def test_a_rebuilt_registry_never_takes_mlflows_copy_of_a_run_for_the_run(tracked, tmp_path):
    """MLflow's artifacts beside the runs hold copies of a run's run.json: the rebuild skips them."""
    from msd_core.runs.rebuild import rebuild

    home, out, run, live, metrics = tracked
    assert list((home / "runs" / "mlflow-artifacts").rglob("run.json"))
    report = rebuild(tmp_path / "registry.sqlite", home / "runs")
    (again,) = Registry(tmp_path / "registry.sqlite").runs()
    assert report.added == [run["id"]] and again["out_dir"] == str(out)
