"""The ``msd`` command. Everything the dashboard does can be done from here with the same config."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TeacherRunConfig, TrainConfig
from .errors import MSDError


def parse_option(text: str, flag: str = "--data-option", example: str = "n=500") -> tuple[str, object]:
    """``key=value`` with value parsed as JSON when it is JSON (numbers, true, lists), else a string."""
    if "=" not in text:
        raise MSDError(f"{flag} {text!r}: write it as key=value (e.g. {example})")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synthetic", help="data set: easy-vqa, synthetic, hateful-memes, folder")
    p.add_argument("--data-root", help="folder of an on-disk data set (hateful-memes, folder)")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help="loader option, e.g. n=500, with_vector=true, text_column=caption (repeatable)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--max-train", type=int, help="use at most N training examples")
    p.add_argument("--max-eval", type=int, help="use at most N val/test examples")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip bad rows (listed) instead of stopping")


def data_config(a) -> DataConfig:
    return DataConfig(name=a.data, root=a.data_root, options=dict(parse_option(o) for o in a.data_option),
                      image_size=a.image_size, max_train_examples=a.max_train, max_eval_examples=a.max_eval,
                      skip_bad_rows=a.skip_bad_rows)


MODEL_OPTION_HELP = ("preset setting, e.g. image_encoder=maxpool, hidden=128, layers=2 (repeatable; "
                     "`msd presets` lists the settings)")


def model_config(a, **overrides) -> ModelConfig:
    """The preset of ``--model`` with the ``--model-option`` settings (checked when the model is built)."""
    options = dict(parse_option(o, "--model-option", "image_encoder=maxpool") for o in a.model_option)
    return ModelConfig(preset=a.model, overrides={**options, **overrides})


def train_config(a, **extra) -> TrainConfig:
    """The TrainConfig the common flags of train-teacher and distill describe."""
    return TrainConfig(batch_size=a.batch_size, lr=a.lr, seed=a.seed, modality_dropout=a.modality_dropout,
                       device=a.device, bf16=a.bf16, compile=a.compile, max_steps=a.max_steps, **extra)


def config_file(cls, a):
    """A run config from ``--config`` (with ``--out`` overriding its folder), or None."""
    if not a.config:
        return None
    cfg = cls.load(a.config)
    if a.out:
        cfg.out_dir = a.out
    return cfg


def cmd_train_teacher(a) -> None:
    from .teacher import format_metrics, train_teacher

    cfg = config_file(TeacherRunConfig, a) or TeacherRunConfig(
        data=data_config(a),
        model=model_config(a, **({"pretrained": a.pretrained} if a.pretrained else {})),
        train=train_config(a, epochs=a.epochs or 3, save_every=a.save_every),
        out_dir=a.out or f"runs/teacher-{a.data}-{a.model}")
    metrics = train_teacher(cfg, resume=a.resume, epochs=a.epochs)
    print(format_metrics(metrics))
    print(f"saved to {cfg.out_dir}/model.safetensors ({metrics['train_seconds']} s)")


def cmd_distill(a) -> None:
    from .distill import distill
    from .teacher import format_metrics

    cfg = config_file(DistillRunConfig, a) or DistillRunConfig(
        teacher=a.teacher, data=data_config(a), model=model_config(a),
        train=train_config(a, epochs=a.epochs),
        distill=DistillConfig(method=a.method, weighting=a.weighting, alpha=a.alpha, temperature=a.temperature,
                              lam=a.lam, tau=a.tau, saliency=a.saliency, removal=a.removal),
        out_dir=a.out or f"runs/{a.method}-{a.data}-{a.model}-seed{a.seed}")
    metrics = distill(cfg)
    print(format_metrics(metrics))
    print(f"saved to {cfg.out_dir}/model.safetensors ({metrics['train_seconds']} s)")


def cmd_saliency(a) -> None:
    import pandas as pd

    from .data.registry import load_split
    from .saliency import dominant_modality, modality_saliency
    from .teacher_cache import teacher_logits

    cfg = data_config(a)
    ds = load_split(cfg, a.split)
    cache = teacher_logits(a.teacher, cfg, ds, removal=a.removal, device=a.device)
    sal = modality_saliency(cache, a.measure)
    table = {"id": cache.ids, "label": [ds.labels[t] for t in cache.targets.tolist()]}
    for view, z in cache.logits.items():
        table[f"pred {view}"] = [ds.labels[i] for i in z.argmax(-1).tolist()]
    for m, v in sal.items():
        table[f"saliency {m}"] = v.numpy()
    table["dominant"] = dominant_modality(sal)
    if any("reliance" in e.meta for e in ds.examples):
        table["reliance"] = [e.meta.get("reliance") for e in ds.examples]
    frame = pd.DataFrame(table)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out) if out.suffix == ".parquet" else frame.to_csv(out, index=False)
    print(f"{len(frame)} rows ({'cache hit' if cache.hit else 'computed'}) -> {out}")
    print(frame[[c for c in frame.columns if c.startswith("saliency")]].describe().round(4).to_string())


def cmd_data(a) -> None:
    from .data.registry import DATASETS, load_split

    if a.list:
        for name, doc in DATASETS.items():
            print(f"{name:14s} {doc}")
        return
    ds = load_split(data_config(a), a.split)
    print(f"{ds.name} / {ds.split}: {len(ds)} examples, modalities {ds.modality_names}, metric {ds.metric}")
    print("labels: " + ", ".join(f"{k} ({v})" for k, v in ds.label_counts().items()))
    for ex in ds.examples[:a.show]:
        text = ex.inputs.get("text", "")
        image = ex.inputs.get("image")
        image = image if isinstance(image, str) else f"<array {getattr(image, 'shape', '')}>"
        print(f"  {ex.id}: label={ds.labels[ex.target]!r} text={text!r} image={image} {ex.meta.get('reliance', '')}")
    for s in ds.skipped:
        print(f"  skipped {s.path}:{s.row}: {s.reason}")


def cmd_presets(a) -> None:
    from .models.encoders import IMAGE_ENCODERS
    from .models.presets import describe_presets, preset_settings

    for row in describe_presets():
        count = f"{row['parameters']:>11,} parameters" if row["parameters"] else f"{'(the folder’s)':>22s}"
        print(f"{row['preset']:18s} {row['arch']:13s} {count}  {row['doc']}")
    print(f"\nsettings any preset takes with --model-option KEY=VALUE: {', '.join(preset_settings())}"
          f"\n(image_encoder: {' or '.join(IMAGE_ENCODERS)})")


def cmd_evaluate(a) -> None:
    from .checkpoint import load_model
    from .data.collate import Collator
    from .data.registry import load_split
    from .device import pick_device
    from .evaluate import evaluate

    device = pick_device(a.device)
    ckpt = Path(a.checkpoint)
    model, meta = load_model(ckpt / "model.safetensors" if ckpt.is_dir() else ckpt, device)
    ds = load_split(data_config(a), a.split)
    if ds.labels != meta["labels"]:
        raise MSDError(f"{a.checkpoint} was trained on labels {meta['labels'][:5]}..., "
                       f"the data has {ds.labels[:5]}...: evaluate on the data set it was trained on")
    metrics = evaluate(model, ds, Collator(ds.modalities, image_size=a.image_size), device)
    print(json.dumps(metrics, indent=2))


def cmd_dashboard(a) -> None:
    import subprocess

    entry = Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"
    sys.exit(subprocess.call([sys.executable, "-m", "streamlit", "run", str(entry), "--server.headless", "true",
                              "--server.address", a.address, "--server.port", str(a.port),
                              "--browser.gatherUsageStats", "false"]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msd", description="MSD Studio: modality-specific distillation")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train-teacher", help="train a teacher with modality dropout; per-view metrics")
    add_data_args(t)
    t.add_argument("--model", default="teacher-small", help="model preset (msd presets lists them)")
    t.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE", help=MODEL_OPTION_HELP)
    t.add_argument("--pretrained", metavar="FOLDER",
                   help="a local Hugging Face BERT-family folder (config.json, model.safetensors, vocab.txt) "
                        "to start the text encoder from; use with --model hf-bert-teacher")
    t.add_argument("--epochs", type=int, help="epochs (default 3; with --resume: the saved run's)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--modality-dropout", type=float, default=0.15)
    t.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    t.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    t.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    t.add_argument("--max-steps", type=int)
    t.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps")
    t.add_argument("--out", help="output folder (default runs/teacher-DATA-MODEL)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--config", help="a TeacherRunConfig JSON file (overrides the flags above)")
    t.set_defaults(func=cmd_train_teacher)

    k = sub.add_parser("distill", help="distil a student: none, kd or msd (any weighting)")
    add_data_args(k)
    k.add_argument("--teacher", default="assets/teachers/synthetic", help="teacher folder or model.safetensors")
    k.add_argument("--model", default="student-small", help="student preset")
    k.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE", help=MODEL_OPTION_HELP)
    k.add_argument("--method", default="msd", choices=["none", "kd", "msd"])
    k.add_argument("--weighting", default="instance-soft",
                   help="uniform, population, instance-soft, instance-hard, learned, learned-global")
    k.add_argument("--alpha", type=float, default=0.5)
    k.add_argument("--temperature", type=float, default=2.0)
    k.add_argument("--lam", type=float, default=1.0)
    k.add_argument("--tau", type=float, default=1.0)
    k.add_argument("--saliency", default="loss-drop", help="loss-drop, kl-shift, confidence-drop")
    k.add_argument("--removal", default="drop", help="drop, mask, mean, swap")
    k.add_argument("--epochs", type=int, default=3)
    k.add_argument("--batch-size", type=int, default=32)
    k.add_argument("--lr", type=float, default=1e-3)
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--modality-dropout", type=float, default=0.0)
    k.add_argument("--device", default="auto")
    k.add_argument("--bf16", action="store_true")
    k.add_argument("--compile", action="store_true")
    k.add_argument("--max-steps", type=int)
    k.add_argument("--out")
    k.add_argument("--config", help="a DistillRunConfig JSON file (overrides the flags above)")
    k.set_defaults(func=cmd_distill)

    y = sub.add_parser("saliency", help="per-example modality saliency of a teacher, as CSV or Parquet")
    add_data_args(y)
    y.add_argument("--teacher", required=True)
    y.add_argument("--split", default="val")
    y.add_argument("--measure", default="loss-drop", help="loss-drop, kl-shift, confidence-drop")
    y.add_argument("--removal", default="drop")
    y.add_argument("--device", default="auto")
    y.add_argument("--out", default="saliency.csv")
    y.set_defaults(func=cmd_saliency)

    d = sub.add_parser("data", help="summarise a data set and show examples (checks every row)")
    add_data_args(d)
    d.add_argument("--split", default="train")
    d.add_argument("--show", type=int, default=5)
    d.add_argument("--list", action="store_true", help="list the data sets")
    d.set_defaults(func=cmd_data)

    p = sub.add_parser("presets", help="list model presets with parameter counts")
    p.set_defaults(func=cmd_presets)

    e = sub.add_parser("evaluate", help="per-view metrics of a checkpoint on a data split")
    add_data_args(e)
    e.add_argument("--checkpoint", required=True, help="a model.safetensors or its folder")
    e.add_argument("--split", default="test")
    e.add_argument("--device", default="auto")
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("dashboard", help="start the dashboard (127.0.0.1 unless told otherwise)")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--address", default="127.0.0.1")
    s.set_defaults(func=cmd_dashboard)
    return parser


def init_distributed() -> None:
    """Under ``torchrun`` (WORLD_SIZE > 1), join the process group; the trainer then shards the
    data by rank, wraps the model in DistributedDataParallel and writes from rank 0 only."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("train-teacher", "distill"):
        init_distributed()
    try:
        args.func(args)
    except MSDError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
