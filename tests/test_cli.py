import json

import pytest

from msd_core.cli import main


def test_data_command_lists_and_shows(capsys):
    assert main(["data", "--list"]) == 0
    assert "hateful-memes" in capsys.readouterr().out
    assert main(["data", "--data", "synthetic", "--data-option", "n=40", "--show", "2"]) == 0
    out = capsys.readouterr().out
    assert "synthetic / train: 40 examples" in out and "synthetic-train-1" in out


def test_bad_input_is_a_message_and_exit_code_2(capsys, tmp_path):
    assert main(["data", "--data", "hateful-memes", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train.jsonl" in err and "Traceback" not in err
    assert main(["data", "--data", "synthetic", "--data-option", "n"]) == 2
    assert "key=value" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # choices come from the preset registry
        main(["train-teacher", "--data", "synthetic", "--model", "huge", "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2
    assert "--model: invalid choice: 'huge' (choose from 'minilm-teacher'" in capsys.readouterr().err
    assert main(["train-teacher", "--data", "synthetic", "--model-option", "image_encoder", "--out",
                 str(tmp_path / "y")]) == 2
    assert "--model-option 'image_encoder': write it as key=value" in capsys.readouterr().err


def test_train_teacher_then_evaluate_from_the_command_line(capsys, tmp_path):
    out = tmp_path / "t"
    args = ["train-teacher", "--data", "synthetic", "--data-option", "n=64", "--max-eval", "16",
            "--model", "student-two-tower", "--model-option", "image_encoder=maxpool", "--epochs", "1", "--batch-size", "16", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "test  only:text" in printed and "parameters" in printed
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["config"]["model"] == {"preset": "student-two-tower",
                                                                      "overrides": {"image_encoder": "maxpool"}}
    from msd_core.engine.checkpoint import read_metadata

    assert read_metadata(out / "model.safetensors")["spec"]["image_encoder"] == "maxpool"
    from msd_core.analysis.catalog import describe_checkpoint, model_label

    assert model_label(describe_checkpoint(out / "model.safetensors")) == "student-two-tower (image_encoder=maxpool)"
    from msd_core.config import TeacherRunConfig

    again = TeacherRunConfig.load(out / "run.json")  # --config accepts a run's run.json to reproduce it
    assert again.model.preset == "student-two-tower" and again.to_dict() == run["config"]
    assert main(["evaluate", "--checkpoint", str(out), "--data", "synthetic", "--data-option", "n=64",
                 "--max-eval", "16"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "metrics.json").read_text())["test"]
    assert metrics["full"]["accuracy"] == saved["full"]["accuracy"]
    assert main(args) == 2  # the folder is taken: resume or choose another
    assert "--resume" in capsys.readouterr().err


def test_a_job_that_stops_before_training_records_why(tmp_path, capsys):
    """``msd job`` (what the launcher starts): a run refused before its recorder takes over is
    still marked failed with the reason, not left queued."""
    from msd_core.config import DistillRunConfig
    from msd_core.runs import Registry

    out = tmp_path / "taken"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"")
    cfg = DistillRunConfig(out_dir=str(out))
    reg = Registry(tmp_path / "r.sqlite")
    run_id = reg.create(cfg.to_dict(), kind="student", out_dir=str(out))
    assert main(["job", "--db", str(tmp_path / "r.sqlite"), "--run", run_id]) == 1
    row = reg.run(run_id)
    assert row["status"] == "failed" and row["error"].startswith("ConfigError: ") and "already holds" in row["error"]
    assert "error: " in capsys.readouterr().err


def test_the_dashboard_command_starts_without_importing_torch():
    """The dashboard process imports torch itself; `msd dashboard` must not make its start wait for
    another import of it (the full parser imports the registries for their choices)."""
    import subprocess
    import sys

    code = ("import sys\nfrom msd_core.cli import main\ntry:\n    main(['dashboard', '--help'])\n"
            "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 False"
