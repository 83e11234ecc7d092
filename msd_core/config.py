"""One config object describes a run everywhere: CLI, Python, the page, the registry.

Dataclasses with defaults next to the code that reads them; ``to_dict``/``from_dict``
give a lossless JSON round trip, and unknown keys are an error (a typo must not be
silently ignored).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass
class DataConfig:
    """Which data set and how its examples become tensors."""

    name: str = "synthetic"
    root: str | None = None           # folder of an on-disk data set (hateful-memes, folder)
    options: dict[str, Any] = field(default_factory=dict)  # loader-specific (see each loader)
    image_size: int = 64
    max_text_len: int = 32
    val_fraction: float = 0.1         # carved from train when the data set ships no val split
    split_seed: int = 0
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    skip_bad_rows: bool = False       # report and skip bad rows instead of stopping


@dataclass
class ModelConfig:
    """A named preset (see ``msd_core.models.presets``) and optional overrides."""

    preset: str = "student-small"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping for one trainer run (teacher or student)."""

    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    seed: int = 0
    modality_dropout: float = 0.15    # METHOD.md: each modality dropped w.p. p, never all
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    bf16: bool = False                # bf16 autocast (useful on GPUs)
    compile: bool = False             # torch.compile the model (useful on GPUs; slow to start on CPUs)
    max_steps: int | None = None      # stop early (smoke runs, tests)
    save_every: int = 0               # also checkpoint every N steps (0: once per epoch)
    log_every: int = 10
    grad_clip: float = 1.0


class JsonConfig:
    """JSON round trip for the run configs below."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        return _from_dict(cls, d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path):
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found — check the path")
        try:
            d = json.loads(p.read_text())
            if isinstance(d, dict) and isinstance(d.get("config"), dict) and "versions" in d:
                d = d["config"]  # a run folder's run.json: reproduce the run it records
            return cls.from_dict(d)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p}, line {e.lineno}: not valid JSON ({e.msg})") from None


@dataclass
class TeacherRunConfig(JsonConfig):
    """Everything ``msd train-teacher`` needs; stored beside the checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(preset="teacher-small"))
    train: TrainConfig = field(default_factory=TrainConfig)
    out_dir: str = "runs/teacher"
    kind: str = "teacher"


@dataclass
class DistillConfig:
    """What ``msd distill`` optimises (METHOD.md, "Losses" and "Weighting schemes")."""

    method: str = "msd"                 # none | kd | msd
    weighting: str = "instance-soft"    # uniform | population | instance-soft | instance-hard | learned | learned-global
    alpha: float = 0.5                  # L_KD = (1−α)·CE + α·KD_T
    temperature: float = 2.0            # T
    lam: float = 1.0                    # λ, total auxiliary weight
    tau: float = 1.0                    # τ, weighting temperature
    saliency: str = "loss-drop"         # loss-drop | kl-shift | confidence-drop
    removal: str = "drop"               # how the teacher's views remove a modality
    population_split: str = "val"       # where S (population saliency) is measured
    meta_fraction: float = 0.1          # learned schemes: share of train held out as the meta split
    meta_lr: float = 1e-2               # learning rate of φ
    meta_every: int = 1                 # a meta step every N student steps


@dataclass
class DistillRunConfig(JsonConfig):
    """Everything ``msd distill`` needs; the registry stores it, the compare page diffs it."""

    teacher: str = "assets/teachers/synthetic"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(preset="student-small"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(modality_dropout=0.0, lr=1e-3))
    distill: DistillConfig = field(default_factory=DistillConfig)
    out_dir: str = "runs/student"
    kind: str = "student"


def _from_dict(cls, d: dict[str, Any]):
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__}: expected an object, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in d.items():
        ftype = fields[name].type
        sub = _NESTED.get(ftype) if isinstance(ftype, str) else None
        kwargs[name] = _from_dict(sub, value) if sub is not None else value
    return cls(**kwargs)


_NESTED = {"DataConfig": DataConfig, "ModelConfig": ModelConfig, "TrainConfig": TrainConfig,
           "DistillConfig": DistillConfig}
