"""The device is chosen once per process: CUDA when present, else the CPU."""

from __future__ import annotations

import contextlib

import torch

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


def rank_world() -> tuple[int, int]:
    """This process's rank and the number of processes: ``(0, 1)`` outside ``torchrun``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """False on every rank but 0 under ``torchrun``: only rank 0 writes files."""
    return rank_world()[0] == 0


def barrier() -> None:
    """Wait for every rank under ``torchrun`` (nothing to wait for outside it)."""
    import torch.distributed as dist

    if rank_world()[1] > 1:
        dist.barrier()


def leave_process_group() -> None:
    """After finished work under ``torchrun``: wait for every rank, then leave the process group, so
    that no rank tears down its connections while another still uses them."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        barrier()
        dist.destroy_process_group()
