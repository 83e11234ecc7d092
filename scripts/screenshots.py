"""Screenshots of every page with the shipped demo teachers (for the README):
``.venv/bin/python scripts/screenshots.py [OUT_DIR]`` (default assets/screenshots).

It launches a KD and an MSD run (one seed) of the synthetic demo teacher from the Distill page,
shoots the page while they run, and shoots Compare once they have finished.

``scripts/screenshots.py --quick-run [OUT_DIR] [--runs RUNS]`` instead launches the Distill page's
form as it opens (``QuickRun``: KD and MSD over three seeds, six runs, a few minutes on 2 cores) and
shoots Compare's "Which differences are real" once they have finished (compare_quick_run.png);
``--runs`` shoots the runs folder of an earlier launch again.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app.live_server import browser_page, dashboard, hover_first_scatter_point, wait_until_idle  # noqa: E402


def shoot(page, url: str, slug: str, title: str, out: Path) -> None:
    t0 = time.time()
    page.goto(f"{url}/{slug}")
    page.get_by_role("heading", name=title).first.wait_for()
    wait_until_idle(page)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')")  # widgets drawn
    print(f"{slug or 'overview'} loaded in {time.time() - t0:.1f} s", flush=True)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / f"{slug or 'overview'}.png"))
    print("saved", out / f"{slug or 'overview'}.png", flush=True)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="msd-shots-"))
    with dashboard({"MSD_STUDIO_RUNS": str(runs)}) as url, browser_page(1500, 1700) as page:
        shoot(page, url, "", "MSD Studio", out)
        shoot(page, url, "data_teacher", "Data & teacher", out)
        t0 = time.time()
        page.goto(f"{url}/saliency")
        page.get_by_text("why the teacher says").wait_for()
        wait_until_idle(page)
        print(f"saliency (first visit: teacher on every view + attributions) loaded in {time.time() - t0:.1f} s")
        page.screenshot(path=str(out / "saliency.png"), full_page=True)
        print("saved", out / "saliency.png", flush=True)
        page.goto(f"{url}/saliency")
        page.get_by_text("why the teacher says").wait_for()
        wait_until_idle(page)
        tip = hover_first_scatter_point(page)
        box = page.locator(".vega-embed").first.bounding_box()
        page.screenshot(path=str(out / "saliency_hover.png"),
                        clip={"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]})
        print("saved", out / "saliency_hover.png", "(thumbnail shown)" if tip.is_visible() else "(NO thumbnail)")

        page.goto(f"{url}/distill")
        page.get_by_role("heading", name="Distill").wait_for()
        wait_until_idle(page)
        page.get_by_role("combobox", name="Teacher").click()
        page.get_by_role("option", name="synthetic", exact=False).first.click()
        for field, value in (("Epochs", "3"), ("Seeds", "0"), ("Training examples (0 = all)", "1000")):
            box = page.get_by_label(field, exact=True)
            box.fill(value)
            box.press("Tab")
        page.get_by_role("button", name="Launch").click()
        t0 = time.time()
        page.get_by_text("Launched 2 run(s)", exact=False).wait_for()  # one seed: the running curve fits the shot
        curve = """n => [...document.querySelectorAll('.js-plotly-plot')].some(
            p => (p.layout?.title?.text || '').includes('loss terms') && p._fullData
                 && p._fullData.some(t => (t._length ?? 0) >= n))"""
        page.wait_for_function(curve, arg=1, timeout=600_000)
        print(f"launch -> first point on the curve: {time.time() - t0:.1f} s", flush=True)
        page.wait_for_function(curve, arg=15, timeout=600_000)
        page.wait_for_timeout(2500)
        page.screenshot(path=str(out / "distill.png"))
        print("saved", out / "distill.png", flush=True)
        page.get_by_text("Nothing is running", exact=False).wait_for(timeout=900_000)
        time.sleep(1)
        page.goto(f"{url}/compare")
        page.get_by_text("Metrics (mean ± std across seeds)").wait_for()
        page.get_by_text("Outcomes by the modality").wait_for(timeout=180_000)
        wait_until_idle(page)
        page.screenshot(path=str(out / "compare.png"), full_page=True)
        print("saved", out / "compare.png", flush=True)


def quick_run(out: Path, runs: Path | None = None) -> None:
    """Launch the Distill form as it opens and shoot Compare's tests once its runs have finished
    (``runs``: a runs folder of an earlier such launch, shot again without launching)."""
    out.mkdir(parents=True, exist_ok=True)
    fresh = runs is None
    runs = runs or Path(tempfile.mkdtemp(prefix="msd-quick-run-"))
    print(f"runs folder: {runs}", flush=True)
    with dashboard({"MSD_STUDIO_RUNS": str(runs)}) as url, browser_page(1500, 1250) as page:
        if fresh:
            page.goto(f"{url}/distill")
            page.get_by_role("heading", name="Distill").wait_for()
            wait_until_idle(page)
            t0 = time.time()
            page.get_by_role("button", name="Launch").click()
            page.get_by_text("Launched 6 run(s)", exact=False).wait_for()
            page.get_by_text("Nothing is running", exact=False).wait_for(timeout=1_800_000)
            print(f"six runs in {time.time() - t0:.0f} s", flush=True)
            time.sleep(1)
        page.goto(f"{url}/compare")
        heading = page.get_by_role("heading", name="Which differences are real")
        heading.wait_for()
        page.get_by_text("These trained models on these examples", exact=False).wait_for(timeout=300_000)
        wait_until_idle(page)
        heading.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "compare_quick_run.png"))
        print("saved", out / "compare_quick_run.png", flush=True)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(prog="scripts/screenshots.py")
    p.add_argument("out", nargs="?", type=Path, default=ROOT / "assets" / "screenshots")
    p.add_argument("--quick-run", action="store_true", help="only compare_quick_run.png")
    p.add_argument("--runs", type=Path, help="with --quick-run: the runs folder of an earlier launch")
    a = p.parse_args()
    quick_run(a.out, a.runs) if a.quick_run else main(a.out)
