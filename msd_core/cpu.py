"""The CPU cores this process may use (without importing torch: the launch queue's waiting
processes stay light)."""

from __future__ import annotations

import os


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
