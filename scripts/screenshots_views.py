"""Screenshots of the analysis views for the README: the modality ledger, slices, the
counterfactual editor and Compare's significance section, with the shipped synthetic demo teacher
and KD / MSD (learned-global) students of two seeds each:
``.venv/bin/python scripts/screenshots_views.py [OUT_DIR [RUNS_DIR]]`` (default assets/screenshots; about
ten minutes on two cores, most of it training the students; RUNS_DIR reuses those of an earlier run).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app.live_server import browser_page, dashboard, wait_until_idle  # noqa: E402


def students(runs: Path) -> None:
    """KD and MSD (learned-global) students of the synthetic demo teacher, seeds 0 and 1."""
    os.environ["MSD_STUDIO_RUNS"], os.environ["MSD_STUDIO_MAX_RUNS"] = str(runs), "2"
    from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, TrainConfig
    from msd_core.paths import demo_teacher
    from msd_core.runs import Registry, launch

    reg = Registry(runs / "registry.sqlite")
    ids = [launch(DistillRunConfig(teacher=str(demo_teacher("synthetic")), data=DataConfig("synthetic", options={"n": 4000},
                                                                                            max_train_examples=1000),
                                   train=TrainConfig(epochs=3, seed=seed, lr=1e-3, modality_dropout=0.0),
                                   distill=DistillConfig(method=method, weighting="learned-global")),
                  kind="student", registry=reg, name=f"{method} seed {seed}")
           for seed in (0, 1) for method in ("kd", "msd")]
    while any(reg.run(i)["status"] in ("queued", "running") for i in ids):
        time.sleep(2)
    print("runs:", {reg.run(i)["name"]: reg.run(i)["status"] for i in ids}, flush=True)


def pick_synthetic_teacher(page) -> None:
    page.get_by_role("combobox", name="Teacher", exact=True).click()
    page.get_by_role("option", name="synthetic", exact=False).first.click()
    wait_until_idle(page)


def section(page, heading: str, out: Path, name: str, height: int = 1100) -> None:
    """A screenshot from ``heading`` down ``height`` pixels."""
    box = page.get_by_role("heading", name=heading).first.bounding_box()  # the viewport holds the whole page
    page.screenshot(path=str(out / f"{name}.png"), clip={"x": 280, "y": box["y"] - 20, "width": 1220, "height": height})
    print("saved", out / f"{name}.png", flush=True)


def main(out: Path, runs: Path | None = None) -> None:
    """``runs``: a runs folder this script filled before (its students are reused)."""
    out.mkdir(parents=True, exist_ok=True)
    if runs is None:
        runs = Path(tempfile.mkdtemp(prefix="msd-views-"))
        students(runs)
    from msd_core.config import DataConfig
    from msd_core.data.registry import load_split
    from msd_core.data.slices import save_slice

    val = load_split(DataConfig("synthetic", options={"n": 4000}), "val")
    if not (runs / "slices" / "both-required.json").exists():
        save_slice("both-required", DataConfig("synthetic", options={"n": 4000}), "val",
                   [e.id for e in val.examples if e.meta.get("reliance") == "both-required"], root=runs)
    with dashboard({"MSD_STUDIO_RUNS": str(runs)}) as url, browser_page(1500, 6000) as page:
        page.goto(f"{url}/saliency")
        page.get_by_role("heading", name="Saliency explorer").wait_for()
        wait_until_idle(page)
        pick_synthetic_teacher(page)
        section(page, "Slices", out, "slices", 700)
        page.get_by_role("button", name="Compute the ledger").click()
        page.get_by_text("collapsed", exact=False).first.wait_for(timeout=600_000)
        wait_until_idle(page)
        section(page, "Modality ledger", out, "ledger", 1500)

        page.goto(f"{url}/counterfactual")
        page.get_by_role("heading", name="Counterfactual editor").wait_for()
        wait_until_idle(page)
        pick_synthetic_teacher(page)
        text = page.get_by_role("textbox", name="Text")
        text.fill("look at this delta")
        text.press("Control+Enter")
        wait_until_idle(page)
        page.wait_for_timeout(1500)
        page.set_viewport_size({"width": 1500, "height": 2400})
        page.screenshot(path=str(out / "counterfactual.png"))
        page.set_viewport_size({"width": 1500, "height": 6000})
        print("saved", out / "counterfactual.png", flush=True)

        page.goto(f"{url}/compare")
        page.get_by_text("Metrics (mean ± std across seeds)").wait_for()
        wait_until_idle(page)
        page.get_by_text("Which differences are real").first.wait_for(timeout=300_000)
        wait_until_idle(page)
        section(page, "Which differences are real", out, "significance", 1700)
        section(page, "Metrics by slice", out, "compare_slices", 500)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "assets" / "screenshots",
         Path(sys.argv[2]) if len(sys.argv) > 2 else None)
