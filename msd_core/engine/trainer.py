"""One trainer for teachers and students.

- Data order depends only on ``(seed, epoch)``; dropout and modality dropout only on
  ``(seed, global step)``. A run resumed from any checkpoint therefore ends with the same
  weights as an uninterrupted one, and runs of one seed see the same batches whatever
  their loss (so KD and MSD runs pair up).
- Modality dropout (docs/METHOD.md §8): each modality of each example is dropped with
  probability ``p``, never all at once.
- The loss is an objective (``msd_core.method.objectives``) called as
  ``objective(model, batch, step=..., lr=..., total_steps=...)``; it never sees the trainer.
- The trainer runs the loop, saves checkpoints and fires callbacks (``on_step_end``,
  ``on_eval_end``, ``on_epoch_end``, ``on_checkpoint``): the seam for progress bars, the run
  recorder (``msd_core.runs.recorder``, the one owner of run.json and the registry row) and
  live dashboards. It knows none of them and writes no status.
- Batches are read and collated in the training process, or, with ``TrainConfig.workers``, by
  DataLoader worker processes ahead of the step that needs them: the same batches either way
  (collating draws no random numbers), so ``workers`` changes the speed, never the weights.
- Rank-aware (docs/METHOD.md §17): under ``torchrun`` the epoch is cut into global batches of
  ``batch_size × world`` examples, exactly the batches one process with that batch size takes, and
  rank ``r`` computes every ``world``-th example of each. Every rank takes ``ceil(N / global
  batch)`` steps per epoch whatever N is; a rank whose share of the last batch is empty computes on
  a stand-in with weight 0. Each rank's batch-mean loss is weighted by its share, so the gradient
  DDP averages is the global batch's mean and the logged terms are the global batch's. Modality
  dropout is drawn for the global batch, so a run on W ranks is the one-process run with the global
  batch (the model's own dropout aside). Validation is computed by every rank on a block of the
  split and joined (``predict_views(shard=True)``); only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from ..config import TrainConfig
from ..data.batch import Batch
from ..data.collate import Collator
from ..data.example import MultimodalDataset
from ..device import autocast, leaves_a_core_free, pick_device
from ..distributed import Share, main_decides, rank_world, shard, sum_across_ranks
from ..launch import world_changed
from ..lost_ranks import stop_when_a_rank_is_lost
from ..errors import ConfigError, StopRun, TrainingError, TrainingInterrupted
from ..method.objectives import Objective, Supervised
from .checkpoint import (MODEL_FILE, STATE_FILE, check_finite, load_model, load_state, model_step, save_model,
                         save_state)
from .evaluate import evaluate

__all__ = ["Trainer", "StopRun", "TrainingError", "TrainingInterrupted", "derive_seed", "modality_dropout"]


def derive_seed(seed: int, *parts: int) -> int:
    x = seed
    for p in parts:
        x = (x * 1_000_003 + p) % (2**63 - 1)
    return x


def modality_dropout(batch: Batch, p: float, generator: torch.Generator, rows: torch.Tensor | None = None,
                     total: int | None = None) -> Batch:
    """Drop each modality of each example with probability ``p``; if every modality of an
    example would be dropped, one of them, chosen at random, is kept. ``rows``: the batch's rows
    within a global batch of ``total`` examples whose draws are made (a rank's share, §17.2)."""
    mods = batch.modalities
    if p <= 0 or len(mods) < 2:
        return batch
    n = len(batch) if total is None else total
    drop = torch.rand(n, len(mods), generator=generator) < p
    all_dropped = drop.all(1)
    if all_dropped.any():
        rescue = torch.randint(len(mods), (n,), generator=generator)
        drop[all_dropped, rescue[all_dropped]] = False
    if rows is not None:
        drop = drop[rows]
    present = {m: batch.present[m] & ~drop[:, i].to(batch.present[m].device) for i, m in enumerate(mods)}
    return replace(batch, present=present)


def _as_collated(batch):
    return batch  # EpochBatches collates each batch itself


class FailedBatch:
    """An error raised while a worker collated a batch, carried to the training process whole (a
    DataLoader would wrap it in the worker's traceback, where the user needs the message)."""

    def __init__(self, error: Exception):
        self.error = error

    def reraise(self):
        raise self.error


class EpochBatches(torch.utils.data.Dataset):
    """This rank's part of global batches ``first``..``steps`` − 1 of an epoch in ``order`` (the
    epoch's permutation), each collated when read, with its ``Share`` of the global batch."""

    def __init__(self, dataset: MultimodalDataset, order, global_batch: int, first: int, steps: int, collator,
                 rank: int = 0, world: int = 1):
        self.dataset, self.order, self.global_batch = dataset, order, global_batch
        self.first, self.steps, self.collator = first, steps, collator
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return max(self.steps - self.first, 0)

    def mine(self, k: int) -> tuple[list[int], Share]:
        """The dataset indices of this rank's examples in batch ``k``, and its share (§17.2)."""
        i = (self.first + k) * self.global_batch
        return shard(self.order[i:i + self.global_batch], self.rank, self.world)

    def ids(self, k: int) -> list[str]:
        """The ids of this rank's examples in batch ``k``, without reading them."""
        return [self.dataset[j].id for j in self.mine(k)[0]]

    def __getitem__(self, k: int) -> tuple[Batch | FailedBatch, Share]:
        mine, share = self.mine(k)
        try:
            return self.collator([self.dataset[j] for j in mine]), share
        except Exception as e:  # noqa: BLE001 - re-raised as it is in the training process
            if torch.utils.data.get_worker_info() is None:
                raise
            return FailedBatch(e), share


class Trainer:
    def __init__(self, model, train_set: MultimodalDataset, val_set: MultimodalDataset | None,
                 cfg: TrainConfig, out_dir: str | Path, *, collator: Collator, labels: list[str],
                 objective: Objective | None = None, data_name: str | None = None, progress: bool = True,
                 evaluator: Callable[[torch.nn.Module], dict] | None = None):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.device = pick_device(cfg.device)
        self.train_set, self.val_set = train_set, val_set
        self.collator = collator
        self.labels = labels
        self.objective = objective or Supervised()
        self.data_name = data_name  # recorded in the checkpoint header
        self.show_progress = progress
        self.evaluator = evaluator
        self.callbacks: dict[str, list[Callable]] = defaultdict(list)
        self.rank, self.world = rank_world()
        self.model = model.to(self.device)
        self.module = self.model  # the unwrapped model (checkpoints, evaluation)
        if cfg.compile:
            self.model = torch.compile(self.model)
        if self.world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.global_batch = cfg.batch_size * self.world  # what one step takes over all ranks (§17.2)
        self.steps_per_epoch = math.ceil(len(train_set) / self.global_batch)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        decay = [p for n, p in self.module.named_parameters() if p.ndim >= 2 and "embedding" not in n]
        no_decay = [p for n, p in self.module.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        warmup = max(1, int(cfg.warmup_fraction * self.total_steps))
        total = max(self.total_steps, warmup + 1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup))))
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.history: list[dict] = []

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def add_callback(self, event: str, fn: Callable) -> None:
        self.callbacks[event].append(fn)

    def add_callbacks(self, callbacks: dict[str, list[Callable]] | None) -> None:
        for event, fns in (callbacks or {}).items():
            for fn in fns:
                self.add_callback(event, fn)

    def _fire(self, event: str, payload: dict) -> None:
        for fn in self.callbacks[event]:
            fn(self, payload)

    def epoch_permutation(self, epoch: int) -> list[int]:
        """The epoch's order of the training examples: a function of ``(seed, epoch)`` alone."""
        g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, epoch))
        return torch.randperm(len(self.train_set), generator=g).tolist()

    def epoch_order(self, epoch: int) -> list[int]:
        """The examples this rank computes in ``epoch``, in order (all of them on one process)."""
        return self.epoch_permutation(epoch)[self.rank::self.world]

    # -- checkpoints -----------------------------------------------------------------
    def save(self) -> None:
        """Checkpoint: the trainer state first (it holds the weights too, so resuming never pairs
        one step's weights with another's optimizer), then the model file the run publishes. A
        kill or a full disk between the two leaves the state one checkpoint ahead of the model
        file; ``resume`` reads the state and brings the model file up to it."""
        if not self.is_main:
            return
        objective_state = getattr(self.objective, "state_dict", None)
        save_state(self.out_dir / STATE_FILE, {
            "model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step, "history": json.dumps(self.history), "world": self.world,
            **({"objective": objective_state()} if objective_state else {})})
        save_model(self.out_dir / MODEL_FILE, self.module, self.labels,
                   extra={"data": self.data_name, "global_step": self.global_step})
        self._fire("on_checkpoint", {"step": self.global_step, "total_steps": self.total_steps})

    def read_checkpoint(self) -> dict | None:
        """The trainer state saved in ``out_dir`` (its weights checked), or None when there is none."""
        if not (self.out_dir / STATE_FILE).is_file():
            return None
        state = load_state(self.out_dir / STATE_FILE)
        if "model" in state:
            check_finite(state["model"], self.out_dir / STATE_FILE)
        else:  # a checkpoint written before the state held the weights
            state["model"] = load_model(self.out_dir / MODEL_FILE, "cpu")[0].state_dict()
        saved = int(state.get("world", 1))
        if saved != self.world:
            raise ConfigError(world_changed(self.out_dir, saved, self.world, self.cfg.batch_size))
        return state

    def resume(self) -> bool:
        """Continue from the checkpoint in ``out_dir`` (weights, optimizer, schedule, position and
        the objective's own state); False, starting from step 0, when the run saved none yet. Under
        ``torchrun`` rank 0 reads it and every rank receives it, so only rank 0 needs the folder."""
        state = main_decides(self.read_checkpoint)
        if state is None:
            return False
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.history = json.loads(state["history"])
        if "objective" in state:
            self.objective.load_state_dict(state["objective"])
        if self.is_main and model_step(self.out_dir / MODEL_FILE) != self.global_step:
            self.save()  # the model file lagged the state: publish the weights the run continues from
        return True

    # -- the loop ---------------------------------------------------------------------
    def fit(self) -> list[dict]:
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = None
        if self.show_progress and self.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.global_step, desc="train", unit="step",
                       dynamic_ncols=True, mininterval=1.0)
        try:
            with stop_when_a_rank_is_lost(lambda: f"at step {self.global_step} of {self.total_steps}"):
                self._loop(bar)
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"interrupted at step {self.global_step}; the checkpoint in {self.out_dir} "
                                      f"holds the last saved step — continue with --resume") from None
        except StopRun:
            self.save()  # the last finished step, so a cancelled run can be resumed
            raise
        finally:
            if bar is not None:
                bar.close()
        return self.history

    def _loop(self, bar) -> None:
        cfg = self.cfg
        t_last = time.time()
        while self.epoch < cfg.epochs and self.global_step < self.total_steps:
            plan = EpochBatches(self.train_set, self.epoch_permutation(self.epoch), self.global_batch,
                                self.step_in_epoch, self.steps_per_epoch, self.collator, self.rank, self.world)
            batches = self.epoch_batches(plan)
            read_ahead = getattr(self.objective, "prefetch", None) if leaves_a_core_free(self.device) else None
            self.model.train()
            k = 0
            while self.step_in_epoch < self.steps_per_epoch and self.global_step < self.total_steps:
                batch = next(batches)
                k += 1
                if read_ahead is not None and k < len(plan):
                    read_ahead(plan.ids(k))  # the next batch's teacher rows, read while this step runs
                logs = self.train_step(*batch)
                now = time.time()
                logs.update(step=self.global_step, epoch=self.epoch, lr=self.scheduler.get_last_lr()[0],
                            step_time=now - t_last)
                t_last = now
                self._fire("on_step_end", logs)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{logs['loss']:.4f}", epoch=self.epoch)
                if cfg.save_every and self.global_step % cfg.save_every == 0:
                    self.save()
            self.end_epoch()

    def epoch_batches(self, batches: "EpochBatches"):
        """This rank's collated batches of the epoch from ``step_in_epoch`` on, with their shares of
        the global batches: read here, or by ``cfg.workers`` DataLoader processes a few batches
        ahead."""
        if not self.cfg.workers:
            return (batches[k] for k in range(len(batches)))
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the workers tokenize; the parent needs no threads
        loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=self.cfg.workers,
                                             collate_fn=_as_collated)
        return ((b.reraise() if isinstance(b, FailedBatch) else b, share) for b, share in loader)

    def train_step(self, batch: Batch, share: Share | None = None) -> dict[str, float]:
        """One optimiser step on ``batch``, this rank's ``share`` of the global batch (§17.2); returns
        the objective's terms as means over the global batch."""
        cfg = self.cfg
        share = share or Share(len(batch), len(batch))
        seed = derive_seed(cfg.seed, 7, self.global_step)
        torch.manual_seed(seed if self.rank == 0 else derive_seed(seed, self.rank))  # the model's own dropout
        rows = None
        if self.world > 1:  # this rank's rows of the global batch (a stand-in draws as row 0)
            rows = torch.arange(self.rank, share.total, self.world) if share.size else torch.zeros(1, dtype=torch.long)
        batch = modality_dropout(batch, cfg.modality_dropout, torch.Generator().manual_seed(seed), rows,
                                 share.total if self.world > 1 else None)
        batch = batch.to(self.device)
        lr = self.scheduler.get_last_lr()[0]
        with autocast(self.device, cfg.bf16):
            terms = self.objective(self.model, batch, step=self.global_step, lr=lr, total_steps=self.total_steps,
                                   **({"share": share} if self.world > 1 else {}))
        logged = global_means(terms, share) if self.world > 1 else {k: float(v.detach()) for k, v in terms.items()}
        if not math.isfinite(logged["loss"]):
            raise TrainingError(f"loss is {logged['loss']} at step {self.global_step} (epoch {self.epoch}); "
                                f"the checkpoint in {self.out_dir} keeps the last good step — lower the "
                                f"learning rate (now {cfg.lr}) and resume or restart")
        loss = terms["loss"] * share.scale if self.world > 1 else terms["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.global_step += 1
        self.step_in_epoch += 1
        return logged

    def end_epoch(self) -> None:
        """Validation (every rank computes a block of the split, §17.1), then the checkpoint (rank 0)."""
        record = {"epoch": self.epoch, "step": self.global_step}
        if self.evaluator is not None:
            record["val"] = self.evaluator(self.module)
            self._fire("on_eval_end", record)
        elif self.val_set is not None:
            record["val"] = evaluate(self.module, self.val_set, self.collator, self.device,
                                     batch_size=max(64, self.cfg.batch_size), bf16=self.cfg.bf16)
            self._fire("on_eval_end", record)
        self.history.append(record)
        finished_epoch = self.step_in_epoch >= self.steps_per_epoch
        if finished_epoch:
            self.epoch += 1
            self.step_in_epoch = 0
        self.save()
        self._fire("on_epoch_end", record)


def global_means(terms: dict[str, torch.Tensor], share: Share) -> dict[str, float]:
    """The objective's terms over the global batch, from every rank's batch means (one all-reduce in
    float64, §17.2): each term is the mean of the ranks' means weighted by their shares, and a
    ``...:std`` beside a ``...:mean`` is the global batch's standard deviation (Bessel-corrected, as
    each rank's is), pooled from the ranks' own spreads and the spread of their means."""
    keys = list(terms)
    n = share.size
    value = {k: terms[k].detach().double().cpu().reshape(()) for k in keys}
    pooled = [k for k in keys if k.endswith(":std") and k[:-4] + ":mean" in terms]
    sums = [value[k] * n for k in keys]
    sums += [value[k].square() * max(n - 1, 0) for k in pooled]          # within each rank
    sums += [value[k[:-4] + ":mean"].square() * n for k in pooled]      # between the ranks' means
    totals = sum_across_ranks([torch.stack(sums)])[0]
    total = share.total
    out = {k: float(totals[i]) / total for i, k in enumerate(keys)}
    for j, k in enumerate(pooled):
        mean = out[k[:-4] + ":mean"]
        within, between = float(totals[len(keys) + j]), float(totals[len(keys) + len(pooled) + j])
        var = (within + between - total * mean ** 2) / (total - 1) if total > 1 else 0.0
        out[k] = math.sqrt(max(var, 0.0))
    return out
