"""How a run was launched: one process, or ``torchrun``'s processes on one node or several
(docs/METHOD.md §17.4). Light: no torch, so the run registry and a queued job can use it."""

from __future__ import annotations

import os


def launched_world() -> int:
    """The number of processes ``torchrun`` started (``WORLD_SIZE``), before they join a group."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launch_record() -> dict:
    """What run.json records of a ``torchrun`` launch (nothing for one process): the number of
    processes, of nodes and of processes per node."""
    world = launched_world()
    if world <= 1:
        return {}
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return {"launch": {"world": world, "nodes": max(world // max(per_node, 1), 1), "per_node": per_node}}


def launch_prefix(launch: dict | None) -> str:
    """The start of a command that runs ``msd`` as ``launch`` (run.json's) did: ``msd`` for one
    process, else the ``torchrun`` line for one node or, with rendezvous placeholders, for several."""
    if not launch or launch.get("world", 1) <= 1:
        return "msd"
    per_node, nodes = launch.get("per_node", launch["world"]), launch.get("nodes", 1)
    if nodes <= 1:
        return f"torchrun --standalone --nproc-per-node={per_node} -m msd_core.cli"
    return (f"torchrun --nnodes={nodes} --nproc-per-node={per_node} --node-rank=NODE_RANK --rdzv-backend=c10d "
            f"--rdzv-endpoint=HOST:PORT -m msd_core.cli")


def world_changed(folder, saved: int, now: int, batch_size: int) -> str:
    """The message for a run resumed on another number of processes than it was trained on."""
    return (f"{folder} was trained on {saved} process(es) with --batch-size {batch_size} each (a global batch of "
            f"{saved * batch_size}), and is now resumed on {now}: the global batch and the examples of each step "
            f"would change, so the run could not end with the weights it would have reached — resume it on {saved} "
            f"process(es), or start a new run")
