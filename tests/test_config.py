"""Run configs: lossless JSON round trips and one checked way back from a dict."""

import json

import pytest

from msd_core.config import (DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TeacherRunConfig, TrainConfig,
                             config_from_dict)
from msd_core.errors import ConfigError
from msd_core.paths import demo_teacher


def full_distill_config() -> DistillRunConfig:
    return DistillRunConfig(teacher="/t", data=DataConfig("folder", root="/d", options={"text_column": "caption", "n": 3},
                                                          max_train_examples=10, skip_bad_rows=True),
                            model=ModelConfig("student-two-tower", {"hidden": 64}),
                            train=TrainConfig(epochs=7, lr=0.01, seed=3, bf16=True),
                            distill=DistillConfig(method="kd", weighting="learned", lam=2.5), out_dir="/o")


@pytest.mark.parametrize("cls", [DataConfig, ModelConfig, TrainConfig, DistillConfig, TeacherRunConfig,
                                 DistillRunConfig])
def test_every_config_round_trips_through_json(cls):
    cfg = full_distill_config() if cls is DistillRunConfig else cls()
    again = cls.from_json(cfg.to_json())
    assert again == cfg and type(again) is cls


def test_nested_sections_come_back_as_their_classes():
    cfg = DistillRunConfig.from_dict(json.loads(full_distill_config().to_json()))
    assert isinstance(cfg.data, DataConfig) and isinstance(cfg.distill, DistillConfig)
    assert cfg.data.options == {"text_column": "caption", "n": 3} and cfg.distill.lam == 2.5


def test_unknown_keys_are_named_at_any_depth():
    d = full_distill_config().to_dict()
    d["distill"]["lamda"] = 1
    with pytest.raises(ConfigError, match=r"DistillConfig: unknown key\(s\) \['lamda'\]; known: \['alpha'"):
        DistillRunConfig.from_dict(d)
    with pytest.raises(ConfigError, match=r"DataConfig: unknown key\(s\) \['nmae'\]"):
        DataConfig.from_dict({"nmae": "synthetic"})
    with pytest.raises(ConfigError, match="TrainConfig: expected an object, got list"):
        config_from_dict(TeacherRunConfig, {"train": [1, 2]})


def test_a_run_json_loads_as_the_config_it_records(tmp_path):
    cfg = full_distill_config()
    (tmp_path / "run.json").write_text(json.dumps({"config": cfg.to_dict(), "versions": {}, "status": "finished"}))
    assert DistillRunConfig.load(tmp_path / "run.json") == cfg
    with pytest.raises(ConfigError, match="config file not found"):
        DistillRunConfig.load(tmp_path / "missing.json")


def test_defaults_name_the_project_folders_not_the_working_directory():
    cfg = DistillRunConfig()
    assert cfg.teacher == str(demo_teacher("synthetic")) and cfg.out_dir == ""
    assert cfg.train.modality_dropout == 0.0 and TeacherRunConfig().train.modality_dropout == 0.15
