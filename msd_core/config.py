"""One config object describes a run everywhere: CLI, Python, the page, the registry.

Dataclasses whose fields carry their default and their help text (``field(metadata={"help":
...})``): the CLI's flags and the pages' widgets are derived from them (``msd_core.options``),
never restated. ``to_dict``/``from_dict`` give a lossless JSON round trip, and ``from_dict`` is
the one checked way back from a dict: unknown keys are an error (a typo must not be silently
ignored). A field's choices (data sets, presets, methods, weightings, measures, removals) come
from the registries, listed in ``msd_core.options.CHOICES``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .paths import demo_teacher


def option(default=dataclasses.MISSING, help: str = "", *, factory=dataclasses.MISSING, flag: str | None = None):
    """A config field with its help text (and the CLI flag's name where it is not the field's)."""
    meta = {"help": help, **({"flag": flag} if flag else {})}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


class ConfigBase:
    """JSON round trip and the checked rebuild from a dict, for every config dataclass."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        return config_from_dict(cls, d)

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
class DataConfig(ConfigBase):
    """Which data set and how its examples become tensors."""

    name: str = option("synthetic", "data set", flag="--data")
    root: str | None = option(None, "folder of an on-disk data set (hateful-memes, folder)", flag="--data-root")
    options: dict[str, Any] = option(help="loader option KEY=VALUE, e.g. n=500, with_vector=true, "
                                          "text_column=caption (repeatable)", factory=dict, flag="--data-option")
    image_size: int = option(64, "images are resized to this many pixels a side")
    max_text_len: int = option(32, "texts are cut to this many word pieces")
    val_fraction: float = option(0.1, "share of train carved out as val when the data set ships no val split")
    split_seed: int = option(0, "seed of carved splits and of --max-train / --max-eval subsets")
    max_train_examples: int | None = option(None, "use at most N training examples", flag="--max-train")
    max_eval_examples: int | None = option(None, "use at most N val/test examples", flag="--max-eval")
    skip_bad_rows: bool = option(False, "skip bad rows (listed) instead of stopping")


@dataclass
class ModelConfig(ConfigBase):
    """A named preset (see ``msd_core.models.presets``) and optional overrides."""

    preset: str = option("student-small", "model preset (msd presets lists them)", flag="--model")
    overrides: dict[str, Any] = option(help="preset setting KEY=VALUE, e.g. image_encoder=maxpool, hidden=128 "
                                            "(repeatable; msd presets lists the settings)",
                                       factory=dict, flag="--model-option")


@dataclass
class TrainConfig(ConfigBase):
    """Optimisation and bookkeeping for one trainer run (teacher or student)."""

    epochs: int = option(3, "epochs")
    batch_size: int = option(32, "examples per step (per process under torchrun)")
    lr: float = option(5e-4, "peak learning rate (AdamW, linear warm-up and decay)")
    weight_decay: float = option(0.01, "AdamW weight decay")
    warmup_fraction: float = option(0.05, "share of the steps spent warming up the learning rate")
    seed: int = option(0, "seed of initial weights, data order and dropout")
    modality_dropout: float = option(0.15, "drop each modality of each example with this probability, never "
                                           "all at once (docs/METHOD.md §8)")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    bf16: bool = option(False, "bf16 autocast (useful on GPUs)")
    compile: bool = option(False, "torch.compile the model (useful on GPUs; slow to start on CPUs)")
    max_steps: int | None = option(None, "stop after this many steps (smoke runs)")
    save_every: int = option(0, "also checkpoint every N steps (0: once per epoch)")
    log_every: int = option(10, "steps between progress-bar updates")
    grad_clip: float = option(1.0, "clip the gradient norm to this (0: no clipping)")


@dataclass
class TeacherRunConfig(ConfigBase):
    """Everything ``msd train-teacher`` needs; stored beside the checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(preset="teacher-small"))
    train: TrainConfig = field(default_factory=TrainConfig)
    out_dir: str = option("", "output folder (default: a new folder under runs/)", flag="--out")
    kind: str = "teacher"


@dataclass
class DistillConfig(ConfigBase):
    """What ``msd distill`` optimises (docs/METHOD.md §3, §4 and §7)."""

    method: str = option("msd", "objective: none (labels only), kd or msd (§4)")
    weighting: str = option("instance-soft", "how MSD weights each modality's term (§7)")
    alpha: float = option(0.5, "α in L_KD = (1−α)·CE + α·KD_T (§3.2)")
    temperature: float = option(2.0, "T, the distillation temperature (§3.2)")
    lam: float = option(1.0, "λ: under every weighting an example's weights sum to λ·|M|, so uniform "
                             "gives each modality's term λ (§7.1)")
    tau: float = option(1.0, "τ, the temperature of the saliency-based weightings (§7)")
    saliency: str = option("loss-drop", "saliency measure behind the weights (§5)")
    removal: str = option("drop", "how the teacher's views remove a modality (§2)")
    population_split: str = option("val", "split on which population saliency S is measured (§5.4)")
    meta_fraction: float = option(0.1, "learned weightings: share of train held out as the meta split (§7.6)")
    meta_lr: float = option(1e-2, "learned weightings: learning rate of the weight network (§7.6)")
    meta_every: int = option(1, "learned weightings: a meta step every N student steps (§7.6)")


@dataclass
class DistillRunConfig(ConfigBase):
    """Everything ``msd distill`` needs; the registry stores it, the compare page diffs it."""

    teacher: str = option(help="teacher folder or its model.safetensors (default: the demo teacher of "
                               "synthetic)", factory=lambda: str(demo_teacher("synthetic")))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(preset="student-small"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(modality_dropout=0.0, lr=1e-3))
    distill: DistillConfig = field(default_factory=DistillConfig)
    out_dir: str = option("", "output folder (default: a new folder under runs/)", flag="--out")
    kind: str = "student"


RUN_CONFIGS = {"teacher": TeacherRunConfig, "student": DistillRunConfig}


def config_from_dict(cls, d: dict[str, Any]):
    """``cls`` (a config dataclass) rebuilt from ``d``, nested configs included; an unknown key
    or a non-object is a ``ConfigError`` naming the class and the known keys."""
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
        kwargs[name] = config_from_dict(sub, value) if sub is not None else value
    return cls(**kwargs)


_NESTED = {"DataConfig": DataConfig, "ModelConfig": ModelConfig, "TrainConfig": TrainConfig,
           "DistillConfig": DistillConfig}
