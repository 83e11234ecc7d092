"""Screenshots of the Data & teacher page for the other task kinds (for the README):
``.venv/bin/python scripts/screenshots_tasks.py [OUT_DIR]`` (default assets/screenshots).

The synthetic set in multi-label mode (labels as chips) and a small VQA v2 written in its official
layout by the tests' writer (each question's answers with their scores)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app.live_server import browser_page, dashboard, wait_until_idle  # noqa: E402
from tests.engine.test_task_kinds import data_config  # noqa: E402


def show(page, data_set: str, options: str, folder: str | None = None) -> None:
    page.get_by_role("combobox", name="Data set").click()
    page.get_by_role("option", name=data_set, exact=True).click()
    wait_until_idle(page)
    for label, value in (("Data folder", folder), ("Loader options", options)):
        if value is not None:
            box = page.locator(f'input[aria-label="{label}"]')
            box.fill(value)
            box.press("Enter")
            page.wait_for_timeout(500)
            wait_until_idle(page)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="msd-shots-tasks-"))
    vqa = data_config("soft", home)
    with dashboard({"MSD_STUDIO_RUNS": str(home / "runs"), "MSD_STUDIO_CACHE": str(home / "cache")}) as url, \
            browser_page(1400, 1250) as page:
        page.goto(f"{url}/data_teacher")
        page.get_by_role("heading", name="Data & teacher").wait_for()
        wait_until_idle(page)
        for name, (data_set, options, folder, kind) in {
                "data_multilabel": ("synthetic", "task=multi-label", None, "multi-label"),
                "data_vqa": ("vqa-v2", "answers=5", vqa.root, "soft")}.items():
            show(page, data_set, options, folder)
            page.get_by_text(f"task: {kind}", exact=False).first.wait_for()
            page.screenshot(path=str(out / f"{name}.png"))
            print("saved", out / f"{name}.png", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "assets" / "screenshots")
