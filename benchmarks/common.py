"""Timing helpers and result rows shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass


@dataclass
class Row:
    benchmark: str
    measure: str
    value: float
    unit: str = ""
    target: str = ""
    ok: bool | None = None


def timed(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def print_table(rows: list[Row]) -> str:
    lines = ["| benchmark | measure | value | target | met |", "|---|---|---|---|---|"]
    for r in rows:
        met = "" if r.ok is None else ("yes" if r.ok else "**no**")
        lines.append(f"| {r.benchmark} | {r.measure} | {r.value:.4g} {r.unit} | {r.target} | {met} |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text
