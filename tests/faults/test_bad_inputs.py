"""Every bad input of the reliability issue, through the ``msd`` command: each gives exit code 2
and one message naming the file (and row) and what to do — never a traceback — and no run that
was refused wrote a checkpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from msd_core.cli import main
from msd_core.paths import demo_teacher
from msd_core.runs import Registry
from tests.conftest import write_png

TEACHER = str(demo_teacher("synthetic"))
TINY = ["--max-eval", "16", "--epochs", "1", "--model-option", "hidden=32", "--model-option", "layers=1",
        "--model-option", "heads=2", "--model-option", "intermediate=64"]
SMALL = ["--data-option", "n=64", *TINY]


def folder_data(root: Path, rows: list[str], *, test: bool = True, header: str = "image,text,label",
                bom: bool = False) -> Path:
    """A folder data set: train.csv (and test.csv) of ``rows`` beside three small images."""
    for i in range(3):
        write_png(root / f"{i}.png", color=(80 * i, 20, 20))
    text = header + "\n" + "".join(r + "\n" for r in rows)
    (root / "train.csv").write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    if test:
        (root / "test.csv").write_text(text)
    return root


GOOD_ROWS = ["0.png,a red one,0", "1.png,a green one,1", "2.png,a blue one,0", "1.png,another one,1"]


def nan_checkpoint(folder: Path) -> Path:
    src = Path(TEACHER) / "model.safetensors"
    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
    weights = load_file(str(src))
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.ndim == 2)
    weights[name] = weights[name] * float("nan")
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / "model.safetensors"), metadata=meta)
    return folder


def bomb_png(path: Path) -> Path:
    """A PNG past PIL's decompression-bomb limit (9,500 × 9,500 one-bit pixels; small on disk)."""
    Image.new("1", (9500, 9500)).save(path)
    return path


def case_folder(tmp, rows, **kw):
    return ["--data", "folder", "--data-root", str(folder_data(tmp / "data", rows, **kw))]


CASES = {
    # numeric options: checked before any work, the message states the allowed range
    "epochs 0": (lambda t: ["train-teacher", *SMALL, "--epochs", "0"],
                 r"--epochs \(train.epochs\) must be at least 1, got 0"),
    "batch size 0": (lambda t: ["train-teacher", *SMALL, "--batch-size", "0"],
                     r"--batch-size \(train.batch_size\) must be at least 1, got 0"),
    "lr -1": (lambda t: ["distill", *SMALL, "--lr", "-1"], r"--lr \(train.lr\) must be above 0, got -1.0"),
    "max-train 0": (lambda t: ["train-teacher", *SMALL, "--max-train", "0"],
                    r"--max-train \(data.max_train_examples\) must be at least 1, got 0"),
    "max-train -5": (lambda t: ["train-teacher", *SMALL, "--max-train", "-5"],
                     r"--max-train \(data.max_train_examples\) must be at least 1, got -5"),
    "max-eval 0": (lambda t: ["distill", *SMALL, "--max-eval", "0"],
                   r"--max-eval \(data.max_eval_examples\) must be at least 1, got 0"),
    "modality dropout 1.5": (lambda t: ["train-teacher", *SMALL, "--modality-dropout", "1.5"],
                             r"--modality-dropout \(train.modality_dropout\) must be at least 0 and below 1, got 1.5"),
    "alpha 2": (lambda t: ["distill", *SMALL, "--alpha", "2"], r"--alpha \(distill.alpha\) must be at least 0 and "
                                                              r"at most 1, got 2.0"),
    "n=0": (lambda t: ["train-teacher", *SMALL, "--data-option", "n=0"],
            r"synthetic: option n must be an integer ≥ 1, got 0"),
    "n=-5": (lambda t: ["train-teacher", *SMALL, "--data-option", "n=-5"],
             r"synthetic: option n must be an integer ≥ 1, got -5"),
    "n=abc": (lambda t: ["data", "--data-option", "n=abc"], r"synthetic: option n must be an integer ≥ 1, got 'abc'"),
    # labels: exactly in the label set
    "label 0.7": (lambda t: ["train-teacher", *TINY, *case_folder(t, GOOD_ROWS[:2] + ["2.png,a blue one,0.7"]),
                             "--data-option", 'labels=["0","1"]'],
                  r"train.csv, line 4: label '0.7' is not one of \['0', '1'\]"),
    # every bad row named, not just the first
    "three bad rows": (lambda t: ["data", *case_folder(t, ["0.png,,0", "1.png,ok,1", "9.png,x,1", "2.png,y,"])],
                       r"train.csv: 3 bad rows:\n.*line 2: empty text\n.*line 4: .*9.png: image file not found\n.*line 5: label '' "
                       r"is not one of .*--skip-bad-rows"),
    # images
    "bomb png": (lambda t: ["data", *case_folder(t, GOOD_ROWS + ["big.png,huge,1"])],
                 r"big.png.*90,250,000 pixels.*--max-image-pixels"),
    "image outside the root": (lambda t: ["data", *case_folder(t, GOOD_ROWS + ["../x.png,up,1"])],
                               r"train.csv, line 6: image path '../x.png' leaves the data root.*"
                               r"--allow-images-outside-root"),
    "absolute image path": (lambda t: ["data", *case_folder(t, GOOD_ROWS + ["/etc/hostname,up,1"])],
                            r"train.csv, line 6: image path '/etc/hostname' leaves the data root"),
    # what a run needs is checked before it trains
    "no test file": (lambda t: ["train-teacher", *TINY, *case_folder(t, GOOD_ROWS, test=False)],
                     r"no test file.*add test.csv"),
    "three modalities, two-modality teacher": (
        lambda t: ["distill", *SMALL, "--teacher", TEACHER, "--data-option", "with_vector=true"],
        r"takes the modalities \['image', 'text'\], the data set 'synthetic' has \['image', 'text', 'tabular'\]"),
    "three modalities to evaluate": (
        lambda t: ["evaluate", "--checkpoint", TEACHER, "--data-option", "n=64", "--data-option", "with_vector=true"],
        r"takes the modalities \['image', 'text'\]"),
    "three modalities to saliency": (
        lambda t: ["saliency", "--teacher", TEACHER, "--data-option", "n=64", "--data-option", "with_vector=true",
                   "--out", str(t / "s.csv")],
        r"takes the modalities \['image', 'text'\]"),
    # checkpoints with garbage weights
    "NaN weights to evaluate": (lambda t: ["evaluate", "--checkpoint", str(nan_checkpoint(t / "nan")),
                                           "--data-option", "n=64"],
                                r"the weights hold NaN or infinite values in .* — the file is damaged"),
    "NaN weights to saliency": (lambda t: ["saliency", "--teacher", str(nan_checkpoint(t / "nan")),
                                           "--data-option", "n=64", "--out", str(t / "s.csv")],
                                r"the weights hold NaN or infinite values"),
    "NaN teacher to distill": (lambda t: ["distill", *SMALL, "--teacher", str(nan_checkpoint(t / "nan"))],
                               r"the weights hold NaN or infinite values"),
    # output folders
    "out under a file": (lambda t: ["train-teacher", *SMALL, "--out", str(folder_data(t / "d", GOOD_ROWS) /
                                                                          "train.csv" / "run")],
                         r"train.csv is a file, not a folder — choose another --out"),
    "out not writable": (lambda t: ["distill", *SMALL, "--out", "/proc/msd-studio-run"],
                         r"--out /proc/msd-studio-run: cannot write there"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_a_message_not_a_traceback(name, tmp_path, monkeypatch, capsys, reliability):
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    if name == "bomb png":
        (tmp_path / "data").mkdir()
        bomb_png(tmp_path / "data" / "big.png")
    argv, expected = CASES[name]
    code = main(argv(tmp_path))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert re.search(expected, err, re.S), err
    assert not list(tmp_path.rglob("model.safetensors")) or name.startswith("NaN"), "a refused run wrote a checkpoint"
    runs = tmp_path / "runs"
    left = sorted(str(p.relative_to(runs)) for p in runs.rglob("*") if p.is_file() and p.parent not in (runs / "logs", runs / ".queue")
                  and not p.name.startswith("registry.sqlite")) if runs.is_dir() else []
    assert left == [], f"a refused run left {left} behind"
    assert not (runs / "registry.sqlite").exists() or Registry(runs / "registry.sqlite").runs() == []
    reliability("bad input through msd: a message, no traceback, nothing left behind", 1, 1)


def test_skip_bad_rows_lists_a_bomb_instead_of_stopping(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    bomb_png(tmp_path / "data" / "big.png")
    assert main(["data", *case_folder(tmp_path, GOOD_ROWS + ["big.png,huge,1"]), "--skip-bad-rows",
                 "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "4 examples" in out and re.search(r"skipped .*test.csv:6: .*90,250,000 pixels", out), out


def test_a_bom_csv_loads(tmp_path, capsys):
    assert main(["data", *case_folder(tmp_path, GOOD_ROWS, bom=True), "--split", "train", "--data-option",
                 "val=test.csv"]) == 0
    assert "4 examples" in capsys.readouterr().out


def test_an_unexpected_error_is_a_short_message_and_a_logged_traceback(tmp_path, monkeypatch, capsys):
    import msd_core.cli as cli

    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))

    def broken(a):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(cli, "cmd_presets", broken)
    assert main(["presets"]) == 1
    err = capsys.readouterr().err
    match = re.fullmatch(r"error: unexpected error: RuntimeError: something nobody expected — the full traceback "
                         r"is in (\S+); please report it with the command that reproduces it\n", err)
    assert match, err
    assert "Traceback" in Path(match.group(1)).read_text() and Path(match.group(1)).parent == tmp_path / "runs" / "logs"


def test_os_errors_name_the_file_and_what_to_do(tmp_path):
    import errno

    from msd_core.failures import explain

    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))
    assert explain(full).message == f"{tmp_path / 'x'}: No space left on device — the disk is full: free space, " \
                                    f"then resume the run"
    denied = PermissionError(errno.EACCES, "Permission denied", "/data/train.csv")
    assert explain(denied).message.startswith("/data/train.csv: Permission denied — you may not read or write it")
    assert json.dumps(explain(denied).expected) == "true"


def test_the_dashboards_load_refuses_a_checkpoint_with_nan_weights(tmp_path):
    from msd_core.analysis.catalog import register_checkpoint
    from msd_core.errors import CheckpointError

    with pytest.raises(CheckpointError, match="the weights hold NaN or infinite values"):
        register_checkpoint(nan_checkpoint(tmp_path / "nan"), tmp_path / "runs")
    assert not (tmp_path / "runs" / "teachers.json").exists()
