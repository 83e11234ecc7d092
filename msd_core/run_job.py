"""Entry of a launched run: ``python -m msd_core.run_job --db REGISTRY --run ID``.

Reads the run's config from the registry, trains (teacher) or distils (student) with the
registry callback attached, and always leaves a final status: finished, cancelled, or failed
with the error message.
"""

from __future__ import annotations

import _thread
import argparse
import os
import sys
import threading
import traceback

from .config import DistillRunConfig, TeacherRunConfig
from .provenance import git_revision, package_versions
from .errors import MSDError
from .runs import Registry, RegistryCallback, RunCancelled


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--run", required=True)
    a = p.parse_args(argv)
    reg = Registry(a.db)
    run = reg.run(a.run)
    reg.start(a.run, os.getpid(), package_versions(), git_revision())
    cb = RegistryCallback(reg, a.run)
    callbacks = {"on_step_end": [cb.on_step_end], "on_eval_end": [cb.on_eval_end]}
    done = threading.Event()

    def beat() -> None:
        """Heartbeat while data loads and the teacher cache builds (steps beat too), and a cancel
        asked for before the first step interrupts the main thread."""
        while not done.wait(5.0):
            if reg.heartbeat(a.run) and not cb.buffer and cb.last_flush == 0.0:
                _thread.interrupt_main()
                return

    threading.Thread(target=beat, daemon=True).start()
    try:
        if run["kind"] == "teacher":
            from .teacher import train_teacher

            cfg = TeacherRunConfig.from_dict(run["config"])
            train_teacher(cfg, callbacks=callbacks, progress=False)
        else:
            from .distill import distill

            cfg = DistillRunConfig.from_dict(run["config"])
            distill(cfg, callbacks=callbacks, progress=False)
        reg.add_artifact(a.run, "model", os.path.join(cfg.out_dir, "model.safetensors"))
        reg.finish(a.run, "finished")
        return 0
    except RunCancelled as e:
        reg.finish(a.run, "cancelled", str(e))
        return 0
    except (KeyboardInterrupt, MSDError) as e:
        if reg.run(a.run)["cancel_requested"]:
            reg.finish(a.run, "cancelled", "cancelled before training started")
            return 0
        reg.finish(a.run, "failed", f"{e.__class__.__name__}: {e}")
        return 1
    except Exception as e:  # noqa: BLE001 - recorded, never lost
        traceback.print_exc()
        reg.finish(a.run, "failed", f"{e.__class__.__name__}: {e}")
        return 1
    finally:
        done.set()


if __name__ == "__main__":
    sys.exit(main())
