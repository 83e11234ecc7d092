"""Which test examples a finished run got right, stored compactly in a results row, so that
McNemar's test on pooled predictions (docs/METHOD.md §13.3) can be run from the JSONL alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def bits(correct) -> str:
    """A bool vector as ``N:hex``, 4 examples a hex digit, padded with False at the end."""
    padded = np.concatenate([np.asarray(correct, dtype=bool), np.zeros(-len(correct) % 8, dtype=bool)])
    return f"{len(correct)}:" + np.packbits(padded).tobytes().hex()


def unbits(text: str) -> np.ndarray:
    """The bool vector ``bits`` wrote."""
    n, _, hexa = text.partition(":")
    return np.unpackbits(np.frombuffer(bytes.fromhex(hexa), dtype=np.uint8))[: int(n)].astype(bool)


def pooled_mcnemar(first: list[str], second: list[str]) -> dict:
    """McNemar's test (§13.3) on the outcomes of paired runs pooled: ``first[i]`` and ``second[i]``
    are the ``bits`` of the two runs of seed pair ``i``."""
    from msd_core.analysis.significance import mcnemar

    return mcnemar(np.concatenate([unbits(t) for t in first]), np.concatenate([unbits(t) for t in second]))


def full_input_correct(out_dir: Path, data) -> str:
    """``bits`` of whether the run in ``out_dir`` is right on each test example of ``data``, full input."""
    from msd_core.analysis.finished import views_correct
    from msd_core.data.registry import load_split

    run = {"id": out_dir.name, "out_dir": str(out_dir),
           "config": json.loads((out_dir / "run.json").read_text())["config"]}
    return bits(views_correct(run, load_split(data, "test"))["full"])
