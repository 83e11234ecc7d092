"""The device is chosen once per process: CUDA when present, else the CPU."""

from __future__ import annotations

import contextlib
import os

import torch

from .cpu import cores
from .errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` if available, else ``cpu``; an explicit ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is visible; use --device auto or cpu")
    return dev


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast when asked for (a no-op context otherwise)."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def leaves_a_core_free(device: torch.device) -> bool:
    """Whether work on ``device`` leaves a CPU core for a helper thread: on an accelerator the CPU
    mostly waits for it; on the CPU only when torch's threads, in every process ``torchrun``
    started on this machine, are fewer than the cores."""
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return device.type != "cpu" or torch.get_num_threads() * local_ranks < cores()
