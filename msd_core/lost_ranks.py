"""A rank that is gone (docs/METHOD.md §17.5): a collective that failed because another rank died,
was killed or hangs becomes ``RankLost``, whose message names the dead rank where that can be told,
and the run is recorded as interrupted, resumable."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from typing import Callable

from .distributed import TIMEOUT_ENV, Peer, peers, rank_world, timeout_seconds
from .errors import TrainingInterrupted
from .processes import pid_alive


class RankLost(TrainingInterrupted):
    """Another rank stopped answering (it died, was killed or hangs): this rank stops too, its last
    checkpoint kept for ``--resume`` (§17.5)."""


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc``, raised under ``torchrun``, is a collective that failed because a peer is gone
    or did not answer in time."""
    import torch.distributed as dist

    if rank_world()[1] == 1:
        return False
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("gloo", "NCCL", "Connection closed by peer", "Connection reset by peer"))


def dead_peers() -> list[Peer]:
    """The other ranks on this host whose process has exited."""
    me = socket.gethostname()
    return [p for p in peers() if p.host == me and p.pid != os.getpid() and not pid_alive(p.pid)]


def lost_rank_message(exc: BaseException | None, where: str) -> str:
    """What this rank says when the others are gone: which ranks died where that can be told (a peer
    on this host whose process has exited), else on which hosts the silent ranks are."""
    me = socket.gethostname()
    dead = dead_peers()
    remote = [p for p in peers() if p.host != me]
    if dead:
        who = ", ".join(f"rank {p.rank} (pid {p.pid} on {p.host})" for p in dead)
        cause = f"{who} {'has' if len(dead) == 1 else 'have'} died"
    elif remote:
        cause = (f"a rank on another host stopped answering (ranks {', '.join(str(p.rank) for p in remote)} on "
                 f"{', '.join(sorted({p.host for p in remote}))}; the torchrun output of that node names it)")
    else:
        cause = (f"no rank has died, but one did not answer within {timeout_seconds()} s (raise "
                 f"${TIMEOUT_ENV} if a step or a validation really takes that long)")
    detail = str(exc).strip().splitlines()[0].split(". ")[0][:200] if exc is not None and str(exc).strip() else ""
    return f"rank {rank_world()[0]} stopped {where}: {cause}" + (f" ({detail})" if detail else "")


@contextmanager
def stop_when_a_rank_is_lost(where: str | Callable[[], str]):
    """Turn a failed collective, or torchrun's stop after a rank of this node died, into ``RankLost``
    with ``lost_rank_message`` (``where``: a phrase, or a function giving it when it happens): the run
    is then recorded as interrupted, with its resume command."""
    def place() -> str:
        return where() if callable(where) else where

    try:
        yield
    except RankLost:
        raise
    except (KeyboardInterrupt, TrainingInterrupted):
        if rank_world()[1] > 1 and dead_peers():
            hold_off_termination()
            raise RankLost(lost_rank_message(None, place()) + RESUME_HINT) from None
        raise
    except Exception as e:  # noqa: BLE001 - re-raised unless it is a lost rank
        if is_collective_failure(e):
            hold_off_termination()
            raise RankLost(lost_rank_message(e, place()) + RESUME_HINT) from e
        raise


def hold_off_termination() -> None:
    """Ignore SIGTERM from now on (in the main thread): torchrun sends it to the ranks left when one
    dies, and this rank, already on its way out, must not be cut off while it records how it ended
    (torchrun's SIGKILL follows 30 s later if it has not exited)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


RESUME_HINT = (" — the last checkpoint is kept: continue with --resume, launched on as many processes as "
               "before")
