"""Slice -> launch in a real browser: save a filter result of the train split as a slice in the
saliency explorer, pick it on Distill, launch a tiny run and see it appear (docs/METHOD.md §15)."""

import shutil

import pytest

from tests.app.live_server import ROOT, browser_page, dashboard, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = ROOT / "test-artifacts"


def choose(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option).first.click()
    wait_until_idle(page)


def finished(runs, timeout: float = 300.0) -> None:
    """Wait until the registry in ``runs`` holds a finished student run."""
    import time

    from msd_core.runs import Registry

    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(r["kind"] == "student" and r["status"] == "finished" for r in Registry(runs / "registry.sqlite").runs()):
            return
        time.sleep(0.5)
    raise TimeoutError("the launched run did not finish in time")


def test_save_a_slice_in_the_explorer_then_distil_on_it(home_with_teacher, tmp_path):
    SHOTS.mkdir(exist_ok=True)
    runs = tmp_path / "runs"
    shutil.copytree(home_with_teacher / "teacher-synthetic", runs / "teacher-synthetic")
    env = {"MSD_STUDIO_RUNS": str(runs), "MSD_STUDIO_ASSETS": str(tmp_path / "no-assets"),
           "MSD_STUDIO_CACHE": str(tmp_path / "cache")}
    with dashboard(env) as url, browser_page(height=1800) as page:
        page.goto(f"{url}/saliency")
        page.get_by_text("examples match").first.wait_for()
        wait_until_idle(page)
        choose(page, "Split", "train")
        choose(page, "Class", "ALPHA")
        box = page.get_by_label("Slice name")
        box.fill("alpha-train")
        box.press("Enter")
        wait_until_idle(page)
        page.get_by_role("button", name="Save slice").click()
        page.get_by_text("Saved slice", exact=False).wait_for()
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        section = page.get_by_role("heading", name="Slices")
        section.scroll_into_view_if_needed()
        top = section.bounding_box()["y"]
        page.screenshot(path=str(SHOTS / "slices-explorer.png"),
                        clip={"x": 0, "y": max(0, top - 40), "width": 1400, "height": 520})
        assert (runs / "slices" / "alpha-train.json").is_file()

        page.get_by_role("link", name="Distill").click()
        page.get_by_role("heading", name="Distill").wait_for()
        wait_until_idle(page)
        choose(page, "Slice (train split)", "alpha-train")
        for field, value in (("Epochs", "1"), ("Seeds", "0")):
            box = page.get_by_label(field, exact=True)  # not its "Help for …" button
            box.fill(value)
            box.press("Tab")
        page.get_by_text("kd", exact=True).locator("..").get_by_role("button").click()  # keep MSD only
        wait_until_idle(page)
        page.get_by_text("--slice-hash", exact=False).first.wait_for()  # the command carries the slice
        page.screenshot(path=str(SHOTS / "slices-distill.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 900})
        page.get_by_role("button", name="Launch").click()
        page.get_by_text("Launched 1 run(s)", exact=False).wait_for()
        finished(runs)  # the page's "Nothing is running" can be the one drawn before the launch
        page.goto(f"{url}/compare")  # a fresh session: the Distill page's fragment no longer reruns
        page.get_by_role("heading", name="Metrics by slice").wait_for()
        wait_until_idle(page)
        assert page.get_by_text("slice alpha-train only", exact=False).count() >= 1  # the run, named by its slice
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(SHOTS / "slices-compare.png"))
    import json

    (run_json,) = [p for p in runs.glob("*/run.json") if p.parent.name != "teacher-synthetic"]
    record = json.loads(run_json.read_text())
    assert record["status"] == "finished" and record["slice"]["name"] == "alpha-train"
