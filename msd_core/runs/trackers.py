"""The experiment trackers a run also reports to (``TrainConfig.report_to``, ``--report-to``):
TensorBoard, MLflow and Weights & Biases, as sinks of the run's recorder (rank 0 only).

Each receives what the live curves show, as the registry stores it — ``train/<term>`` for every
loss term, the per-modality weights, the learning rate and the step time at every step,
``val/<view>/<metric>`` at every validation — plus the run's config (flattened, ``train.lr``) and
seed as parameters, and at the end the final metrics (``final/<split>/<view>/<metric>``) and, for
MLflow, the run folder's checkpoint files as artifacts. Everything works offline:

- ``tensorboard``: event files in ``<run folder>/tensorboard`` (scalars; config in the HParams tab);
- ``mlflow``: the store ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<runs folder>/mlflow.db`` with
  artifacts beside it; experiment ``$MLFLOW_EXPERIMENT_NAME`` or ``msd-studio``;
- ``wandb``: ``$WANDB_MODE`` (default ``offline``: ``<run folder>/wandb/offline-run-*``), project
  ``$WANDB_PROJECT`` or ``msd-studio``.

A tracker that fails never costs the run: the failure is printed and recorded in run.json
(``trackers``), and the run goes on without that tracker.

Each integration calls its tool's own writer directly (``SummaryWriter``, ``MlflowClient``,
``wandb.init``). accelerate's tracker classes, the maintained layer over the same three, need
accelerate's process state, whose construction sets the torch thread count and device of the
process that builds it; a recorder lives on rank 0 alone, and runs held equal across numbers of
processes cannot have rank 0 change its threads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from ..paths import METRICS_FILE, MODEL_FILE, RUN_FILE, runs_dir
from ..registries import NamedRegistry

NONE = "none"
ARTIFACTS = "mlflow-artifacts"  # MLflow's artifact folder beside the runs (copies of run folders' files)
TRACKER_FOLDERS = ("tensorboard", "wandb", ARTIFACTS)  # what trackers write inside a runs folder: never a run
PROJECT = "msd-studio"  # the MLflow experiment and W&B project runs go to, unless the environment says
REQUIREMENTS = "requirements-trackers.txt"  # the pinned tracker packages, in the repository


@dataclass(frozen=True)
class Tracker:
    """A tracker by name: ``module`` is what must import, ``package`` what pip installs, ``open`` the
    writer for one run: ``open(run folder, run name, run id, params) -> TrackerRun``."""

    module: str
    package: str
    open: Callable
    doc: str


TRACKERS: NamedRegistry[Tracker] = NamedRegistry("tracker")


def parse_report_to(text: str | None) -> list[str]:
    """The trackers ``--report-to`` names (``none``, or a comma-separated list), in order, each once; an
    unknown name is a ``ConfigError`` listing the known ones."""
    names = [n.strip() for n in (text or NONE).split(",") if n.strip()]
    if names == [NONE] or not names:
        return []
    unknown = [n for n in names if n not in TRACKERS]
    if unknown or NONE in names:
        raise ConfigError(f"--report-to {text}: {', '.join(unknown) or NONE + ' with others'} is not a tracker; "
                          f"give {NONE}, or a comma-separated list of {', '.join(TRACKERS.names())}")
    return list(dict.fromkeys(names))


def check_trackers(text: str | None) -> list[str]:
    """``parse_report_to``, and every tracker named importable — else a ``ConfigError`` with the command
    that installs it, before any work starts."""
    names = parse_report_to(text)
    missing = [n for n in names if importlib.util.find_spec(TRACKERS.get(n).module) is None]
    if missing:
        packages = " ".join(TRACKERS.get(n).package for n in missing)
        raise ConfigError(f"--report-to {text}: {', '.join(missing)} is not installed — install it with "
                          f".venv/bin/pip install -r {REQUIREMENTS} (the pinned versions; or pip install {packages})")
    return names


def flat_params(config: dict, prefix: str = "") -> dict[str, object]:
    """A run config as flat parameters (``train.lr``): numbers, strings and booleans as they are,
    anything else as JSON text."""
    out: dict[str, object] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and not key.endswith(("options", "overrides")):
            out.update(flat_params(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:
            out[key] = json.dumps(v, sort_keys=True, default=str)
    return out


Rows = list[tuple[int, str, float]]


class TrackerSink:
    """The recorder's sink for the trackers a run reports to: ``start(params)`` when training begins,
    ``log(rows)`` for each batch of ``(step, name, value)`` the registry receives, ``finish(metrics,
    step)`` with the final metrics, ``close(status)`` however the run ends. ``status`` says per tracker
    ``ok`` or what failed (written into run.json)."""

    def __init__(self, names: list[str], out_dir: str | Path, run_name: str, run_id: str | None,
                 say: Callable[[str], None] | None = None):
        self.names, self.out_dir, self.run_name, self.run_id = names, Path(out_dir), run_name, run_id
        self.open: dict[str, object] = {}
        self.status: dict[str, str] = {}
        self.say = say or (lambda message: print(message, file=sys.stderr, flush=True))

    def _each(self, what: str, call: Callable[[str, object], None]) -> None:
        for name, run in list(self.open.items()):
            try:
                call(name, run)
            except Exception as e:  # noqa: BLE001 - a tracker never costs the run
                self.open.pop(name)
                self.status[name] = f"failed {what}: {type(e).__name__}: {e}"[:500]
                self.say(f"warning: the {name} tracker failed {what} ({type(e).__name__}: {e}); the run goes on "
                         f"without it")

    def start(self, params: dict) -> None:
        for name in self.names:
            try:
                self.open[name] = TRACKERS.get(name).open(self.out_dir, self.run_name, self.run_id, params)
                self.status[name] = "ok"
            except Exception as e:  # noqa: BLE001 - as above
                self.status[name] = f"failed to start: {type(e).__name__}: {e}"[:500]
                self.say(f"warning: the {name} tracker could not start ({type(e).__name__}: {e}); the run goes on "
                         f"without it")

    def log(self, rows: Rows) -> None:
        if rows:
            self._each(f"at step {rows[-1][0]}", lambda name, run: run.log(rows))

    def finish(self, metrics: dict, step: int) -> None:
        rows = [(step, f"final/{split}/{view}/{k}", float(v)) for split in ("val", "test")
                for view, m in (metrics.get(split) or {}).items() for k, v in m.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)]
        self._each("at the end", lambda name, run: run.finish(rows, self.out_dir))
        self.open.clear()

    def close(self, status: str) -> None:
        """The run ended before its final metrics (``status``: failed, cancelled, interrupted)."""
        self._each("at the end", lambda name, run: run.close(status))
        self.open.clear()


def attach_trackers(recorder, names: list[str], out_dir: str | Path) -> None:
    """Give ``recorder`` the sink of the trackers ``names`` (rank 0's recorder only records)."""
    if names and recorder.is_main:
        recorder.add_sink(TrackerSink(names, out_dir, Path(out_dir).name, recorder.run_id))


def by_step(rows: Rows) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for step, name, value in rows:
        out.setdefault(step, {})[name] = value
    return out


# -- the three trackers ---------------------------------------------------------------
class TensorBoardRun:
    """Scalars in ``<run folder>/tensorboard``; the parameters as the HParams plugin reads them."""

    def __init__(self, out_dir: Path, run_name: str, run_id: str | None, params: dict):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.writer = SummaryWriter(str(out_dir / "tensorboard"))
        for summary in hparams({k: v for k, v in params.items()}, {}):
            self.writer.file_writer.add_summary(summary)

    def log(self, rows: Rows) -> None:
        for step, name, value in rows:
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def finish(self, rows: Rows, out_dir: Path) -> None:
        self.log(rows)
        self.writer.close()

    def close(self, status: str) -> None:
        self.writer.close()


class MLflowRun:
    """A run of the MLflow store (see the module docstring), its metrics batched per step."""

    def __init__(self, out_dir: Path, run_name: str, run_id: str | None, params: dict):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{runs_dir() / 'mlflow.db'}"
        self.client = MlflowClient(uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT)
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
            name, artifact_location=None if "MLFLOW_TRACKING_URI" in os.environ else
            (runs_dir() / ARTIFACTS).as_uri())
        tags = {"msd_studio.run_id": run_id or "", "msd_studio.folder": str(out_dir)}
        self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters in one batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log(self, rows: Rows) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, value, now, step) for step, name, value in rows]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def finish(self, rows: Rows, out_dir: Path) -> None:
        self.log(rows)
        for name in (MODEL_FILE, RUN_FILE, METRICS_FILE):
            if (out_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(out_dir / name), artifact_path="checkpoint")
        self.client.set_terminated(self.run_id, "FINISHED")

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, "KILLED" if status in ("cancelled", "interrupted") else "FAILED")


class WandbRun:
    """A W&B run, offline unless ``$WANDB_MODE`` says otherwise, in ``<run folder>/wandb``."""

    def __init__(self, out_dir: Path, run_name: str, run_id: str | None, params: dict):
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", PROJECT), name=run_name, dir=str(out_dir),
                              mode=os.environ.get("WANDB_MODE", "offline"), config=params, reinit="create_new")

    def log(self, rows: Rows) -> None:
        for step, values in sorted(by_step(rows).items()):
            self.run.log(values, step=step)

    def finish(self, rows: Rows, out_dir: Path) -> None:
        self.run.summary.update({name: value for _, name, value in rows})
        self.run.finish()

    def close(self, status: str) -> None:
        self.run.finish(exit_code=1)


TRACKERS.register("tensorboard")(Tracker("tensorboard", "tensorboard", TensorBoardRun,
                                         "TensorBoard event files in the run folder"))
TRACKERS.register("mlflow")(Tracker("mlflow", "mlflow-skinny", MLflowRun,
                                    "an MLflow store ($MLFLOW_TRACKING_URI, default a SQLite store beside the runs)"))
TRACKERS.register("wandb")(Tracker("wandb", "wandb", WandbRun, "Weights & Biases, offline by default"))
