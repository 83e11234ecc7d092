"""End to end in a real browser: Playwright driving Debian's chromium against a live server.

This test must run in CI (``.ci/run`` installs chromium); it fails, rather than skips,
when the browser is missing.
"""

import time

import pytest

from tests.app.live_server import ROOT, browser_page, dashboard, hover_first_scatter_point, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = ROOT / "test-artifacts"


def test_overview_and_data_pages_in_a_real_browser(home_with_teacher, tmp_path):
    SHOTS.mkdir(exist_ok=True)
    env = {"MSD_STUDIO_RUNS": str(home_with_teacher), "MSD_STUDIO_ASSETS": str(tmp_path / "no-assets")}
    with dashboard(env) as url, browser_page() as page:
        t0 = time.time()
        page.goto(url)
        page.get_by_role("heading", name="MSD Studio").wait_for()
        page.locator(".vega-embed canvas").nth(2).wait_for()  # the teachers' views, labels per data set
        page.locator('[data-testid="stImage"] img').nth(15).wait_for()
        wait_until_idle(page)
        print(f"overview rendered in {time.time() - t0:.1f} s")
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.get_by_text("Test-set metric of each teacher").count() == 1  # shown with a teacher's metrics
        page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

        page.get_by_role("link", name="Data & teacher").click()
        page.get_by_role("heading", name="Data & teacher").wait_for()
        page.locator('[data-testid="stImage"] img').nth(11).wait_for()
        wait_until_idle(page)
        page.get_by_role("combobox", name="Data set").click()
        page.get_by_role("option", name="synthetic").click()
        page.get_by_text("2,000", exact=False).first.wait_for()
        page.locator(".vega-embed canvas").nth(1).wait_for()  # test metrics per view, validation history
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.get_by_text("Test metrics per view").count() == 1
        page.screenshot(path=str(SHOTS / "data-teacher.png"), full_page=True)


def test_saliency_live_run_and_compare_in_a_real_browser(home_with_teacher, tmp_path):
    """Explorer -> an example's heat map; Distill -> a short MSD run whose curve gains points
    while it runs; Compare -> the run in the table, beside a KD run typed in a terminal."""
    SHOTS.mkdir(exist_ok=True)
    runs = tmp_path / "runs"
    import os
    import shutil
    import subprocess
    import sys

    shutil.copytree(home_with_teacher / "teacher-synthetic", runs / "teacher-synthetic")
    env = {"MSD_STUDIO_RUNS": str(runs), "MSD_STUDIO_ASSETS": str(tmp_path / "no-assets"),
           "MSD_STUDIO_CACHE": str(tmp_path / "cache")}
    terminal = subprocess.run([sys.executable, "-m", "msd_core.cli", "distill", "--teacher",
                               str(runs / "teacher-synthetic"), "--data-option", "n=2000", "--max-train", "96",
                               "--max-eval", "64", "--epochs", "1", "--method", "kd", "--out",
                               str(runs / "from-terminal")], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                              text=True, timeout=300)
    assert terminal.returncode == 0, terminal.stderr[-2000:]
    timings = {}
    with dashboard(env) as url, browser_page() as page:
        t0 = time.time()
        page.goto(f"{url}/saliency")
        page.get_by_role("heading", name="Saliency explorer").wait_for()
        page.get_by_text("examples match").first.wait_for()
        wait_until_idle(page)
        page.get_by_text("why the teacher says").wait_for()  # the shown example's attribution picture
        page.locator(".vega-embed canvas").nth(1).wait_for()  # scatter, histograms
        page.get_by_text("under each fixed scheme", exact=False).first.wait_for()  # the weights, a table
        timings["saliency page"] = time.time() - t0
        caption = page.get_by_text("why the teacher says")
        assert caption.locator("xpath=ancestor::*[@data-testid='stImage'][1]//img").count() == 1
        assert page.locator('[data-testid="stException"]').count() == 0
        tip = hover_first_scatter_point(page)
        assert tip.is_visible(), "no thumbnail on hover"
        assert tip.locator("img").get_attribute("src").startswith("data:image/webp;base64,")
        assert tip.get_attribute("data-example") is not None
        page.screenshot(path=str(SHOTS / "saliency-hover.png"))
        page.mouse.move(5, 5)
        page.wait_for_timeout(300)
        assert not tip.is_visible(), "the thumbnail stayed after the pointer left the point"

        plot = page.locator(".vega-embed canvas").first.bounding_box()  # box-select most of the scatter
        page.mouse.move(plot["x"] + plot["width"] * 0.2, plot["y"] + plot["height"] * 0.15)
        page.mouse.down()
        page.mouse.move(plot["x"] + plot["width"] * 0.8, plot["y"] + plot["height"] * 0.9, steps=8)
        page.mouse.up()
        page.get_by_text("selected on the scatter", exact=False).wait_for()
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(SHOTS / "saliency.png"))

        page.get_by_role("link", name="Distill").click()
        page.get_by_role("heading", name="Distill").wait_for()
        wait_until_idle(page)
        page.get_by_role("combobox", name="Student preset").click()  # the slower student: a run long enough
        page.get_by_role("option", name="student-small", exact=True).click()  # to watch its curve grow
        wait_until_idle(page)
        for field, value in (("Epochs", "30"), ("Training examples (0 = all)", "96"), ("Seeds", "0")):
            box = page.get_by_label(field, exact=True)  # not its "Help for …" button
            box.fill(value)
            box.press("Tab")
        page.get_by_text("kd", exact=True).locator("..").get_by_role("button").click()  # keep MSD only
        page.get_by_role("button", name="Launch").click()
        t_launch = time.time()
        page.get_by_text("Launched 1 run(s)", exact=False).wait_for()

        def points() -> int:
            return page.evaluate("""() => {
                const plots = [...document.querySelectorAll('.js-plotly-plot')];
                const p = plots.find(el => (el.layout?.title?.text || '').includes('loss terms'));
                if (!p || !p._fullData) return 0;
                return Math.max(0, ...p._fullData.map(t => t._length ?? (t.x ? t.x.length : 0))); }""")

        deadline = time.time() + 180
        while points() < 2 and time.time() < deadline:
            page.wait_for_timeout(250)
        first = points()
        timings["launch to first point"] = time.time() - t_launch
        assert first >= 2, "no curve points appeared"
        later, deadline = first, time.time() + 60
        while later <= first and time.time() < deadline:  # the fragment redraws every 2 s
            page.wait_for_timeout(250)
            now = points()
            if now == 0:  # the run ended and its live card went away before the curve was seen to grow
                break
            later = now
        assert later > first, f"the curve did not grow while running ({first} -> {later})"
        page.screenshot(path=str(SHOTS / "distill.png"))
        page.get_by_text("Nothing is running", exact=False).wait_for(timeout=400_000)
        timings["launch to run end"] = time.time() - t_launch

        page.get_by_role("link", name="Compare").click()
        page.get_by_role("heading", name="Compare").wait_for()
        page.get_by_text("Metrics (mean ± std across seeds)").wait_for()
        wait_until_idle(page)
        assert page.get_by_text("msd instance-soft λ=1.0 · student-small", exact=False).count() >= 1
        assert page.get_by_text("from-terminal", exact=False).count() >= 1  # the terminal's run, registered
        assert page.get_by_text("kd · student-small", exact=False).count() >= 1
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(SHOTS / "compare.png"))
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
