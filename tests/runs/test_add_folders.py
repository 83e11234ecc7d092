"""``msd runs --add``: run folders made elsewhere are registered where they are, once, and read like
runs made here; what is not a finished or interrupted run is refused with a message naming the file."""

from __future__ import annotations

import json
import shutil

import pytest

from msd_core.cli import main
from msd_core.paths import demo_teacher
from msd_core.runs import Registry
from msd_core.runs.liveness import RunLock
from tests.runs.test_terminal_runs import DISTILL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def made_elsewhere(tmp_path_factory):
    """A teacher and two KD / MSD students trained in another runs folder ("the cluster"), with the
    teacher beside them, as a copy from that machine would hold them."""
    cluster = tmp_path_factory.mktemp("cluster")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSD_STUDIO_RUNS", str(cluster / "runs"))
        mp.setenv("MSD_STUDIO_CACHE", str(cluster / "cache"))
        shutil.copytree(demo_teacher("synthetic"), cluster / "runs" / "teacher")
        for method in ("kd", "msd"):
            args = [a if a != str(demo_teacher("synthetic")) else str(cluster / "runs" / "teacher") for a in DISTILL]
            assert main([*args[:-1], method, "--epochs", "1", "--out", str(cluster / "runs" / method)]) == 0
    return cluster


def compare_table(monkeypatch, runs_folder):
    from tests.app.test_pages import run_app

    monkeypatch.setenv("MSD_STUDIO_RUNS", str(runs_folder))
    at = run_app("app_pages/compare.py")
    at.multiselect[0].set_value([r["id"] for r in Registry(runs_folder / "registry.sqlite").runs()
                                 if r["status"] == "finished"]).run()
    return next(d.value for d in at.dataframe if "seeds" in d.value.columns and "group" in d.value.columns)


def test_added_folders_read_on_compare_as_they_do_where_they_were_made(made_elsewhere, tmp_path, monkeypatch, capsys):
    here = tmp_path / "here"
    here.mkdir()
    folders = [str(made_elsewhere / "runs" / m) for m in ("kd", "msd")]
    assert main(["runs", "--db", str(here / "registry.sqlite"), "--add", *folders]) == 0
    said = capsys.readouterr().out
    reg = Registry(here / "registry.sqlite")
    original = {r["id"]: r for r in Registry(made_elsewhere / "runs" / "registry.sqlite").runs()}
    assert {r["id"] for r in reg.runs()} == set(original) and said.count("added as") == 2
    assert main(["runs", "--db", str(here / "registry.sqlite"), "--add", *folders]) == 0
    assert capsys.readouterr().out.count("already registered as") == 2 and len(reg.runs()) == 2  # idempotent
    theirs = compare_table(monkeypatch, made_elsewhere / "runs")
    ours = compare_table(monkeypatch, here)
    assert theirs.sort_values("group").reset_index(drop=True).equals(ours.sort_values("group").reset_index(drop=True))


def test_a_copied_run_finds_its_teacher_where_it_lay_relative_to_it_and_exports(made_elsewhere, tmp_path):
    from msd_core.analysis.export import examples_frame

    copy = tmp_path / "copy"
    shutil.copytree(made_elsewhere / "runs", copy, ignore=shutil.ignore_patterns("registry.sqlite*", ".run.lock"))
    moved_teacher = tmp_path / "moved-teacher"
    reg = Registry(tmp_path / "registry.sqlite")
    # the recorded teacher path (the cluster's) still exists here: make this a machine where it does not
    shutil.move(str(made_elsewhere / "runs" / "teacher"), str(moved_teacher))
    try:
        from msd_core.runs.add import add_folders

        report = add_folders(reg, [copy / "msd"])
        (run,) = reg.runs()
        assert run["config"]["teacher"] == str(copy / "teacher"), report.lines
        frame, _ = examples_frame([run], "test")
        assert f"{run['id']}/full/pred" in frame.columns and "teacher/full/pred" in frame.columns
        shutil.rmtree(copy / "teacher")
        report = add_folders(reg, [copy / "kd"])
        assert "is not on this machine" in report.lines[0] and "--teacher PATH" in report.lines[0]
        report = add_folders(reg, [copy / "kd"], teacher=str(moved_teacher))
        assert "already registered" in report.lines[0] and "its teacher is now" in report.lines[0]
        kd = next(r for r in reg.runs() if r["out_dir"] == str(copy / "kd"))
        assert kd["config"]["teacher"] == str(moved_teacher)
        assert json.loads((copy / "kd" / "run.json").read_text())["config"]["teacher"] != str(moved_teacher)
    finally:
        shutil.move(str(moved_teacher), str(made_elsewhere / "runs" / "teacher"))


def test_what_is_not_a_finished_or_interrupted_run_is_refused_with_a_message(made_elsewhere, tmp_path, capsys):
    from msd_core.runs.add import add_folders

    reg = Registry(tmp_path / "registry.sqlite")
    empty = tmp_path / "empty"
    empty.mkdir()
    damaged = tmp_path / "damaged"
    shutil.copytree(made_elsewhere / "runs" / "kd", damaged, ignore=shutil.ignore_patterns(".run.lock"))
    (damaged / "run.json").write_text("{ not json")
    no_metrics = tmp_path / "no-metrics"
    shutil.copytree(made_elsewhere / "runs" / "kd", no_metrics, ignore=shutil.ignore_patterns(".run.lock"))
    (no_metrics / "metrics.json").write_text("[1, 2")
    live = tmp_path / "live"
    shutil.copytree(made_elsewhere / "runs" / "msd", live, ignore=shutil.ignore_patterns(".run.lock"))
    info = json.loads((live / "run.json").read_text())
    (live / "run.json").write_text(json.dumps({**info, "id": "20261206-000000-abcdef", "status": "running"}))
    twin = tmp_path / "twin"
    shutil.copytree(made_elsewhere / "runs" / "msd", twin, ignore=shutil.ignore_patterns(".run.lock"))
    lock = RunLock(live)
    lock.acquire()  # a live run holds its folder's lock
    try:
        report = add_folders(reg, [empty, damaged, no_metrics, live, made_elsewhere / "runs" / "msd", twin])
    finally:
        lock.release()
    lines = report.lines
    assert lines[0] == f"not added: {empty}: no run.json here — give the folder of a run (it holds run.json, " \
                       f"metrics.json and model.safetensors)"
    assert lines[1].startswith(f"not added: {damaged / 'run.json'}: cannot be read")
    assert lines[2].startswith(f"not added: {no_metrics / 'metrics.json'}: cannot be read")
    assert lines[3] == (f"not added: {live}: the run is running; only a finished or interrupted run is added (a "
                        f"running one records itself where it runs)")
    assert "added as" in lines[4]
    assert lines[5].startswith(f"not added: {twin}: its run id ") and "still exists — two runs cannot share an id" \
        in lines[5]
    assert len(reg.runs()) == 1 and report.refused == [str(p) for p in (empty, damaged, no_metrics, live, twin)]
    code = main(["runs", "--db", str(tmp_path / "registry.sqlite"), "--add", str(empty)])
    assert code == 2 and "not added:" in capsys.readouterr().out


def test_a_folder_that_moved_keeps_its_run_and_its_curves(made_elsewhere, tmp_path):
    from msd_core.runs.add import add_folders

    first = tmp_path / "first"
    shutil.copytree(made_elsewhere / "runs" / "kd", first, ignore=shutil.ignore_patterns(".run.lock"))
    reg = Registry(tmp_path / "registry.sqlite")
    (run_id,) = add_folders(reg, [first]).added
    curves = reg.metrics(run_id)
    second = tmp_path / "second"
    shutil.move(str(first), str(second))
    report = add_folders(reg, [second])
    assert report.lines == [f"{second}: {run_id} moved here from {first}"] and report.added == [run_id]
    (run,) = reg.runs()
    assert run["out_dir"] == str(second) and reg.metrics(run_id) == curves
    assert [a["path"] for a in reg.artifacts(run_id)] == [str(second / "model.safetensors")]


def test_compares_box_adds_a_folder_and_a_terminal_run_is_on_compare(made_elsewhere, tmp_path, monkeypatch):
    from tests.app.test_pages import run_app, texts

    monkeypatch.setenv("MSD_STUDIO_RUNS", str(made_elsewhere / "runs"))
    at = run_app("app_pages/compare.py")  # the cluster's own runs, typed in a terminal, are listed
    labels = at.multiselect[0].options
    assert any(label.startswith("kd · ") for label in labels) and any(label.startswith("msd · ") for label in labels)
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    at = run_app("app_pages/compare.py")
    assert "No finished distillation yet" in texts(at.info)
    at.text_area(key="add-folders").set_value(str(made_elsewhere / "runs" / "kd")).run()
    at.button(key="add-folders-button").click().run()
    assert not at.exception
    assert f"{made_elsewhere / 'runs' / 'kd'}: added as" in texts(at.success)
    assert [label.split(" · ")[0] for label in at.multiselect[0].options] == ["kd"]
    assert any("msd runs --add" in c.value for c in at.code)
