"""End to end in a real browser: Playwright driving Debian's chromium against a live server.

This test must run in CI (``.ci/run`` installs chromium); it fails, rather than skips,
when the browser is missing.
"""

import time

import pytest

from tests.app.live_server import ROOT, browser_page, dashboard, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = ROOT / "test-artifacts"


def test_overview_and_data_pages_in_a_real_browser(home_with_teacher, tmp_path):
    SHOTS.mkdir(exist_ok=True)
    env = {"MSD_STUDIO_RUNS": str(home_with_teacher), "MSD_STUDIO_ASSETS": str(tmp_path / "no-assets")}
    with dashboard(env) as url, browser_page() as page:
        t0 = time.time()
        page.goto(url)
        page.get_by_role("heading", name="MSD Studio").wait_for()
        page.locator(".js-plotly-plot .main-svg").first.wait_for()
        page.locator('[data-testid="stImage"] img').nth(15).wait_for()
        wait_until_idle(page)
        print(f"overview rendered in {time.time() - t0:.1f} s")
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.get_by_text("synthetic · student-small").count() >= 1
        page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

        page.get_by_role("link", name="Data & teacher").click()
        page.get_by_role("heading", name="Data & teacher").wait_for()
        page.locator('[data-testid="stImage"] img').nth(11).wait_for()
        wait_until_idle(page)
        page.get_by_role("combobox", name="Data set").click()
        page.get_by_role("option", name="synthetic").click()
        page.get_by_text("2,000", exact=False).first.wait_for()
        page.locator(".js-plotly-plot .main-svg").nth(1).wait_for()
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.get_by_text("Test metrics per view").count() == 1
        page.screenshot(path=str(SHOTS / "data-teacher.png"), full_page=True)
