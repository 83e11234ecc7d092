"""One source for defaults and choices: the CLI and the pages derive theirs from the config
dataclasses and the registries, and ``to_cli`` renders the command that rebuilds a config."""

import shlex

import pytest

from msd_core.cli import build_parser
from msd_core.flags import config_flags, run_config, to_cli
from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.method.weighting import WEIGHTINGS, Weighting
from msd_core.options import choices, default, default_index, help_text


def parse(command: str):
    words = shlex.split(command)
    assert words[0] == "msd"
    return build_parser().parse_args(words[1:])


def test_no_flags_give_exactly_the_config_defaults():
    assert run_config(DistillRunConfig, build_parser().parse_args(["distill"])) == DistillRunConfig()
    assert run_config(TeacherRunConfig, build_parser().parse_args(["train-teacher"])) == TeacherRunConfig()


def test_every_field_has_a_flag_with_help():
    flags = config_flags(DistillRunConfig)
    assert len({f.name for f in flags}) == len(flags)
    assert {f.path for f in flags} >= {"teacher", "out_dir", "data.name", "data.max_train_examples", "train.lr",
                                       "distill.lam", "distill.meta_every", "model.overrides"}
    assert all(f.help for f in flags)


def test_help_shows_the_config_default_and_the_registry_choices(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["distill", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{" + ",".join(WEIGHTINGS.names()) + "}" in text
    assert "(default: instance-soft)" in text and "(default: 0.001)" in text  # the student's lr, not the teacher's


@pytest.mark.parametrize("cfg", [
    DistillRunConfig(),
    DistillRunConfig(teacher="/somewhere/teacher", data=DataConfig("folder", root="/data/x y",
                                                                   options={"n": 5, "text_column": "caption",
                                                                            "flag": True, "code": "123"},
                                                                   max_eval_examples=9, skip_bad_rows=True),
                     model=ModelConfig("student-two-tower", {"hidden": 48, "image_encoder": "maxpool"}),
                     train=TrainConfig(epochs=4, lr=0.002, seed=7, modality_dropout=0.0, bf16=True, max_steps=11),
                     distill=DistillConfig(method="msd", weighting="learned-global", lam=0.5, tau=2.0,
                                           removal="swap", meta_every=3), out_dir="/runs/a"),
])
def test_to_cli_renders_a_command_that_rebuilds_the_config(cfg):
    command = to_cli(cfg)
    assert command.startswith("msd distill")
    assert run_config(DistillRunConfig, parse(command)) == cfg


def test_to_cli_of_a_teacher_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TeacherRunConfig(data=DataConfig("hateful-memes", root=str(tmp_path / "hm")),
                           model=ModelConfig("hf-bert-teacher", {"pretrained": str(tmp_path / "bert")}),
                           train=TrainConfig(epochs=5), out_dir=str(tmp_path / "out"))
    command = to_cli(cfg)
    assert command == ("msd train-teacher --data hateful-memes --data-root hm --model hf-bert-teacher "
                       "--pretrained bert --epochs 5 --out out")
    assert run_config(TeacherRunConfig, parse(command)) == cfg  # resolved against the working directory


def test_a_newly_registered_weighting_reaches_the_cli_and_the_pages():
    WEIGHTINGS.register("test-only")(Weighting(lambda sal, pop, lam, tau: sal, "for this test"))
    try:
        assert choices("distill.weighting")[-1] == "test-only"
        args = build_parser().parse_args(["distill", "--weighting", "test-only"])
        assert run_config(DistillRunConfig, args).distill.weighting == "test-only"
    finally:
        WEIGHTINGS._entries.pop("test-only")


def test_page_defaults_are_the_config_defaults():
    assert default(DistillRunConfig, "distill.weighting") == DistillConfig().weighting
    assert choices("distill.weighting")[default_index(DistillRunConfig, "distill.weighting")] == "instance-soft"
    assert default(TeacherRunConfig, "train.lr") == 5e-4 and default(DistillRunConfig, "train.lr") == 1e-3
    assert "λ·|M|" in help_text(DistillRunConfig, "distill.lam")
    assert choices("train.lr") is None


def test_flags_override_a_config_file(tmp_path):
    saved = DistillRunConfig(distill=DistillConfig(method="kd", lam=3.0), train=TrainConfig(seed=4, lr=0.01))
    (tmp_path / "c.json").write_text(saved.to_json())
    args = build_parser().parse_args(["distill", "--config", str(tmp_path / "c.json"), "--seed", "9"])
    cfg = run_config(DistillRunConfig, args)
    assert (cfg.distill.method, cfg.distill.lam, cfg.train.seed, cfg.train.lr) == ("kd", 3.0, 9, 0.01)
