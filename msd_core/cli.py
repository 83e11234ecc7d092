"""The ``msd`` commands. Everything the dashboard does can be done from here with the same config.

Their flags are generated from the run configs (``msd_core.flags``); a training command records
itself in the registry of its runs folder and trains under its recorder (``msd_core.runs.job``);
under ``torchrun`` the processes join one group first (``msd_core.distributed``).
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path

from .config import DistillRunConfig, TeacherRunConfig
from .errors import MSDError
from .flags import add_config_flags, data_config, run_config
from .paths import display_path, resolve_path, runs_dir

NO_QUEUE_HELP = ("start now instead of waiting for a free run slot (runs at once: $MSD_STUDIO_MAX_RUNS, "
                 "else cores ÷ --threads)")


# -- commands -------------------------------------------------------------------------
def report(metrics: dict, cfg) -> None:
    """The closing lines of a training command (once, from rank 0 under torchrun)."""
    from .distributed import is_main_process
    from .engine.teacher import format_metrics

    if is_main_process():
        print(format_metrics(metrics))
        print(f"saved to {display_path(Path(cfg.out_dir) / 'model.safetensors')} ({metrics['train_seconds']} s)")


def limit_threads(cfg) -> None:
    """``torch.set_num_threads(cfg.train.threads)`` when threads > 0 (0 leaves torch's default)."""
    if cfg.train.threads > 0:
        import torch

        torch.set_num_threads(cfg.train.threads)


def train_here(cfg, kind: str, a: argparse.Namespace, train):
    """Run ``train(recorder)`` for a ``train-teacher`` or ``distill`` typed here: recorded in the
    registry of the runs folder its ``--out`` lies in (``runs.job``), so it shows on the pages live
    and on Compare when it ends, and waiting for a run slot there like the dashboard's runs (not with
    ``--no-queue``, nor under ``torchrun``, whose ranks must start together and where only rank 0
    records). A refused command leaves no run behind. None when it was cancelled while queued."""
    from .distributed import is_main_process
    from .launch import launched_world
    from .runs.job import register_here, run_registered

    def go(recorder):
        limit_threads(cfg)
        return train(recorder)

    if not is_main_process():
        return go(None)
    reg, run_id, before = register_here(cfg, kind, resume=a.resume)
    return run_registered(reg, run_id, go, threads=cfg.train.threads,
                          queue=not (a.no_queue or launched_world() > 1), before=before, forget_if_refused=True,
                          say=lambda message: print(message, file=sys.stderr, flush=True))


def cmd_train_teacher(a) -> None:
    from .engine.run_folder import resumed_config
    from .engine.teacher import train_teacher

    cfg = run_config(TeacherRunConfig, a)
    if not cfg.out_dir:
        cfg.out_dir = str(runs_dir() / f"teacher-{cfg.data.name}-{cfg.model.preset}")
    if a.resume:  # the run continues under its saved config: its threads, its queue limit
        cfg = resumed_config(cfg, a.train__epochs)
    metrics = train_here(cfg, "teacher", a, lambda recorder: train_teacher(cfg, resume=a.resume,
                                                                            epochs=a.train__epochs, recorder=recorder))
    if metrics is not None:
        report(metrics, cfg)


def cmd_distill(a) -> None:
    from .engine.distill import distill
    from .engine.run_folder import resumed_config

    cfg = run_config(DistillRunConfig, a)
    if not cfg.out_dir:
        cfg.out_dir = str(runs_dir() / f"{cfg.distill.method}-{cfg.data.name}-{cfg.model.preset}-seed{cfg.train.seed}")
    if a.resume:
        cfg = resumed_config(cfg)
    metrics = train_here(cfg, "student", a, lambda recorder: distill(cfg, resume=a.resume, recorder=recorder))
    if metrics is not None:
        report(metrics, cfg)


def cmd_saliency(a) -> None:
    from .analysis.explore import saliency_frame
    from .data.registry import load_split
    from .engine.teacher_cache import teacher_logits

    cfg = data_config(a)
    ds = load_split(cfg, a.split)
    cache = teacher_logits(resolve_path(a.teacher), cfg, ds, removal=a.removal, device=a.device)
    frame = saliency_frame(cache, ds, a.measure).drop(columns=["index"])
    out = resolve_path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out) if out.suffix == ".parquet" else frame.to_csv(out, index=False)
    print(f"{len(frame)} rows ({'cache hit' if cache.hit else 'computed'}) -> {display_path(out)}")
    print(frame[[c for c in frame.columns if c.startswith("sal ")]].describe().round(4).to_string())


def cmd_data(a) -> None:
    from .data.registry import DATASETS, load_split

    if a.list:
        for name, entry in DATASETS.items():
            print(f"{name:14s} {entry.doc}{' (needs --data-root)' if entry.on_disk else ''}")
        return
    ds = load_split(data_config(a), a.split)
    print(f"{ds.name} / {ds.split}: {len(ds)} examples, modalities {ds.modality_names}, metric {ds.metric}")
    counts = ds.label_counts()
    if len(counts) > 30:  # VQA's thousands of answers: the most frequent
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:20]
        print(f"task {ds.task}; {len(counts):,} labels, the 20 most frequent: "
              + ", ".join(f"{k} ({v})" for k, v in top))
    else:
        print(f"task {ds.task}; labels: " + ", ".join(f"{k} ({v})" for k, v in counts.items()))
    for ex in ds.examples[:a.show]:
        text = ex.inputs.get("text", "")
        image = ex.inputs.get("image")
        image = image if isinstance(image, str) else f"<array {getattr(image, 'shape', '')}>"
        print(f"  {ex.id}: label={ds.label_text(ex)!r} text={text!r} image={image} {ex.meta.get('reliance', '')}")
    for s in ds.skipped:
        print(f"  skipped {s.path}:{s.row}: {s.reason}")


def cmd_presets(a) -> None:
    from .models.encoders import IMAGE_ENCODERS
    from .models.presets import describe_presets, preset_settings

    rows = describe_presets()
    name_width, arch_width = (max(len(r[k]) for r in rows) for k in ("preset", "arch"))
    for row in rows:
        count = f"{row['parameters']:>11,} parameters" if row["parameters"] else f"{'(the folder’s)':>22s}"
        print(f"{row['preset']:{name_width}s}  {row['arch']:{arch_width}s}  {count}  {row['doc']}")
    print(f"\nsettings any preset takes with --model-option KEY=VALUE: {', '.join(preset_settings())}"
          f"\n(image_encoder: {' or '.join(IMAGE_ENCODERS)})")


def cmd_evaluate(a) -> None:
    from .data.collate import Collator
    from .data.registry import load_split
    from .device import pick_device
    from .engine.checkpoint import check_fits, load_model, model_file
    from .engine.evaluate import evaluate

    device = pick_device(a.device)
    ckpt = model_file(resolve_path(a.checkpoint))
    cfg = data_config(a)
    ds = load_split(cfg, a.split)
    model, meta = load_model(ckpt, device)
    check_fits(meta, ds, ckpt)
    metrics = evaluate(model, ds, Collator.for_model(ds, cfg, model), device)
    print(json.dumps(metrics, indent=2))


def cmd_job(a) -> int:
    """A launched run (``msd_core.runs.launch``): wait for its turn and a free run slot (light:
    no torch while queued), then train or distil under the run's recorder (``runs.job``). Cancelled
    while queued, it exits without training."""
    from .config import RUN_CONFIGS
    from .runs.job import run_registered
    from .runs.store import ACTIVE, Registry

    reg = Registry(a.db)
    run = reg.run(a.run)
    error = None

    def train(recorder):
        limit_threads(cfg)
        if run["kind"] == "teacher":
            from .engine.teacher import train_teacher

            return train_teacher(cfg, progress=False, recorder=recorder)
        from .engine.distill import distill

        return distill(cfg, progress=False, recorder=recorder)

    try:
        cfg = RUN_CONFIGS[run["kind"]].from_dict(run["config"])
        run_registered(reg, a.run, train, threads=cfg.train.threads, say=lambda message: print(message, flush=True))
    except (KeyboardInterrupt, MSDError) as e:
        print(f"error: {e}", file=sys.stderr)
        error = f"{type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001 - recorded; the traceback goes to the run's log
        import traceback

        traceback.print_exc()
        error = f"{type(e).__name__}: {e}"
    if reg.run(a.run)["status"] in ACTIVE:  # its config could not be read: no recorder took over
        reg.finish(a.run, "failed", error or "the run ended without a status")
    return 0 if reg.run(a.run)["status"] in ("finished", "cancelled") else 1


def cmd_runs(a) -> int | None:
    """List the registry's runs, rebuild the registry from the run folders, or add folders made elsewhere."""
    from .runs.liveness import reap
    from .runs.rebuild import format_runs, rebuild
    from .runs.store import Registry, default_db

    db = resolve_path(a.db) if a.db else default_db()
    if a.rebuild:
        print("\n".join(rebuild(db).lines()))
        return
    if a.add:
        from .runs.add import add_folders

        report = add_folders(Registry(db), a.add, teacher=a.teacher)
        print("\n".join(report.lines))
        return 2 if report.refused else None
    reg = Registry(db)
    reap(reg)
    print(format_runs(reg.runs(limit=a.limit), reg.queue_positions()))


def cmd_export(a) -> None:
    """Per-example predictions (Parquet/CSV) or the metrics table (CSV/Markdown/LaTeX) of finished runs."""
    from .analysis.export import FORMATS, export, format_from_suffix
    from .errors import ConfigError
    from .runs.store import Registry, default_db

    out = resolve_path(a.out)
    fmt = a.format or format_from_suffix(out)
    if fmt is None:
        raise ConfigError(f"--out {a.out}: say the format with --format ({' or '.join(FORMATS[a.what])}) or give the "
                          f"file a suffix that names it (.{' .'.join(FORMATS[a.what])})")
    reg = Registry(resolve_path(a.db) if a.db else default_db())
    runs = [reg.run(run_id) for run_id in dict.fromkeys(a.runs)]
    unfinished = [f"{r['id']} ({r['status']})" for r in runs if r["status"] != "finished"]
    if unfinished:
        raise ConfigError(f"only finished runs can be exported; not finished: {', '.join(unfinished)} "
                          f"(msd runs lists the runs and their status)")
    print(f"{export(runs, a.what, fmt, out, a.split, a.device)} -> {display_path(out)}")


def cmd_dashboard(a) -> None:
    import subprocess

    serve = Path(__file__).resolve().parent.parent / "app" / "serve.py"  # streamlit run, first visit prepared
    # No file watcher: it is for editing the app's source, and watching every module costs each new session.
    sys.exit(subprocess.call([sys.executable, str(serve), "--server.headless", "true",
                              "--server.address", a.address, "--server.port", str(a.port),
                              "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]))


def add_dashboard_command(sub) -> None:
    s = sub.add_parser("dashboard", help="start the dashboard (127.0.0.1 unless told otherwise)")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--address", default="127.0.0.1")
    s.set_defaults(func=cmd_dashboard)


def dashboard_parser() -> argparse.ArgumentParser:
    """Just ``msd dashboard``: the full parser imports torch for the registries' choices, which
    the dashboard's own process does anyway, so its start need not wait for it twice."""
    parser = argparse.ArgumentParser(prog="msd")
    add_dashboard_command(parser.add_subparsers(dest="command", required=True))
    return parser


def build_parser() -> argparse.ArgumentParser:
    from .options import choices, default

    parser = argparse.ArgumentParser(prog="msd", description="MSD Studio: modality-specific distillation")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train-teacher", help="train a teacher with modality dropout; per-view metrics")
    add_config_flags(t, TeacherRunConfig)
    t.add_argument("--pretrained", metavar="FOLDER",
                   help="a Hugging Face model folder or hub id: a vision-language model (CLIP, SigLIP, ViLT, ...) "
                        "with --model hf, a text encoder with --model hf-pair (its vision encoder: "
                        "--model-option vision=FOLDER), a BERT folder with --model hf-bert-teacher")
    t.add_argument("--resume", action="store_true", help="continue the run in --out (--epochs may extend it)")
    t.add_argument("--no-queue", action="store_true", help=NO_QUEUE_HELP)
    t.add_argument("--config", help="a TeacherRunConfig JSON file or a run's run.json; flags given override it")
    t.set_defaults(func=cmd_train_teacher)

    k = sub.add_parser("distill", help="distil a student: none, kd or msd (any weighting)")
    add_config_flags(k, DistillRunConfig)
    k.add_argument("--resume", action="store_true",
                   help="continue the run in --out under its saved config (other flags are not applied)")
    k.add_argument("--no-queue", action="store_true", help=NO_QUEUE_HELP)
    k.add_argument("--config", help="a DistillRunConfig JSON file or a run's run.json; flags given override it")
    k.set_defaults(func=cmd_distill)

    y = sub.add_parser("saliency", help="per-example modality saliency of a teacher, as CSV or Parquet")
    add_config_flags(y, TeacherRunConfig, only=("data.",))
    y.add_argument("--teacher", required=True, help="teacher folder or its model.safetensors")
    y.add_argument("--split", default="val", choices=choices("distill.population_split"))
    y.add_argument("--measure", default=default(DistillRunConfig, "distill.saliency"),
                   choices=choices("distill.saliency"))
    y.add_argument("--removal", default=default(DistillRunConfig, "distill.removal"),
                   choices=choices("distill.removal"))
    y.add_argument("--device", default=default(DistillRunConfig, "train.device"))
    y.add_argument("--out", default="saliency.csv", help="a .csv or .parquet file")
    y.set_defaults(func=cmd_saliency)

    d = sub.add_parser("data", help="summarise a data set and show examples (checks every row)")
    add_config_flags(d, TeacherRunConfig, only=("data.",))
    d.add_argument("--split", default="train", choices=choices("distill.population_split"))
    d.add_argument("--show", type=int, default=5)
    d.add_argument("--list", action="store_true", help="list the data sets")
    d.set_defaults(func=cmd_data)

    p = sub.add_parser("presets", help="list model presets with parameter counts")
    p.set_defaults(func=cmd_presets)

    e = sub.add_parser("evaluate", help="per-view metrics of a checkpoint on a data split")
    add_config_flags(e, TeacherRunConfig, only=("data.",))
    e.add_argument("--checkpoint", required=True, help="a model.safetensors or its folder")
    e.add_argument("--split", default="test", choices=choices("distill.population_split"))
    e.add_argument("--device", default=default(DistillRunConfig, "train.device"))
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("runs", help="list the runs of the registry; --rebuild rebuilds it from the run folders; "
                                   "--add registers run folders made elsewhere")
    r.add_argument("--rebuild", action="store_true",
                   help="move a damaged registry aside and register every run folder (holding run.json) under "
                        "its folder; run folders are only read")
    r.add_argument("--add", nargs="+", metavar="FOLDER",
                   help="register run folders made elsewhere (another machine, a cluster), where they are: finished "
                        "or interrupted runs; adding one twice is one run")
    r.add_argument("--teacher", metavar="FOLDER",
                   help="with --add: the teacher the added student runs distilled, where it is on this machine "
                        "(when the path their run.json records is not)")
    r.add_argument("--db", help="the registry file (default: registry.sqlite in the runs folder)")
    r.add_argument("--limit", type=int, default=50, help="list at most this many runs, newest first")
    r.set_defaults(func=cmd_runs)

    x = sub.add_parser("export", help="per-example predictions or the metrics table of finished runs, as a file")
    x.add_argument("--runs", nargs="+", required=True, metavar="ID", help="run ids (msd runs lists them)")
    x.add_argument("--what", choices=("examples", "table"), default="table",
                   help="examples: one row per example with the teacher's and each run's logits, predictions, "
                        "saliency and Shapley values; table: mean ± std over seeds per method and view")
    x.add_argument("--format", choices=("parquet", "csv", "md", "tex"),
                   help="examples: parquet or csv; table: csv, md or tex (default: from --out's suffix)")
    x.add_argument("--out", required=True, help="the file to write")
    x.add_argument("--split", default="test", choices=choices("distill.population_split"))
    x.add_argument("--db", help="the registry file (default: registry.sqlite in the runs folder)")
    x.add_argument("--device", default="cpu", help="where the models predict (examples)")
    x.set_defaults(func=cmd_export)

    add_dashboard_command(sub)

    add_job_command(sub)
    return parser


def add_job_command(sub) -> None:
    j = sub.add_parser("job", help=argparse.SUPPRESS)  # what runs.launch starts
    j.add_argument("--db", required=True)
    j.add_argument("--run", required=True)
    j.set_defaults(func=cmd_job)


def job_parser() -> argparse.ArgumentParser:
    """Just ``msd job``: a queued run waits without importing torch (the full parser does)."""
    parser = argparse.ArgumentParser(prog="msd")
    add_job_command(parser.add_subparsers(dest="command", required=True))
    return parser


@contextmanager
def sigterm_as_interrupt(active: bool):
    """While a run trains, a SIGTERM (a scheduler's stop, a dashboard cancel that timed out) ends it
    as Ctrl-C does: the trainer keeps its checkpoint and the recorder writes how the run ended."""
    import signal
    import threading

    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    light = {"dashboard": dashboard_parser, "job": job_parser}.get(argv[0] if argv else "")
    args = (light or build_parser)().parse_args(argv)
    trains = args.command in ("train-teacher", "distill")
    try:
        if trains:
            from .distributed import init_process_group

            init_process_group()
        with sigterm_as_interrupt(trains or args.command == "job"):
            code = args.func(args)
        if trains:
            from .distributed import leave_process_group

            leave_process_group()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's error boundary: a message, never a traceback
        from .failures import explain

        failure = explain(e)
        print(f"error: {failure.message}", file=sys.stderr)
        return 2 if failure.expected else 1
    finally:
        if trains:
            from .distributed import abandon_process_group

            abandon_process_group()  # after an error under torchrun: no rank waits for the others
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
