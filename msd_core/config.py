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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .paths import demo_teacher


def option(default=dataclasses.MISSING, help: str = "", *, factory=dataclasses.MISSING, flag: str | None = None,
           at_least: float | None = None, above: float | None = None, at_most: float | None = None,
           below: float | None = None):
    """A config field with its help text, the CLI flag's name where it is not the field's, and for
    a number its allowed range (``at_least``/``above`` and ``at_most``/``below``), which
    ``check_ranges`` enforces before any work starts (and ``msd --help`` shows)."""
    bounds = {k: v for k, v in (("at_least", at_least), ("above", above), ("at_most", at_most),
                                ("below", below)) if v is not None}
    meta = {"help": help, **({"flag": flag} if flag else {}), **({"range": bounds} if bounds else {})}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> str:
    """The command-line flag of a config field: its ``flag``, else ``--`` and its name with dashes."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def flag_for(config_cls, name: str) -> str:
    """The command-line flag of field ``name`` of ``config_cls``, for messages that name it."""
    return flag_of(next(f for f in dataclasses.fields(config_cls) if f.name == name))


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
    root: str | None = option(None, "folder of an on-disk data set (msd data --list says which need one)",
                              flag="--data-root")
    options: dict[str, Any] = option(help="loader option KEY=VALUE, e.g. n=500, with_vector=true, "
                                          "text_column=caption (repeatable)", factory=dict, flag="--data-option")
    image_size: int = option(64, "images are resized to this many pixels a side", at_least=8, at_most=1024)
    max_text_len: int = option(32, "texts are cut to this many word pieces", at_least=2, at_most=4096)
    val_fraction: float = option(0.1, "share of train carved out as val when the data set ships no val split",
                                 above=0, below=1)
    split_seed: int = option(0, "seed of carved splits and of --max-train / --max-eval subsets")
    max_train_examples: int | None = option(None, "use at most N training examples", flag="--max-train", at_least=1)
    max_eval_examples: int | None = option(None, "use at most N val/test examples", flag="--max-eval", at_least=1)
    slice: str | None = option(None, "train on a saved slice of the train split: its name or its file "
                                     "(runs/slices/NAME.json); see --slice-mode (docs/METHOD.md §15)")
    slice_mode: str = option("only", "only: train on the slice's examples alone; upweight: every slice example "
                                     "--slice-weight times per epoch, the others once; exclude: every example "
                                     "but the slice's")
    slice_weight: int = option(2, "upweight: how many times each slice example appears per epoch", at_least=1)
    slice_hash: str | None = option(None, "the slice's ids hash, recorded when a run starts; a slice whose ids "
                                          "differ is refused")
    skip_bad_rows: bool = option(False, "skip bad rows (listed) instead of stopping")
    images_outside_root: bool = option(False, "allow image paths in a data file that lead outside --data-root "
                                              "(absolute paths, ../)", flag="--allow-images-outside-root")
    max_image_pixels: int = option(89_478_485, "refuse images with more pixels than this (0: no limit; large "
                                               "images are downscaled as they are read)", at_least=0)


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

    epochs: int = option(3, "epochs", at_least=1)
    batch_size: int = option(32, "examples per step (per process under torchrun)", at_least=1)
    lr: float = option(5e-4, "peak learning rate (AdamW, linear warm-up and decay)", above=0)
    weight_decay: float = option(0.01, "AdamW weight decay", at_least=0)
    warmup_fraction: float = option(0.05, "share of the steps spent warming up the learning rate", at_least=0,
                                    below=1)
    seed: int = option(0, "seed of initial weights, data order and dropout")
    modality_dropout: float = option(0.15, "drop each modality of each example with this probability, never "
                                           "all at once (docs/METHOD.md §8)", at_least=0, below=1)
    device: str = option("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    bf16: bool = option(False, "bf16 autocast (useful on GPUs)")
    threads: int = option(0, "CPU threads this run may use (0: every core); the launch queue runs "
                             "cores ÷ threads runs at once", at_least=0)
    workers: int = option(0, "DataLoader worker processes that read and collate the next training batches while "
                             "the model trains (0: read them in the training process); the batches are the same",
                          at_least=0)
    compile: bool = option(False, "torch.compile the model (useful on GPUs; slow to start on CPUs)")
    report_to: str = option("none", "experiment trackers that also receive the live metrics, the config and the final "
                                    "metrics: none, or a comma-separated list of them")
    max_steps: int | None = option(None, "stop after this many steps (smoke runs)", at_least=1)
    save_every: int = option(0, "also checkpoint every N steps (0: once per epoch)", at_least=0)
    log_every: int = option(10, "steps between progress-bar updates", at_least=1)
    grad_clip: float = option(1.0, "clip the gradient norm to this (0: no clipping)", at_least=0)


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
    alpha: float = option(0.5, "α in L_KD = (1−α)·CE + α·KD_T (§3.2)", at_least=0, at_most=1)
    temperature: float = option(2.0, "T, the distillation temperature (§3.2)", above=0)
    lam: float = option(1.0, "λ: under every weighting an example's weights sum to λ·|M|, so uniform "
                             "gives each modality's term λ (§7.1)", at_least=0)
    tau: float = option(1.0, "τ, the temperature of the saliency-based weightings (§7)", above=0)
    saliency: str = option("loss-drop", "saliency measure behind the weights (§5)")
    removal: str = option("drop", "how the teacher's views remove a modality (§2)")
    population_split: str = option("val", "split on which population saliency S is measured (§5.5)")
    saliency_folds: int = option(0, "out-of-fold saliency: K ≥ 2 trains K copies of the teacher, each without "
                                    "a K-th of this run's training examples, and takes each example's saliency "
                                    "from the copy that did not see it; 0: the teacher's own (§5.6)", at_least=0)
    meta_fraction: float = option(0.1, "learned weightings: share of train held out as the meta split (§7.6)",
                                  above=0, below=1)
    meta_lr: float = option(1e-2, "learned weightings: learning rate of the weight network; 0 keeps the "
                                  "weights uniform, a control for the rest of the meta step (§7.6)", at_least=0)
    meta_every: int = option(1, "learned weightings: a meta step every N student steps (§7.6)", at_least=1)
    meta_split: str = option("train", "learned weightings: the meta split is held out of train, or is the "
                                      "val split, so the student trains on the same examples as under KD (§7.6)")
    meta_start: float = option(0.0, "learned weightings: share of the training steps before the first meta "
                                     "step, e.g. the learning-rate warm-up's (§7.6)", at_least=0, below=1)
    meta_entropy: float = option(0.0, "learned weightings: β of the entropy bonus on the weights in the meta "
                                       "loss, which pulls them towards uniform (§7.6)", at_least=0)
    meta_lookahead: int = option(1, "learned weightings: plain SGD steps of the student's look-ahead on the "
                                     "batch (§7.6)", at_least=1)
    cache_precision: str = option("fp32", "how the teacher cache stores logits: fp32 (exact), or fp16 / bf16 in "
                                          "half the space (§9.2)")
    cache_top_k: int = option(0, "keep only the teacher's k largest logits per example and view, and one value "
                                 "for the rest, for large label spaces (VQA v2's 3,129 answers); 0 keeps every "
                                 "class (§9.3)", at_least=0)


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


@dataclass(frozen=True)
class QuickRun:
    """Where the dashboard's Distill form starts, beside ``DistillRunConfig``'s own defaults: a short
    KD and MSD run over three seeds, chosen with ``experiments/page_defaults.py`` among settings
    that run in a few minutes on a 2-core CPU (what they measured is in RESULTS.md, "The Distill
    page's defaults")."""

    student: str = "student-two-tower"
    epochs: int = 12
    max_train_examples: int = 2000
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = ("kd", "msd")
RUN_COMMANDS = {"teacher": "train-teacher", "student": "distill"}  # the msd subcommand of each kind of run


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


def describe_range(bounds: dict[str, float]) -> str:
    """``bounds`` (an option's ``range``) in words: ``at least 1``, ``above 0 and below 1``."""
    words = {"at_least": "at least", "above": "above", "at_most": "at most", "below": "below"}
    return " and ".join(f"{words[k]} {v:g}" for k, v in bounds.items())


def in_range(value: float, bounds: dict[str, float]) -> bool:
    return (value >= bounds.get("at_least", -math.inf) and value > bounds.get("above", -math.inf)
            and value <= bounds.get("at_most", math.inf) and value < bounds.get("below", math.inf))


def check_ranges(cfg, prefix: str = "") -> None:
    """Every numeric field of ``cfg`` (nested sections included) of its type, finite and inside
    the range its ``option`` declares; a ``ConfigError`` names the flag and the allowed range."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, ConfigBase):
            check_ranges(value, prefix + f.name + ".")
            continue
        kind = str(f.type).split("|")[0].strip()
        if kind not in ("int", "float") or (value is None and "None" in str(f.type)):
            continue
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        bounds = f.metadata.get("range", {})
        allowed = f" ({describe_range(bounds)})" if bounds else ""
        ok_type = (isinstance(value, int) and not isinstance(value, bool)) if kind == "int" else \
            (isinstance(value, (int, float)) and not isinstance(value, bool))
        if not ok_type:
            raise ConfigError(f"{flag} ({prefix}{f.name}) must be {'an integer' if kind == 'int' else 'a number'}"
                              f"{allowed}, got {value!r}")
        if not math.isfinite(value) or not in_range(value, bounds):
            raise ConfigError(f"{flag} ({prefix}{f.name}) must be {describe_range(bounds) or 'finite'}, got {value!r}")
