"""``python -m benchmarks [--device cpu|cuda] [--only NAME ...] [--out FILE]``: every benchmark,
measured side by side in one process, printed as one table (a markdown file too with --out)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.chdir(ROOT)
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from msd_core.device import pick_device  # noqa: E402

from . import (cache_storage, dashboard, distributed, first_visit, hf_models, memory,  # noqa: E402
               msd_epoch_memory, saliency_speed, scaling, step_cost, teacher_cache, vqa_scale)
from .common import print_table  # noqa: E402

ALL = {"step_cost": step_cost, "teacher_cache": teacher_cache, "saliency_speed": saliency_speed,
       "scaling": scaling, "memory": memory, "dashboard": dashboard, "first_visit": first_visit,
       "vqa_scale": vqa_scale, "hf_models": hf_models, "distributed": distributed, "cache_storage": cache_storage,
       "msd_epoch_memory": msd_epoch_memory}


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("--device", default="auto")
    p.add_argument("--only", nargs="*", choices=list(ALL))
    p.add_argument("--out", help="also write the table (markdown) here")
    a = p.parse_args()
    device = pick_device(a.device)
    rows = []
    t0 = time.time()
    for name in a.only or ALL:
        t = time.time()
        print(f"-- {name} ...", flush=True)
        rows += ALL[name].run(device)
        print(f"   {time.time() - t:.0f} s", flush=True)
    table = print_table(rows)
    print(f"\ntotal {time.time() - t0:.0f} s on {device}")
    if a.out:
        Path(a.out).write_text(table + f"\n\n{time.time() - t0:.0f} s on {device}\n")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
