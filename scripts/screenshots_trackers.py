"""Screenshots for the README's "Runs from anywhere" section: Compare with runs launched from the
dashboard, a run typed in a terminal and a run folder added from another runs folder, side by side;
TensorBoard's scalars and MLflow's run page, each served by its own local server, of the terminal run
(``--report-to tensorboard,mlflow``):

    .venv/bin/python scripts/screenshots_trackers.py [OUT_DIR] --mlflow /path/to/bin/mlflow

MLflow's web UI is not part of ``mlflow-skinny``, the package MSD Studio writes with: give the
``mlflow`` command of a full ``mlflow==3.17.2`` installed in a virtual environment of its own
(``python3 -m venv /tmp/mlflow-ui && /tmp/mlflow-ui/bin/pip install mlflow==3.17.2``; it pins an
older pyarrow than MSD Studio's). About five minutes on two cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app.live_server import browser_page, dashboard, free_port, wait_until_idle  # noqa: E402

SMALL = ["--data-option", "n=2000", "--max-train", "400", "--max-eval", "200", "--epochs", "3"]


def msd(args: list[str], runs: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "msd_core.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "MSD_STUDIO_RUNS": str(runs), "HF_HUB_OFFLINE": "1"})
    if done.returncode:
        raise RuntimeError(f"msd {' '.join(args)} failed:\n{done.stderr[-2000:]}")


def close_side_panel(page) -> None:
    """MLflow 3's assistant panel, open by default, takes a third of the page."""
    header = page.get_by_text("MLflow Assistant", exact=False).first
    if header.count() and header.is_visible():
        header.locator("xpath=ancestor::*[.//button][1]").locator("button").last.click()
        page.wait_for_timeout(800)


def serve(command: list[str], url: str, timeout: float = 120):
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise TimeoutError(f"{command[0]} did not answer at {url}")


def main(out: Path, mlflow: str, runs: Path | None = None) -> None:
    """``runs``: the runs folder of an earlier call, shot again without training."""
    out.mkdir(parents=True, exist_ok=True)
    if runs is None:
        runs = make_runs()
    print("runs folder:", runs, flush=True)
    shoot(out, mlflow, runs)


def make_runs() -> Path:
    runs, elsewhere = (Path(tempfile.mkdtemp(prefix=f"msd-{what}-")) for what in ("runs", "cluster"))
    teacher = runs / "teacher-synthetic"
    shutil.copytree(ROOT / "assets" / "teachers" / "synthetic", teacher)
    os.environ["MSD_STUDIO_RUNS"] = str(runs)
    from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, TrainConfig
    from msd_core.runs import Registry, launch

    reg = Registry(runs / "registry.sqlite")
    launched = [launch(DistillRunConfig(teacher=str(teacher), data=DataConfig(options={"n": 2000}, max_train_examples=400,
                                                                              max_eval_examples=200),
                                        train=TrainConfig(epochs=3, seed=0), distill=DistillConfig(method=method)),
                       kind="student", registry=reg, name=f"{method} seed 0 (dashboard)") for method in ("kd", "msd")]
    msd(["distill", "--teacher", str(teacher), *SMALL, "--method", "msd", "--seed", "1", "--report-to",
         "tensorboard,mlflow", "--out", str(runs / "msd-seed1-from-a-terminal")], runs)
    shutil.copytree(teacher, elsewhere / "teacher-synthetic")
    msd(["distill", "--teacher", str(elsewhere / "teacher-synthetic"), *SMALL, "--method", "kd", "--seed", "1",
         "--out", str(elsewhere / "kd-seed1-from-the-cluster")], elsewhere)
    while any(reg.run(i)["status"] in ("queued", "running") for i in launched):
        time.sleep(2)
    msd(["runs", "--add", str(elsewhere / "kd-seed1-from-the-cluster")], runs)
    print("runs:", [(r["name"], r["status"]) for r in reg.runs()], flush=True)
    return runs


def shoot(out: Path, mlflow: str, runs: Path) -> None:
    with dashboard({"MSD_STUDIO_RUNS": str(runs)}) as url, browser_page(1500, 1000) as page:
        page.goto(f"{url}/compare")
        page.get_by_text("Metrics (mean ± std across seeds)").wait_for()
        wait_until_idle(page)
        page.get_by_role("heading", name="Compare").first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "compare_from_anywhere.png"))
        print("saved", out / "compare_from_anywhere.png", flush=True)

    port = free_port()
    tb = serve([str(Path(sys.executable).parent / "tensorboard"), "--logdir",
                str(runs / "msd-seed1-from-a-terminal" / "tensorboard"), "--host", "127.0.0.1", "--port", str(port)],
               f"http://127.0.0.1:{port}")
    try:
        with browser_page(1500, 1100) as page:
            page.goto(f"http://127.0.0.1:{port}/?darkMode=false#timeseries")
            page.locator("canvas, svg.line-chart, .line-chart").first.wait_for(timeout=60_000)
            tags = page.get_by_role("combobox", name="Filter tags (regex)")
            tags.fill("^train/(loss|kd:image|kd:text|w:image:mean|w:text:mean)$|^val/full/accuracy$")
            tags.press("Escape")
            page.mouse.click(5, 300)
            page.wait_for_timeout(4000)
            page.screenshot(path=str(out / "tensorboard.png"))
            print("saved", out / "tensorboard.png", flush=True)
    finally:
        tb.terminate()

    port = free_port()
    ml = serve([mlflow, "server", "--backend-store-uri", f"sqlite:///{runs / 'mlflow.db'}", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1"], f"http://127.0.0.1:{port}/health", timeout=180)
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("msd-studio")
        (run,) = client.search_runs([experiment.experiment_id])
        with browser_page(1500, 1100) as page:
            page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}")
            page.get_by_text("msd-seed1-from-a-terminal").first.wait_for(timeout=60_000)
            page.wait_for_timeout(3000)
            close_side_panel(page)
            page.screenshot(path=str(out / "mlflow.png"))
            print("saved", out / "mlflow.png", flush=True)
            page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
                      f"/model-metrics")
            page.wait_for_timeout(4000)
            close_side_panel(page)
            page.get_by_placeholder("Search metric charts").fill("train/")
            page.wait_for_timeout(4000)
            page.screenshot(path=str(out / "mlflow_metrics.png"))
            print("saved", out / "mlflow_metrics.png", flush=True)
    finally:
        ml.terminate()


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="scripts/screenshots_trackers.py")
    p.add_argument("out", nargs="?", type=Path, default=ROOT / "assets" / "screenshots")
    p.add_argument("--mlflow", required=True, help="the mlflow command of a full mlflow install (its web UI)")
    p.add_argument("--runs", type=Path, help="the runs folder of an earlier call: shoot it again without training")
    a = p.parse_args()
    main(a.out, a.mlflow, a.runs)
