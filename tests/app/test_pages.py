"""Every page under streamlit's AppTest: with no data, with a teacher, and reacting to widgets."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.state import BUILT_IN
from tests.app.conftest import APP


def run_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def wait_for_run(registry_file, timeout: float = 240) -> dict:
    """The newest run of the registry once it stopped queueing and running; fails unless it finished."""
    import time

    from msd_core.runs import Registry

    reg = Registry(registry_file)
    run_id = reg.runs()[0]["id"]
    deadline = time.time() + timeout
    while time.time() < deadline and reg.run(run_id)["status"] in ("queued", "running"):
        time.sleep(0.5)
    run = reg.run(run_id)
    assert run["status"] == "finished", run["error"]
    return run


def teacher_listed(at, data: str, timeout: float = 30) -> bool:
    """Whether the page lists a teacher for ``data`` within ``timeout``: it re-reads the teacher list
    every few seconds, so a run that just finished may not be in the list it drew last."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        if f"No trained teacher for **{data}**" not in texts(at.info):
            return True
        time.sleep(1)
    return False


def text_box(at: AppTest, label: str):
    """The page's text input labelled ``label``."""
    return next(box for box in at.text_input if box.label == label)


def test_overview_with_no_teacher_shows_how_to_get_one(empty_home):
    at = run_app()
    assert at.title[0].value == "MSD Studio"
    assert "No trained teacher yet" in texts(at.info)
    assert "msd train-teacher --data synthetic" in texts(at.code)
    assert len(at.get("image")) == 16  # 8 sample examples of each built-in data set
    assert not at.error


def test_overview_lists_a_trained_teacher_with_per_view_metrics(home_with_teacher):
    at = run_app()
    assert "No trained teacher yet" not in texts(at.info)
    assert len(at.get("vega_lite_chart")) == 1 + len(BUILT_IN)  # the teachers' views, then labels per data set
    assert not at.get("plotly_chart")  # the first page loads one chart library, the lighter one
    frame = at.dataframe[0].value
    assert list(frame["data"]) == ["synthetic"]
    metrics = json.loads((home_with_teacher / "teacher-synthetic" / "metrics.json").read_text())
    assert frame["test only:image"][0] == pytest.approx(metrics["test"]["only:image"]["accuracy"], abs=1e-4)


def test_data_page_browses_and_filters_examples(empty_home):
    at = run_app("app_pages/data_teacher.py")
    assert len(at.get("image")) == 12
    at.selectbox[0].set_value("synthetic").run()
    assert "2,000" in texts(at.markdown)
    at.selectbox[2].set_value("BRAVO").run()  # label filter
    labels = [m.value for m in at.markdown if m.value.startswith("**") and " · _" in m.value]
    assert labels and all(v.startswith("**BRAVO**") for v in labels)
    at.selectbox[3].set_value("text-only").run()  # ground-truth reliance filter
    captions = [c.value for c in at.caption if c.value and " " in c.value and c.value.islower()]  # example texts
    assert captions and all("bravo" in c for c in captions)
    text_box(at, "Text contains").set_value("no such words anywhere").run()
    assert "No example matches" in texts(at.info)
    assert not at.exception


def test_data_page_on_disk_sets_need_a_folder_and_report_bad_ones(empty_home, tmp_path):
    at = run_app("app_pages/data_teacher.py")
    at.selectbox[0].set_value("hateful-memes").run()
    assert "enter the data folder" in texts(at.info)
    text_box(at, "Data folder").set_value(str(tmp_path / "missing")).run()
    assert "train.jsonl" in texts(at.error) and not at.exception


def test_data_page_shows_the_teacher_of_the_chosen_data_set(home_with_teacher):
    at = run_app("app_pages/data_teacher.py")
    assert "No trained teacher for **easy-vqa**" in texts(at.info)
    at.selectbox[0].set_value("synthetic").run()
    assert len(at.get("vega_lite_chart")) == 2 and not at.get("plotly_chart")  # per-view metrics, history
    assert "msd evaluate --checkpoint" in texts(at.code)


PAGES = ["app_pages/overview.py"] + sorted(f"app_pages/{p.name}" for p in (Path(APP).parent / "app_pages").glob("*.py")
                                          if p.name != "overview.py")  # every page, new ones included


def test_every_page_renders_with_the_shipped_demo_teachers(tmp_path, monkeypatch):
    from msd_core.paths import REPO

    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(REPO / "assets"))
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    at = run_app()
    assert list(at.dataframe[0].value["teacher"]) == ["assets/teachers/easy-vqa", "assets/teachers/synthetic"]
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, texts(at.error))
    at.switch_page("app_pages/saliency.py").run()
    assert [m.value for m in at.metric][1].endswith("%")


def test_saliency_page_modality_ledger_with_the_demo_teacher_and_a_tiny_student(demo_teacher_and_tiny_student):
    """The ledger section: the demo teacher and a tiny student of the same data, computed on a
    small sample when asked, with the reliance scatter and the collapse list."""
    at = run_app()
    at.switch_page("app_pages/saliency.py").run()
    teacher_box = at.selectbox[0]
    teacher_box.set_value(next(t for t in teacher_box.options if "synthetic" in t)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, texts(at.error)
    pick = next(m for m in at.multiselect if m.label.startswith("Students"))
    assert len(pick.options) == 1 and len(pick.value) == 1  # its own student is chosen by default
    assert not [d for d in at.dataframe if "model" in d.value]  # nothing heavy before the click
    at.number_input(key="ledger-n").set_value(24)
    at.number_input(key="ledger-k").set_value(2)
    at.number_input(key="ledger-emap").set_value(6)
    at.button(key="ledger-go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "model" in d.value)
    assert list(table["model"]) == ["teacher", pick.format_func(pick.value[0])]  # named as in the picker
    for col in ["saliency image", "shapley text", "interaction image×text", "perceptual image", "EMAP gap"]:
        assert col in table
    assert len(at.get("vega_lite_chart")) == 2  # the explorer's
    assert len(at.get("plotly_chart")) == 1  # the reliance scatter
    assert "Modality collapse" in texts(at.markdown)
    at.number_input(key="ledger-relies").set_value(0.3).run()  # new thresholds: redrawn, not recomputed
    assert not at.exception and not at.error
    assert next(d.value for d in at.dataframe if "model" in d.value).shape[0] == 2
