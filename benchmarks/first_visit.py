"""A first visit in a real browser: seconds from the dashboard's server being up (its health
endpoint answering) until the Overview, and a demo teacher's Saliency explorer, are ready (their
charts drawn and the script no longer running). Each load gets a freshly started server, as a
first visit does; the median of 3 is reported."""

from __future__ import annotations

import statistics
import time

from .common import Row

LOADS = 3
TARGET = 3.0
PAGES = {"Overview": ("", 3), "Saliency explorer (demo teacher)": ("/saliency", 2)}  # path, charts it draws
READY = """charts => {
    const app = document.querySelector('[data-testid="stApp"]');
    const drawn = [...document.querySelectorAll('.vega-embed, .js-plotly-plot')]
        .filter(c => c.querySelector('canvas, svg.marks, .main-svg'));
    return app && app.dataset.testScriptState === 'notRunning' && drawn.length >= charts; }"""


def ready_after(url: str, charts: int, browser) -> float:
    """Seconds until the page at ``url`` has drawn its ``charts`` charts (Vega-Lite or Plotly) and
    Streamlit has finished running its script."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    t = time.perf_counter()
    page.goto(url)
    page.wait_for_function(READY, arg=charts, timeout=180_000, polling=50)
    elapsed = time.perf_counter() - t
    page.close()
    return elapsed


def run(device) -> list[Row]:
    from playwright.sync_api import sync_playwright

    from tests.app.live_server import CHROMIUM, CHROMIUM_ARGS, dashboard

    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        browser.new_page().close()  # the browser's own start is not the dashboard's first visit
        for name, (path, charts) in PAGES.items():
            times = []
            for _ in range(LOADS):
                with dashboard() as url:
                    times.append(ready_after(url + path, charts, browser))
            median = statistics.median(times)
            rows.append(Row("first visit", f"{name}: ready after the server is up (median of {LOADS} "
                            f"fresh servers: {', '.join(f'{t:.1f}' for t in times)} s)", median, "s",
                            f"≤ {TARGET:g}", median <= TARGET))
        browser.close()
    return rows
