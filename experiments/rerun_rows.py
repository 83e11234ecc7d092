"""Rerun recorded rows of the results grid and compare their test metrics with the record.

    python -m experiments.rerun_rows KEY [KEY ...] [--out FILE]

A KEY is a row's ``key`` in ``experiments/results/quality.jsonl`` (``regime|student|method|
weighting|lam|seed``, e.g. ``synthetic|student-two-tower|kd|None|None|0``). Each row is
retrained with ``experiments.quality.run_one`` (a fresh teacher cache) and printed with the
recorded and the rerun full-view accuracy and the test metrics that differ; ``--out`` writes the
rerun rows as JSON, so two reruns (before and after a change of the code) can be compared bit
for bit with ``--against FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def differences(a: dict, b: dict) -> list[str]:
    """``view/metric`` names whose values differ between two rows' test metrics."""
    return [f"{v}/{k}" for v in sorted(set(a) | set(b)) for k in sorted(set(a.get(v, {})) | set(b.get(v, {})))
            if a.get(v, {}).get(k) != b.get(v, {}).get(k)]


def main() -> int:
    from experiments.quality import current_rows, run_one

    p = argparse.ArgumentParser(prog="python -m experiments.rerun_rows")
    p.add_argument("keys", nargs="+")
    p.add_argument("--out", help="write the rerun rows here (JSON)")
    p.add_argument("--against", help="also compare with the rows of an earlier --out file")
    a = p.parse_args()
    recorded = {r["key"]: r for r in current_rows()}
    earlier = {r["key"]: r for r in json.loads(Path(a.against).read_text())} if a.against else {}
    missing = [k for k in a.keys if k not in recorded]
    if missing:
        p.error(f"no current row with key(s) {missing}")
    os.environ["MSD_STUDIO_CACHE"] = tempfile.mkdtemp(prefix="rerun-cache-")
    rows = []
    print("| row | recorded full | rerun full | test metrics that differ from the record |"
          + (" identical to --against |" if earlier else ""), flush=True)
    print("|---|---|---|---|" + ("---|" if earlier else ""), flush=True)
    for key in a.keys:
        regime, student, method, weighting, lam, seed = key.split("|")
        with tempfile.TemporaryDirectory() as tmp:
            row = run_one(regime, student, method, None if weighting == "None" else weighting,
                          None if lam == "None" else float(lam), int(seed), recorded[key]["epochs"], Path(tmp))
        rows.append(row)
        rec = recorded[key]["test"]
        line = (f"| `{key.replace('|', ' / ')}` | {rec['full']['accuracy']:.6f} | {row['test']['full']['accuracy']:.6f} | "
                f"{', '.join(differences(rec, row['test'])) or 'none'} |")
        if earlier:
            line += f" {'yes' if key in earlier and earlier[key]['test'] == row['test'] else '**no**'} |"
        print(line, flush=True)
        if a.out:
            Path(a.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
