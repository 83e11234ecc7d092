"""A finished run, as the analysis modules read it (one home for the noun): what it is (its group
of seeds, its data setting, its seed), what its folder records (metrics.json: final metrics per
split and view, the headline metric, the teacher's population saliency) and what its final model
predicts on a data set. Compare, significance, export, the ledger and the catalog import it; it
imports none of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import DataConfig, DistillConfig
from ..data.tasks import example_scores, full_credit
from ..method.objectives import OBJECTIVES
from ..paths import METRICS_FILE


def group_name(config: dict) -> str:
    """What a run is, seed aside: method (+ weighting, λ) and student preset."""
    d = config.get("distill", {})
    method = d.get("method", config.get("kind", "?"))
    weighted = method in OBJECTIVES and OBJECTIVES.get(method).weighted
    extra = f" {d.get('weighting')} λ={d.get('lam')}" if weighted else ""
    return f"{method}{extra} · {config.get('model', {}).get('preset')}{slice_label(config.get('data', {}))}"


def slice_label(data: dict) -> str:
    """`` · slice NAME only``, `` · slice NAME ×k`` or `` · slice NAME excluded`` for a run trained
    with a slice (§15), else ''."""
    if not data.get("slice"):
        return ""
    mode = data.get("slice_mode", "only")
    how = {"only": "only", "exclude": "excluded"}.get(mode, f"×{data.get('slice_weight')}")
    return f" · slice {Path(data['slice']).stem} {how}"


def seed_of(run: dict):
    return run["config"].get("train", {}).get("seed")


def data_name(config: dict) -> str:
    """The data set a run used (its name, and its folder for folder data sets)."""
    data = config.get("data", {})
    return data.get("name", "?") + (f" ({Path(data['root']).name})" if data.get("root") else "")


def data_setting(config: dict) -> str:
    """The data set and what changes which examples a run trains and is tested on (loader options,
    ``--max-train``, ``--max-eval``): runs pair up only within one setting, so that two regimes of one
    data set are never compared seed against seed."""
    data = config.get("data", {})
    parts = [data_name(config)]
    if data.get("options"):
        parts.append(", ".join(f"{k}={v}" for k, v in sorted(data["options"].items())))
    if data.get("max_train_examples"):
        parts.append(f"{data['max_train_examples']:,} training examples")
    if data.get("max_eval_examples"):
        parts.append(f"at most {data['max_eval_examples']:,} test examples")
    return " · ".join(parts)


def eval_data(data: dict) -> dict:
    """A run's data config without its training slice: the splits it is evaluated on, whole."""
    return {**data, "slice": None, "slice_hash": None} if data.get("slice") else dict(data)


def split_metrics(run: dict, split: str) -> dict | None:
    """``{view: {metric: value}}`` of a finished run on ``split`` (None when it has no metrics.json)."""
    path = Path(run["out_dir"] or "") / METRICS_FILE
    return json.loads(path.read_text()).get(split, {}) if path.is_file() else None


def run_metric(run: dict) -> str | None:
    """The headline metric a finished run's metrics.json names (its data set's), or None."""
    path = Path(run["out_dir"] or "") / METRICS_FILE
    return json.loads(path.read_text()).get("metric") if path.is_file() else None


def metric_of(run: dict, split: str, view: str, metric: str) -> float | None:
    value = ((split_metrics(run, split) or {}).get(view) or {}).get(metric)
    return None if value is None else float(value)


def population_saliency_of(run: dict) -> dict[str, float]:
    """The teacher's population saliency ``S`` recorded in the run's metrics.json (§5.5)."""
    path = Path(run.get("out_dir") or "") / METRICS_FILE
    return json.loads(path.read_text()).get("population_saliency") or {} if path.is_file() else {}


def run_predictor(run: dict, ds, device: str = "cpu"):
    """A function of ``ds`` or a part of it (``ds.subset``) to ``({view: logits}, targets)`` of a
    student run's final model, loaded once (views ``full`` and ``only:m`` formed with the run's
    removal, as evaluation forms them; ``mean`` removal fills in the whole ``ds``'s mean). A part
    that starts at a multiple of ``PREDICT_BATCH`` is predicted in the batches the whole is, so
    its logits are the whole's rows; not under ``swap``, whose partners follow one random stream
    through the whole."""
    from ..data.collate import Collator
    from ..data.views import named_views
    from ..engine.checkpoint import check_fits, load_model, model_file
    from ..engine.predict import dataset_fill, predict_views
    from ..errors import CheckpointError

    ckpt = model_file(Path(run.get("out_dir") or ""))
    if not ckpt.is_file():
        raise CheckpointError(f"{ckpt}: run {run['id']} has no model file — only finished runs can be exported")
    model, meta = load_model(ckpt, device)
    check_fits(meta, ds, ckpt)
    data = DataConfig.from_dict(run["config"]["data"])
    removal = run["config"].get("distill", {}).get("removal", DistillConfig().removal)
    collator = Collator.for_model(ds, data, model)
    fill = dataset_fill(ds, collator) if removal == "mean" else None
    views = named_views(ds.modality_names)
    return lambda part: predict_views(model, part, collator, device, views, removal=removal, fill=fill)


def run_predictions(run: dict, ds, device: str = "cpu") -> tuple[dict, "object"]:
    """``({view: N x C logits}, N targets)`` of a student run's final model on ``ds``
    (``run_predictor`` on the whole)."""
    return run_predictor(run, ds, device)(ds)


def views_scores(run: dict, ds) -> dict[str, np.ndarray]:
    """``{view: per-example score}``: how right the run's final model is on each example of ``ds``
    on each view (``full`` and ``only:m``, formed as evaluation forms them): ``data.tasks.
    example_scores``, whose mean is the accuracy, VQA accuracy or exact match (docs/METHOD.md §13.2)."""
    logits, targets = run_predictions(run, ds)
    return {view: example_scores(z, targets, ds.task).numpy() for view, z in logits.items()}


def views_correct(run: dict, ds) -> dict[str, np.ndarray]:
    """``{view: per-example bool}``: whether the run's final model is right on each example of
    ``ds`` on each view (``full`` and ``only:m``, formed as evaluation forms them)."""
    return {view: full_credit(s) for view, s in views_scores(run, ds).items()}
