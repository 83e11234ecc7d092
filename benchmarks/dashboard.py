"""Render time of each page under AppTest with the demo data, and the saliency explorer's
re-render after a filter change (its data cached)."""

from __future__ import annotations

import os
import tempfile
import time

from .common import Row

PAGES = ["app_pages/overview.py", "app_pages/data_teacher.py", "app_pages/saliency.py", "app_pages/distill.py",
         "app_pages/compare.py"]


def run(device) -> list[Row]:
    from streamlit.testing.v1 import AppTest

    os.environ.setdefault("MSD_STUDIO_RUNS", tempfile.mkdtemp(prefix="msd-bench-runs-"))
    rows = []
    at = AppTest.from_file(os.path.join(os.path.dirname(__file__), "..", "app", "streamlit_app.py"),
                           default_timeout=600)
    t = time.perf_counter()
    at.run()
    rows.append(Row("dashboard", "first render (cold, imports included)", time.perf_counter() - t, "s"))
    for page in PAGES:
        at.switch_page(page).run()  # warm the caches once, then time a render
        t = time.perf_counter()
        at.run()
        rows.append(Row("dashboard", f"render {page.split('/')[-1]}", time.perf_counter() - t, "s"))
        assert not at.exception, [e.value for e in at.exception]
    at.switch_page("app_pages/saliency.py").run()
    text = next(t for t in at.text_input if t.label == "Text contains")
    times = []
    for needle in ("shape", "color", "circle", ""):
        t = time.perf_counter()
        text.set_value(needle).run()
        times.append(time.perf_counter() - t)
    worst = max(times[1:])
    rows.append(Row("dashboard", "saliency explorer re-render after a filter change", worst, "s", "≤ 0.5",
                    worst <= 0.5))
    return rows
