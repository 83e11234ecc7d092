"""Fixtures of the fault tests, and the reliability table they print at the end of a run
(``./run_tests tests/faults`` reproduces it): each test records the faults it injected and how
many the product survived with nothing lost, once its assertions have passed."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.app.conftest import empty_home  # noqa: F401

TABLE: dict[str, list[int]] = defaultdict(lambda: [0, 0])


@pytest.fixture
def reliability():
    """``reliability(fault, injected, survived)`` adds a row (or to a row) of the table."""
    def record(fault: str, injected: int, survived: int) -> None:
        TABLE[fault][0] += injected
        TABLE[fault][1] += survived
    return record


def pytest_terminal_summary(terminalreporter):
    if not TABLE:
        return
    width = max(map(len, TABLE))
    terminalreporter.section("reliability")
    terminalreporter.write_line(f"{'fault':{width}s}  injected  survived")
    for fault, (injected, survived) in TABLE.items():
        terminalreporter.write_line(f"{fault:{width}s}  {injected:8d}  {survived:8d}")
    total = [sum(v[i] for v in TABLE.values()) for i in (0, 1)]
    terminalreporter.write_line(f"{'total':{width}s}  {total[0]:8d}  {total[1]:8d}")
