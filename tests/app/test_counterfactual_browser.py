"""The counterfactual editor in a real browser (Playwright driving Debian's chromium): edit the
text, see the teacher's prediction change; a screenshot of the page for the README."""

import json
import shutil
import time

import pytest

from tests.app.live_server import ROOT, browser_page, dashboard, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = ROOT / "test-artifacts"


def test_counterfactual_editor_in_a_real_browser(tmp_path):
    from msd_core.config import DataConfig
    from msd_core.data import load_split
    from msd_core.engine.checkpoint import save_model
    from tests.conftest import tiny_model

    SHOTS.mkdir(exist_ok=True)
    teacher = tmp_path / "assets" / "teachers" / "synthetic"  # the demo teacher only (no easy-vqa to pick past)
    shutil.copytree(ROOT / "assets" / "teachers" / "synthetic", teacher)
    data = json.loads((teacher / "run.json").read_text())["config"]["data"]
    ds = load_split(DataConfig.from_dict(data), "val")
    student = tmp_path / "runs" / "tiny-kd"
    save_model(student / "model.safetensors", tiny_model(ds), ds.labels)
    (student / "run.json").write_text(json.dumps({"kind": "student", "status": "finished", "config": {
        "data": data, "teacher": str(teacher), "distill": {"method": "kd"}, "model": {"preset": "student-small"},
        "train": {"seed": 0}}}))
    env = {"MSD_STUDIO_RUNS": str(tmp_path / "runs"), "MSD_STUDIO_ASSETS": str(tmp_path / "assets"),
           "MSD_STUDIO_CACHE": str(tmp_path / "cache")}
    ex = ds.examples[0]
    other = next(lab for lab in ds.labels if lab != ds.labels[ex.target])
    with dashboard(env) as url, browser_page(width=1400, height=2500) as page:
        t0 = time.time()
        page.goto(f"{url}/counterfactual")
        page.get_by_role("heading", name="Counterfactual editor").wait_for()
        page.get_by_text("why the teacher says", exact=False).first.wait_for()
        wait_until_idle(page)
        opened = time.time() - t0
        assert page.locator('[data-testid="stException"]').count() == 0
        value = page.locator('[data-testid="stMetricValue"]').first
        before = value.inner_text()
        assert before.startswith(ds.labels[ex.target])

        box = page.get_by_role("textbox", name="Text")
        box.fill(f"{other.lower()} {other.lower()} in this picture")
        t1 = time.time()
        box.press("Control+Enter")
        page.get_by_text("text edited", exact=False).wait_for()
        wait_until_idle(page)
        edited = time.time() - t1
        after = value.inner_text()
        assert after != before, (before, after)
        assert page.locator('[data-testid="stException"]').count() == 0
        donor = page.get_by_role("spinbutton", name="Image from example")  # swap the image too, for the picture
        donor.fill("7")
        donor.press("Enter")
        page.get_by_text("image from example 7", exact=False).wait_for()
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.mouse.move(5, 5)
        page.screenshot(path=str(SHOTS / "counterfactual.png"), full_page=True)
    print(f"counterfactual page: opened in {opened:.1f} s; a text edit redrawn in {edited:.2f} s "
          f"(teacher {before!r} -> {after!r})")
