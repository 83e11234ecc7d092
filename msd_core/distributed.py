"""The processes of a ``torchrun`` job: who they are, how their work is shared, what they exchange
(docs/METHOD.md §17).

Outside ``torchrun`` every function here is the one-process case: rank 0 of 1, no collective.
Under it, the rules of §17 hold: every rank enters the same collectives in the same order, and
work that rank 0 does alone holds none. The collectives the library makes all live here or in
DistributedDataParallel, so §17's table of who calls what can be checked against this module.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import torch

from .errors import ConfigError, MSDError
from .launch import launched_world

T = TypeVar("T")

TIMEOUT_ENV = "MSD_STUDIO_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 600  # seconds a rank waits in one collective before it gives up (§17.5)


def rank_world() -> tuple[int, int]:
    """This process's rank and the number of processes: ``(0, 1)`` outside ``torchrun``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """False on every rank but 0 under ``torchrun``: only rank 0 writes files."""
    return rank_world()[0] == 0


def timeout_seconds() -> int:
    """The process-group timeout: ``$MSD_STUDIO_DIST_TIMEOUT`` seconds, default ``DEFAULT_TIMEOUT``."""
    text = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{TIMEOUT_ENV}={text!r}: give the seconds a rank may wait for the others, a whole "
                          f"number of at least 1 (default {DEFAULT_TIMEOUT})")
    return value


# -- the process group's life --------------------------------------------------------------
@dataclass(frozen=True)
class Peer:
    rank: int
    host: str
    pid: int


_PEERS: list[Peer] = []


def peers() -> list[Peer]:
    """Every rank's host and process id, learnt when the process group was joined (empty outside it)."""
    return list(_PEERS)


def init_process_group() -> None:
    """Under ``torchrun`` (WORLD_SIZE > 1) join the process group: NCCL on GPUs, gloo on CPUs, with
    the timeout of ``timeout_seconds``; then learn every rank's host and process id, which name a
    rank that dies (``lost_rank_message``)."""
    if launched_world() <= 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        seconds = timeout_seconds()
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=seconds))
    learn_peers()


def learn_peers() -> None:
    """Every rank's ``Peer`` (one all-gather; every rank calls it once, after joining)."""
    import torch.distributed as dist

    rank, world = rank_world()
    mine = Peer(rank, socket.gethostname(), os.getpid())
    everyone: list = [None] * world
    dist.all_gather_object(everyone, mine)
    _PEERS[:] = everyone


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
    _PEERS.clear()


def abandon_process_group() -> None:
    """Leave the process group without waiting for the others (after an error, when some may be gone);
    a process that exits inside it can abort in its teardown."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - on the way out after an error already reported
            pass
    _PEERS.clear()


# -- sharing the work -----------------------------------------------------------------------
@dataclass(frozen=True)
class Share:
    """This rank's part of a global batch of ``total`` examples: ``size`` of them (§17.2). A rank
    whose part is empty still computes (on a stand-in example, ``size`` 0) so that it enters the
    same collectives; its loss counts ``fraction`` = 0."""

    size: int
    total: int

    @property
    def fraction(self) -> float:
        return self.size / self.total if self.total else 0.0

    @property
    def scale(self) -> float:
        """What a rank's batch-mean loss is multiplied by so that the mean over ranks DDP takes is the
        mean over the global batch: ``world · size / total``."""
        return rank_world()[1] * self.fraction


def shard(items: Sequence[T], rank: int | None = None, world: int | None = None) -> tuple[list[T], Share]:
    """This rank's examples of a global batch ``items``: every ``world``-th one from its rank on, the
    interleaving ``DistributedSampler`` uses. An empty share is one stand-in (the batch's first
    example) with ``size`` 0. ``rank`` and ``world`` default to this process's."""
    if rank is None or world is None:
        rank, world = rank_world()
    mine = list(items[rank::world])
    share = Share(len(mine), len(items))
    return (mine or list(items[:1])), share


def block(n: int, unit: int) -> range:
    """This rank's contiguous block of ``range(n)``, cut at multiples of ``unit`` (whole batches),
    the blocks of ranks 0, 1, ... in order covering ``range(n)`` once."""
    rank, world = rank_world()
    units = -(-n // unit) if n else 0
    lo, hi = units * rank // world, units * (rank + 1) // world
    return range(min(lo * unit, n), min(hi * unit, n))


# -- what the ranks exchange ----------------------------------------------------------------
def comm_device() -> torch.device:
    """Where tensors must be for a collective: the GPU under NCCL, the CPU under gloo."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_across_ranks(tensors: list[torch.Tensor], *, differentiable: bool = False) -> list[torch.Tensor]:
    """Each tensor summed over the ranks (itself outside ``torchrun``), in one all-reduce;
    ``differentiable`` keeps the autograd graph (the backward pass sums the gradients over the ranks
    in turn)."""
    if rank_world()[1] == 1 or not tensors:
        return list(tensors)
    import torch.distributed as dist

    home = tensors[0].device
    flat = torch.cat([t.reshape(-1) for t in tensors]).to(comm_device())
    if differentiable:
        flat = _SumAcrossRanks.apply(flat)
    else:
        flat = flat.clone()
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat = flat.to(home)
    out, start = [], 0
    for t in tensors:
        out.append(flat[start:start + t.numel()].reshape(t.shape))
        start += t.numel()
    return out


class _SumAcrossRanks(torch.autograd.Function):
    """A sum over the ranks that autograd goes through: the gradient of every rank's copy of the sum
    is summed over the ranks in turn (each rank's input feeds every rank's output)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _SumAcrossRanks.apply(grad.contiguous())


def on_every_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on every rank (one all-reduce under ``torchrun``): a decision every
    rank must take alike, such as whether a cache file is there."""
    if rank_world()[1] == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def gather_blocks(tensor: torch.Tensor) -> torch.Tensor:
    """The ranks' blocks of rows (``block``) joined in rank order: every rank gets the whole, each
    row once (shorter blocks are padded for the all-gather and the padding dropped)."""
    rank, world = rank_world()
    if world == 1:
        return tensor
    import torch.distributed as dist

    dev = comm_device()
    sizes = [torch.zeros(1, dtype=torch.long, device=dev) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([tensor.shape[0]], device=dev))
    longest = max(int(s) for s in sizes)
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=dev)
    padded[:tensor.shape[0]] = tensor.to(dev)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:int(s)] for p, s in zip(parts, sizes)]).to(tensor.device)


def broadcast_from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank (pickled; for configs and checkpoint state)."""
    if rank_world()[1] == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def main_decides(decide: Callable[[], T]) -> T:
    """Run ``decide`` on rank 0 alone and give every rank its result, or make every rank raise the
    ``MSDError`` it raised (so a refused run stops on every rank with the same message, not in a
    collective that rank 0 never reaches)."""
    if rank_world()[1] == 1:
        return decide()
    outcome: tuple = (None, None)
    if is_main_process():
        try:
            outcome = (decide(), None)
        except MSDError as e:
            outcome = (None, e)
    value, error = broadcast_from_main(outcome)
    if error is not None:
        raise error
    return value


def check_shared_folder(folder: Path, what: str) -> None:
    """Under ``torchrun``, that every rank sees the same ``folder`` (a file rank 0 writes there is
    found by all): else every rank stops with a message naming the ranks and hosts that do not."""
    rank, world = rank_world()
    if world == 1:
        return
    import torch.distributed as dist

    folder.mkdir(parents=True, exist_ok=True)
    token = f".shared-check-{os.getpid()}-{socket.gethostname()}"
    if rank == 0:
        (folder / token).write_text(token)
    token = broadcast_from_main(token)
    barrier()
    seen = torch.zeros(world, device=comm_device())
    seen[rank] = float((folder / token).is_file())
    dist.all_reduce(seen)
    barrier()
    if rank == 0:
        (folder / token).unlink(missing_ok=True)
    blind = [r for r in range(world) if not seen[r]]
    if blind:
        hosts = ", ".join(f"rank {r} on {_PEERS[r].host}" if r < len(_PEERS) else f"rank {r}" for r in blind)
        raise ConfigError(f"{folder}: the {what} must be one folder that every rank shares, but {hosts} cannot see "
                          f"what rank 0 wrote there — put it on storage every node mounts at the same path")
