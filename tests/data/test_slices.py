"""Slices (docs/METHOD.md §15): saving, listing, deleting, applying them in load_split, the CLI flags,
what a run records, and Compare's per-slice table."""

import json
import shlex
from collections import Counter

import numpy as np
import pytest

from msd_core.config import DataConfig, DistillRunConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.data import load_split
from msd_core.data.slices import (SLICE_MODES, delete_slice, ids_hash, list_slices, load_slice, resolve_slice,
                                  save_slice)
from msd_core.errors import ConfigError
from tests.conftest import TINY

DATA = DataConfig("synthetic", options={"n": 64}, max_eval_examples=16)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "runs"


@pytest.fixture(scope="module")
def train_ids():
    return [e.id for e in load_split(DATA, "train").examples]


def test_save_list_and_delete(runs, train_ids):
    s = save_slice("hard-ones", DATA, "train", train_ids[:5] + train_ids[:2], note="class=ALPHA")
    assert s.path == runs / "slices" / "hard-ones.json" and s.ids == train_ids[:5]  # duplicates dropped
    save_slice("val-few", DATA, "val", ["synthetic-val-0", "synthetic-val-3"])
    (runs / "slices" / "junk.json").write_text("{not json")
    listed = list_slices()
    assert [(x.name, x.data_name, x.split, len(x.ids)) for x in listed] == [("hard-ones", "synthetic", "train", 5),
                                                                          ("val-few", "synthetic", "val", 2)]
    assert [x.name for x in list_slices(data_name="synthetic", split="train")] == ["hard-ones"]
    assert list_slices(data_name="easy-vqa") == []
    loaded = load_slice("hard-ones")
    assert loaded.ids_hash == ids_hash(reversed(train_ids[:5])) and loaded.note == "class=ALPHA"
    assert load_slice(str(s.path)).name == "hard-ones"  # by file too
    with pytest.raises(ConfigError, match="already exists.*delete that slice first"):
        save_slice("hard-ones", DATA, "train", train_ids[:1])
    with pytest.raises(ConfigError, match="no examples"):
        save_slice("empty", DATA, "train", [])
    with pytest.raises(ConfigError, match="use 1–64 letters"):
        save_slice("a b/c", DATA, "train", train_ids[:1])
    delete_slice("hard-ones")
    assert [x.name for x in list_slices()] == ["val-few"]
    with pytest.raises(ConfigError, match="no saved slice named hard-ones"):
        delete_slice("hard-ones")


def test_only_keeps_exactly_the_slice(runs, train_ids):
    chosen = train_ids[3:13]
    save_slice("ten", DATA, "train", chosen)
    ds = load_split(DataConfig(**{**DATA.to_dict(), "slice": "ten", "slice_mode": "only"}), "train")
    assert sorted(e.id for e in ds.examples) == sorted(chosen)
    assert len(load_split(DataConfig(**{**DATA.to_dict(), "slice": "ten"}), "val")) == 16  # train only


def test_upweight_repeats_each_slice_example_k_times_and_the_rest_once(runs, train_ids):
    chosen = set(train_ids[::7])
    save_slice("every-7th", DATA, "train", chosen)
    cfg = DataConfig(**{**DATA.to_dict(), "slice": str(runs / "slices" / "every-7th.json"),
                        "slice_mode": "upweight", "slice_weight": 3})
    counts = Counter(e.id for e in load_split(cfg, "train").examples)
    assert set(counts) == set(train_ids)
    assert all(counts[i] == (3 if i in chosen else 1) for i in train_ids)
    cfg.slice_weight = 1  # weight 1: the split as it is
    assert [e.id for e in load_split(cfg, "train").examples] == train_ids


def test_a_slice_not_of_the_train_split_or_changed_is_a_clear_error(runs, train_ids):
    save_slice("from-val", DATA, "val", ["synthetic-val-0", "synthetic-val-1"])
    with pytest.raises(ConfigError, match=r"slice from-val \(.*from-val.json\): 2 of its 2 examples are not in the "
                                          r"train split.*saved from the val split — save the slice from the train "
                                          r"split"):
        load_split(DataConfig(**{**DATA.to_dict(), "slice": "from-val"}), "train")
    with pytest.raises(ConfigError, match="slice nowhere: no file .*save the slice in the saliency explorer"):
        load_split(DataConfig(**{**DATA.to_dict(), "slice": "nowhere"}), "train")
    save_slice("pinned", DATA, "train", train_ids[:4])
    cfg = DataConfig(**{**DATA.to_dict(), "slice": "pinned", "slice_hash": ids_hash(train_ids[:3])})
    with pytest.raises(ConfigError, match="slice pinned .* has changed since the run recorded it.*slice.json"):
        load_split(cfg, "train")
    with pytest.raises(ConfigError, match="unknown slice mode 'half'; choose one of only, upweight"):
        load_split(DataConfig(**{**DATA.to_dict(), "slice": "pinned", "slice_mode": "half"}), "train")


def test_cli_flags_take_a_name_or_a_file_and_to_cli_rebuilds_them(runs, train_ids, tmp_path, monkeypatch):
    from msd_core.cli import build_parser
    from msd_core.flags import run_config, to_cli
    from msd_core.options import choices

    assert choices("data.slice_mode") == list(SLICE_MODES)
    save_slice("few", DATA, "train", train_ids[:4])
    a = build_parser().parse_args(["distill", "--slice", "few", "--slice-mode", "upweight", "--slice-weight", "4"])
    cfg = run_config(DistillRunConfig, a)
    assert (cfg.data.slice, cfg.data.slice_mode, cfg.data.slice_weight) == (str(runs / "slices" / "few.json"),
                                                                            "upweight", 4)
    monkeypatch.chdir(tmp_path)
    command = to_cli(cfg)
    assert "--slice runs/slices/few.json --slice-mode upweight --slice-weight 4" in command
    assert run_config(DistillRunConfig, build_parser().parse_args(shlex.split(command)[1:])) == cfg
    assert resolve_slice("runs/slices/few.json") == runs / "slices" / "few.json"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["distill", "--slice-mode", "half"])


def test_a_distillation_on_a_slice_records_its_hash_and_keeps_a_copy(runs, train_ids, tmp_path):
    from msd_core.engine.distill import distill
    from msd_core.engine.teacher import train_teacher

    teacher = tmp_path / "teacher"
    train_teacher(TeacherRunConfig(data=DATA, model=ModelConfig("student-small", overrides=dict(TINY)),
                                   train=TrainConfig(epochs=1, batch_size=32), out_dir=str(teacher)), progress=False)
    s = save_slice("first-20", DATA, "train", train_ids[:20])
    cfg = DistillRunConfig(teacher=str(teacher), data=DataConfig(**{**DATA.to_dict(), "slice": "first-20"}),
                           model=ModelConfig("student-small", dict(TINY)), train=TrainConfig(epochs=1, batch_size=8),
                           out_dir=str(tmp_path / "student"))
    steps = []
    distill(cfg, progress=False, log=lambda *_: None, callbacks={"on_step_end": [lambda t, logs: steps.append(1)]})
    assert len(steps) == 3  # 20 examples, batch 8
    run = json.loads((tmp_path / "student" / "run.json").read_text())
    assert run["config"]["data"]["slice"] == str(s.path) and run["config"]["data"]["slice_hash"] == s.ids_hash
    assert run["slice"] == {"name": "first-20", "file": str(s.path), "ids_hash": s.ids_hash, "size": 20,
                            "mode": "only", "weight": 2, "copy": "slice.json"}
    assert load_slice(str(tmp_path / "student" / "slice.json")).ids_hash == s.ids_hash


def test_slice_table_reports_each_run_on_each_slice_of_its_data():
    from msd_core.analysis.compare import slice_table
    from msd_core.analysis.finished import group_name
    from msd_core.data.slices import Slice

    ids = [f"x{i}" for i in range(6)]
    right = {"a": {"full": np.array([1, 1, 0, 0, 1, 1], bool), "only:text": np.array([0, 1, 0, 1, 0, 1], bool)},
             "b": {"full": np.array([0, 0, 0, 1, 1, 1], bool), "only:text": np.array([1, 1, 1, 1, 1, 1], bool)}}
    run = lambda rid, **data: {"id": rid, "name": rid, "config": {"data": {"name": "synthetic", **data},
                                                                     "distill": {"method": "kd"}}}
    runs = [run("a"), run("b", slice="/r/slices/s1.json", slice_mode="upweight", slice_weight=3)]
    slices = [Slice("s1", {"name": "synthetic"}, "val", ["x0", "x2", "x5"], 0.0),
              Slice("other", {"name": "easy-vqa"}, "val", ["x0"], 0.0),
              Slice("s2", {"name": "synthetic"}, "test", ["x1", "gone"], 0.0)]
    table = slice_table(runs, slices, lambda r, split: (ids, right[r["id"]]))
    assert list(table["slice"]) == ["s1", "s1", "s2", "s2"]
    first = table.iloc[0]
    assert first["full accuracy (slice)"] == pytest.approx(2 / 3)
    assert first["full accuracy (whole split)"] == pytest.approx(4 / 6)
    assert table.iloc[1]["only:text accuracy (slice)"] == 1.0
    assert "1 of the slice's examples are not in this run's test split" in table.iloc[2]["note"]
    assert table.iloc[3]["full accuracy (slice)"] == 0.0
    assert group_name(runs[1]["config"]).endswith(" · slice s1 ×3")
