"""Slices on the pages under AppTest (docs/METHOD.md §15): saved from the explorer, listed and
deleted there, picked on Distill (its command carries the slice), reported per run on Compare."""

import shlex
import sqlite3

import pytest

from tests.app.test_pages import run_app, texts


@pytest.fixture
def home(tmp_path, monkeypatch, tiny_teacher_runs):
    """The tiny teacher (found under assets) and an empty runs folder of this test's own."""
    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(tiny_teacher_runs))
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "runs"


def test_explorer_saves_the_filter_result_as_a_slice_lists_and_deletes_it(home):
    from msd_core.data.slices import list_slices

    at = run_app("app_pages/saliency.py")
    assert "No saved slice yet." in texts(at.caption)
    cls = next(s for s in at.selectbox if s.label == "Class")
    cls.set_value(cls.options[1]).run()
    next(t for t in at.text_input if t.label == "Slice name").set_value("one-class").run()
    at.session_state["explorer-table"] = True  # open the table of the matching examples
    at.button(key="slice-save").click().run()
    assert "Saved slice **one-class**" in texts(at.success), texts(at.error)
    (saved,) = list_slices()
    shown = next(d.value for d in at.dataframe if "label" in d.value.columns and "dominant" in d.value.columns)
    assert sorted(saved.ids) == sorted(shown["id"]) and set(shown["label"]) == {cls.options[1]}
    assert (saved.split, saved.data["name"], saved.note) == ("val", "synthetic", f"filters: class = {cls.options[1]}")
    listed = next(d.value for d in at.dataframe if "ids hash" in d.value.columns)
    assert list(listed["name"]) == ["one-class"] and list(listed["size"]) == [len(saved.ids)]
    at.button(key="slice-save").click().run()  # the same name again: a message, not a second file
    assert "already exists" in texts(at.error) and len(list_slices()) == 1
    at.button(key="slice-delete").click().run()
    assert list_slices() == [] and "No saved slice yet." in texts(at.caption) and not at.exception


def test_distill_page_picks_a_train_slice_and_its_command_carries_it(home, tiny_teacher_runs):
    from msd_core.cli import build_parser
    from msd_core.flags import run_config
    from msd_core.config import DistillRunConfig, QuickRun
    from msd_core.data import load_split
    from msd_core.data.slices import save_slice
    from msd_core.analysis.catalog import find_teachers
    from app.state import teacher_data_config

    teacher = find_teachers(str(tiny_teacher_runs))[0]
    data = teacher_data_config(teacher)
    s = save_slice("few", data, "train", [e.id for e in load_split(data, "train").examples[:10]])
    save_slice("a-val-one", data, "val", [e.id for e in load_split(data, "val").examples[:3]])  # not offered
    at = run_app("app_pages/distill.py")
    box = next(b for b in at.selectbox if b.label == "Slice (train split)")
    assert [o for o in box.options] == ["(none: the whole train split)", f"few — 10 examples · {s.ids_hash}"]
    assert next(b for b in at.selectbox if b.label == "Slice mode").disabled
    box.set_value(s).run()
    next(b for b in at.selectbox if b.label == "Slice mode").set_value("upweight").run()
    next(n for n in at.number_input if n.label == "Slice weight (upweight)").set_value(3).run()
    commands = [c.value for c in at.code if c.value.startswith("msd distill")][0].splitlines()[:-1]
    q = QuickRun()  # one command per seed and method the form starts with
    assert len(commands) == len(q.seeds) * len(q.methods)
    assert all("--slice-mode upweight --slice-weight 3" in c for c in commands)
    assert all(f"--slice-hash {s.ids_hash}" in c for c in commands)
    cfg = run_config(DistillRunConfig, build_parser().parse_args(shlex.split(commands[0])[1:]))
    assert (cfg.data.slice, cfg.data.slice_hash, cfg.data.slice_weight) == (str(s.path), s.ids_hash, 3)
    assert not at.exception and not at.error


def test_compare_shows_each_run_on_each_slice_next_to_its_overall_accuracy(finished_students, tmp_path,
                                                                           monkeypatch):
    import json

    from msd_core.config import DataConfig
    from msd_core.data import load_split
    from msd_core.data.slices import save_slice
    from msd_core.runs import Registry

    home, ids = finished_students
    runs = tmp_path / "runs"  # a copy of the registry: the shared one gets no slices folder
    runs.mkdir()
    with sqlite3.connect(home / "registry.sqlite") as src, sqlite3.connect(runs / "registry.sqlite") as dst:
        src.backup(dst)
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(runs))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(home / "cache"))
    reg = Registry(runs / "registry.sqlite")
    data = DataConfig.from_dict(reg.run(ids[0])["config"]["data"])
    test_ids = [e.id for e in load_split(data, "test").examples]
    save_slice("first-ten", data, "test", test_ids[:10])
    at = run_app("app_pages/compare.py")
    table = next(d.value for d in at.dataframe if "slice" in d.value.columns)
    assert list(table["slice"]) == ["first-ten"] * 2 and set(table["run"]) == set(ids)
    for c in ("full accuracy (slice)", "full accuracy (whole split)", "only:image accuracy (slice)",
              "only:text accuracy (slice)"):
        assert c in table.columns
    for _, row in table.iterrows():  # the whole split's accuracy is the run's recorded test metric
        saved = json.loads((home / row["name"].split()[0] / "metrics.json").read_text())["test"]["full"]["accuracy"]
        assert row["full accuracy (whole split)"] == pytest.approx(saved, abs=1e-4)
        tenths = row["full accuracy (slice)"] * 10  # right on k of the slice's 10 examples
        assert 0 <= tenths <= 10 and tenths == pytest.approx(round(tenths), abs=1e-3)
    assert not at.exception and not at.error
