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
PAGES = {"Overview": "", "Saliency explorer (demo teacher)": "/saliency"}


def ready_after(url: str, browser) -> float:
    """Seconds until the page at ``url`` shows a drawn chart and Streamlit has stopped running."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    t = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=180_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000)
    elapsed = time.perf_counter() - t
    page.close()
    return elapsed


def run(device) -> list[Row]:
    from playwright.sync_api import sync_playwright

    from tests.app.live_server import CHROMIUM, CHROMIUM_ARGS, dashboard

    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, path in PAGES.items():
            times = []
            for _ in range(LOADS):
                with dashboard() as url:
                    times.append(ready_after(url + path, browser))
            median = statistics.median(times)
            rows.append(Row("first visit", f"{name}: ready after the server is up (median of {LOADS} "
                            f"fresh servers: {', '.join(f'{t:.1f}' for t in times)} s)", median, "s",
                            f"≤ {TARGET:g}", median <= TARGET))
        browser.close()
    return rows
