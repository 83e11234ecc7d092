"""The one owner of a run's life: ``run.json``, ``metrics.json`` and, for a launched run, its
row and metrics in the registry.

    with RunRecorder(out_dir, run_info, registry=reg, run_id=rid) as recorder:
        ...                                  # load data, build the model
        recorder.attach(trainer)             # run.json says "running"; steps stream to the registry
        trainer.fit()
        recorder.finish(final_metrics)       # metrics.json first, then "finished"

Leaving the block without ``finish`` records the outcome from the exception: ``cancelled``
(a cancel flag, ``StopRun``), ``interrupted`` (Ctrl-C, a signal; resumable) or ``failed`` with
the error. So a run is ``finished`` only once its final metrics are on disk, and never stays
``running`` because its code raised. A run refused before ``attach`` (an ``errors.REFUSALS``:
bad input found while loading) writes no run.json: its registry row says why it failed, and the
engine removes what the run wrote (``engine.run_folder.refused_leaves_nothing``).
The trainer knows nothing of this: the recorder listens to its callbacks (``on_step_end``,
``on_eval_end``, ``on_checkpoint``). Under ``torchrun`` only rank 0 records. While the run is
live the recorder holds the folder's lock (``liveness.RunLock``) and run.json records its ``pid``
and ``host``, so a run whose process dies is later reported interrupted
(``liveness.folder_status``), not running forever.
"""

from __future__ import annotations

import _thread
import json
import os
import threading
import time
from pathlib import Path

from ..errors import REFUSALS, StopRun, TrainingInterrupted
from ..paths import METRICS_FILE, MODEL_FILE, RUN_FILE
from ..fileio import atomic_write_text
from .liveness import RunInUse, RunLock, hostname, resume_command
from .store import Registry



class RunCancelled(StopRun):
    """Raised inside a run when its cancel flag is set in the registry."""


class RunRecorder:
    def __init__(self, out_dir: str | Path, run_info: dict, *, registry: Registry | None = None,
                 run_id: str | None = None, is_main: bool = True, flush_every: float = 0.5,
                 heartbeat_every: float = 5.0):
        self.out_dir = Path(out_dir)
        self.info = dict(run_info)
        self.registry, self.run_id = (registry, run_id) if registry is not None and run_id else (None, None)
        self.is_main = is_main
        self.flush_every, self.heartbeat_every = flush_every, heartbeat_every
        self.buffer: list[tuple[int, str, float]] = []
        self.last_flush = 0.0
        self.t0 = time.time()
        self.begun = self.finished = False
        self.trainer = None
        self._stop = threading.Event()
        self.lock = RunLock(self.out_dir)
        self.locked_out = False  # another live run holds the folder: write nothing there
        self.sinks: list = []  # also told of every metric (experiment trackers, ``trackers.TrackerSink``)
        self.sink_buffer: list[tuple[int, str, float]] = []
        self.last_sink_flush = 0.0

    # -- the run's life ------------------------------------------------------------
    def __enter__(self) -> "RunRecorder":
        if self.is_main and (self.registry is not None or self.out_dir.is_dir()):
            self._take_lock()  # a CLI run's new folder is locked when first written
        if self.is_main and self.registry is not None:
            self.info.setdefault("id", self.run_id)
            from ..provenance import git_revision, package_versions

            try:
                self.info.setdefault("name", self.registry.run(self.run_id)["name"])
                self.registry.start(self.run_id, os.getpid(), package_versions(), git_revision())
            except BaseException:
                self.lock.release()  # __exit__ will not run
                raise
            threading.Thread(target=self._beat, daemon=True).start()
        return self

    def update(self, **info) -> None:
        """Add facts to run.json (parameters, labels, ...)."""
        self.info.update(info)

    def add_sink(self, sink) -> None:
        """Tell ``sink`` too of the run's life and metrics (rank 0 only): ``start(params)`` when
        training begins, ``log(rows)``, then ``finish(metrics, step)`` or ``close(status)``."""
        if self.is_main:
            self.sinks.append(sink)

    def attach(self, trainer) -> None:
        """Listen to ``trainer`` and record the run as running from now on."""
        trainer.add_callback("on_step_end", self.on_step_end)
        trainer.add_callback("on_eval_end", self.on_eval_end)
        trainer.add_callback("on_checkpoint", self.on_checkpoint)
        self.trainer = trainer
        self.begun = True
        self.info.setdefault("started", time.time())
        if self.sinks:
            from .trackers import flat_params

            params = {**flat_params(self.info.get("config") or {}), "seed": self.info.get("seed"),
                      "run_id": self.info.get("id") or ""}
            for sink in self.sinks:
                sink.start(params)
        self._write_run("running", global_step=trainer.global_step, total_steps=trainer.total_steps)

    def finish(self, metrics: dict) -> None:
        """Write the final metrics, then mark the run finished (in that order)."""
        if self.is_main:
            atomic_write_text(self.out_dir / METRICS_FILE, json.dumps(metrics, indent=2))
            step = self.trainer.global_step if self.trainer is not None else 0
            self._flush_sinks()
            for sink in self.sinks:
                sink.finish(metrics, step)
            self._write_run("finished", ended=time.time(), **self._tracker_status())
            if self.registry is not None:
                self._flush()
                self.registry.add_artifact(self.run_id, "model", str(self.out_dir / MODEL_FILE))
                self.registry.finish(self.run_id, "finished")
        self.finished = True

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._stop.set()
        try:
            if self.finished or not self.is_main:
                return False
            status, error = outcome(exc, self._cancel_requested())
            self._flush_sinks()
            for sink in self.sinks:
                sink.close(status)
            if (self.begun or self.registry is not None) and not self.locked_out and not self.refused(exc):
                where = {"global_step": self.trainer.global_step} if self.trainer is not None else {}
                if status == "interrupted":
                    where["resume"] = resume_command(self.info.get("kind"), self.out_dir, self.info.get("launch"))
                self._write_run(status, error=error, ended=time.time(), **where, **self._tracker_status())
            if self.registry is not None:
                self._flush_quietly()
                self.registry.finish(self.run_id, status, error)
            return False
        finally:
            self.lock.release()

    def refused(self, exc: BaseException | None) -> bool:
        """Whether ``exc`` refused the run's input before any training step."""
        return isinstance(exc, REFUSALS) and not self.begun

    # -- trainer callbacks -----------------------------------------------------------
    def on_step_end(self, trainer, logs: dict) -> None:
        if (self.registry is None and not self.sinks) or not self.is_main:
            return
        step = logs["step"]
        now = time.time()
        rows = [(step, f"train/{k}", v) for k, v in logs.items() if k not in ("step", "epoch")]
        rows.append((step, "train/elapsed", now - self.t0))
        last = trainer.global_step >= trainer.total_steps
        if self.sinks:
            self.sink_buffer += rows
            if now - self.last_sink_flush >= self.flush_every or last:
                self._flush_sinks()
                self.last_sink_flush = now
        if self.registry is None:
            return
        self.buffer += rows
        if now - self.last_flush >= self.flush_every or last:
            done = trainer.global_step / max(trainer.total_steps, 1)
            elapsed = now - self.t0
            self._flush()
            if self.registry.heartbeat(self.run_id, done, elapsed / done * (1 - done) if done > 0 else None):
                raise RunCancelled(f"run {self.run_id} was cancelled at step {trainer.global_step}")
            self.last_flush = now

    def on_eval_end(self, trainer, record: dict) -> None:
        if not self.is_main or (self.registry is None and not self.sinks):
            return
        rows = [(record["step"], f"val/{view}/{k}", v) for view, m in record["val"].items() for k, v in m.items()
                if isinstance(v, (int, float))]
        if self.sinks:
            self.sink_buffer += rows
            self._flush_sinks()
        if self.registry is not None:
            self.registry.log_metrics(self.run_id, rows)

    def on_checkpoint(self, trainer, info: dict) -> None:
        self._write_run("running", global_step=info["step"], total_steps=info["total_steps"])

    # -- internals -------------------------------------------------------------------
    def _flush_sinks(self) -> None:
        rows, self.sink_buffer = self.sink_buffer, []
        for sink in self.sinks:
            sink.log(rows)

    def _tracker_status(self) -> dict:
        """run.json's ``trackers``: per tracker ``ok`` or what failed (nothing when none was asked for)."""
        status = {k: v for sink in self.sinks for k, v in getattr(sink, "status", {}).items()}
        return {"trackers": status} if status else {}

    def _take_lock(self) -> None:
        try:
            self.lock.acquire()
        except RunInUse:
            self.locked_out = True
            raise
        self.info.update(pid=os.getpid(), host=hostname())

    def _write_run(self, status: str, **extra) -> None:
        if not self.is_main:
            return
        if not self.lock.held:
            self._take_lock()
        self.info.update(status=status, updated=time.time(), **extra)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out_dir / RUN_FILE, json.dumps(self.info, indent=2, default=str))

    def _flush(self) -> None:
        if self.buffer:
            self.registry.log_metrics(self.run_id, self.buffer)
            self.buffer = []

    def _flush_quietly(self) -> None:
        try:
            self._flush()
        except Exception:  # noqa: BLE001 - the final status matters more than the last metrics
            self.buffer = []

    def _cancel_requested(self) -> bool:
        if self.registry is None:
            return False
        try:
            return bool(self.registry.run(self.run_id)["cancel_requested"])
        except Exception:  # noqa: BLE001
            return False

    def _beat(self) -> None:
        """Heartbeat while data loads and the teacher cache builds (steps beat too); a cancel
        asked for before the first step interrupts the main thread."""
        while not self._stop.wait(self.heartbeat_every):
            if self.registry.heartbeat(self.run_id) and not self.buffer and self.last_flush == 0.0:
                _thread.interrupt_main()
                return


def outcome(exc: BaseException | None, cancel_requested: bool = False) -> tuple[str, str]:
    """``(status, error)`` of a run that ended with ``exc`` before writing its final metrics."""
    if exc is None:
        return "failed", "the run ended without writing its final metrics"
    if isinstance(exc, StopRun):
        return "cancelled", str(exc)
    if isinstance(exc, (KeyboardInterrupt, TrainingInterrupted)):
        if cancel_requested:
            return "cancelled", "cancelled before training finished"
        return "interrupted", str(exc) or "interrupted"
    return "failed", f"{type(exc).__name__}: {exc}"
