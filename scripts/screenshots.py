"""Screenshots of every page with the shipped demo teachers (for the README):
``.venv/bin/python scripts/screenshots.py [OUT_DIR]`` (default assets/screenshots)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app.live_server import browser_page, dashboard, wait_until_idle  # noqa: E402


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="msd-shots-"))
    with dashboard({"MSD_STUDIO_RUNS": str(runs)}) as url, browser_page(1500, 1900) as page:
        for slug, title in [("", "MSD Studio"), ("data_teacher", "Data & teacher"),
                            ("saliency", "Saliency explorer"), ("distill", "Distill"), ("compare", "Compare")]:
            page.goto(f"{url}/{slug}")
            page.get_by_role("heading", name=title).first.wait_for()
            wait_until_idle(page)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / f"{slug or 'overview'}.png"))
            print("saved", out / f"{slug or 'overview'}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "assets" / "screenshots")
