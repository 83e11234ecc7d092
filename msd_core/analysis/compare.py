"""Comparing finished runs: mean ± std across seeds, config differences, per-example wins."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..engine.evaluate import HEADLINES, headline
from ..data.tasks import correct, predicted_texts
from .export import metrics_summary
from .finished import data_name, group_name, run_metric, run_predictions, split_metrics


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return out


def config_diff(configs: dict[str, dict]) -> pd.DataFrame:
    """Rows: config keys whose values differ between runs; columns: runs."""
    flat = {name: flatten(c) for name, c in configs.items()}
    keys = sorted(set().union(*[set(f) for f in flat.values()])) if flat else []
    rows = []
    for k in keys:
        values = [flat[n].get(k) for n in flat]
        if len({json.dumps(v, default=str) for v in values}) > 1:
            rows.append({"setting": k, **{n: flat[n].get(k) for n in flat}})
    return pd.DataFrame(rows)


def slice_table(runs: list[dict], slices: list, correct_of) -> pd.DataFrame:
    """Per saved slice of the runs' data set and per run: accuracy on the slice's examples, per
    view, next to the accuracy on the whole split the slice was saved from (§15). ``correct_of(run,
    split)`` gives ``(ids, {view: per-example bool})`` of the run on the whole split."""
    rows = []
    for s in slices:
        for r in runs:
            if data_name(r["config"]) != s.data_name:
                continue
            ids, correct = correct_of(r, s.split)
            where = {i: k for k, i in enumerate(ids)}
            rows_of = [where[i] for i in s.ids if i in where]
            row = {"slice": s.name, "split": s.split, "size": len(s.ids), "run": r["id"], "name": r.get("name"),
                   "group": group_name(r["config"])}
            if len(rows_of) < len(s.ids):
                row["note"] = (f"{len(s.ids) - len(rows_of)} of the slice's examples are not in this run's "
                               f"{s.split} split (other data settings)")
            for view, ok in correct.items():
                row[f"{view} accuracy (whole split)"] = float(ok.mean()) if len(ok) else float("nan")
                row[f"{view} accuracy (slice)"] = float(ok[rows_of].mean()) if rows_of else float("nan")
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    views = [c for c in frame.columns if c.endswith("(slice)")]
    order = ["slice", "split", "size", "name"] + [c for v in views for c in (v.replace("(slice)", "(whole split)"), v)]
    return frame[order + [c for c in frame.columns if c not in order]]  # then run, group (and note)


def results_table(runs: list[dict], split: str = "test") -> pd.DataFrame:
    """Mean ± std across seeds of each view's headline metric (``evaluate.headline``: accuracy,
    AUROC, micro-F1 or VQA accuracy, as the data set says) and agreement, for each data set and run
    group: ``export.metrics_summary``'s numbers, as text."""
    summary = metrics_summary(runs, split)
    if summary.empty:
        return summary
    headline_of = {}
    for r in runs:
        headline_of.setdefault((data_name(r["config"]), group_name(r["config"])), run_metric(r))
    out = []
    for _, s in summary.iterrows():
        row = {"data": s["data"], "group": s["group"], "seeds": int(s["seeds"])}
        values = [c.removesuffix(" mean") for c in summary.columns if c.endswith(" mean") and pd.notna(s[c])]
        views = list(dict.fromkeys(c.split(" ", 1)[0] for c in values))
        for view in views:
            mine = {c.split(" ", 1)[1]: s[f"{c} mean"] for c in values if c.startswith(view + " ")}
            name = headline(mine, headline_of.get((s["data"], s["group"])))[0]
            for metric in dict.fromkeys([name, "agreement"]):
                if metric in mine:
                    std = s[f"{view} {metric} std"]
                    row[f"{view} {metric}"] = f"{s[f'{view} {metric} mean']:.4f}" + (
                        f" ± {std:.4f}" if pd.notna(std) else "")
        out.append(row)
    return pd.DataFrame(out)


def per_run_metrics(runs: list[dict], split: str = "test") -> pd.DataFrame:
    """Long table (run, group, seed, view, metric, value) for CSV download."""
    rows = []
    for r in runs:
        for view, m in (split_metrics(r, split) or {}).items():
            for k, v in m.items():
                rows.append({"run": r["id"], "group": group_name(r["config"]),
                             "seed": r["config"].get("train", {}).get("seed"), "split": split, "view": view,
                             "metric": k, "value": v})
    return pd.DataFrame(rows)


def default_curve(names: list[str]) -> str:
    """The logged metric Compare opens on: one every method shares, so that the curves compare like
    with like. First the full input's validation headline metric (``val/full/<metric>``), then the
    label loss ``train/ce``; ``train/loss`` only when neither was logged, since MSD's total holds its
    per-modality terms and always sits above KD's."""
    for name in [*(f"val/full/{m}" for m in HEADLINES), "train/ce", "train/loss"]:
        if name in names:
            return name
    return names[0]


def seed_bands(curves: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per step, the min and max across the given runs' curves (one group's seeds)."""
    frames = [c.set_index("step")["value"] for c in curves.values() if not c.empty]
    if len(frames) < 2:
        return {}
    joined = pd.concat(frames, axis=1).sort_index().interpolate(limit_area="inside")
    return {"band": pd.DataFrame({"x": joined.index, "lo": joined.min(axis=1), "hi": joined.max(axis=1)})}


def per_example(run_a: dict, run_b: dict, split: str = "val", device: str = "cpu") -> pd.DataFrame:
    """Predictions of two students on every example of ``split``, with the teacher's dominant
    modality (loss-drop saliency): where A is right and B wrong, and the reverse."""
    from ..data.registry import load_split
    from ..engine.teacher_cache import teacher_logits
    from ..method.saliency import dominant_modality, modality_saliency

    cfg_a = run_a["config"]
    data = DataConfig.from_dict(cfg_a["data"])
    ds = load_split(data, split)
    preds = {}
    for key, run in (("a", run_a), ("b", run_b)):
        logits, targets = run_predictions(run, ds, device)
        preds[key] = logits["full"]
    cache = teacher_logits(cfg_a["teacher"], data, ds, device=device)
    said = {key: predicted_texts(preds[key], ds.labels, ds.task) for key in preds}
    right = {key: correct(preds[key], targets, ds.task).numpy() for key in preds}
    frame = pd.DataFrame({"index": np.arange(len(ds)), "id": [e.id for e in ds.examples],
                          "label": [ds.label_text(e) for e in ds.examples],
                          "text": [e.inputs.get("text", "") for e in ds.examples],
                          "A": said["a"], "B": said["b"], "A right": right["a"], "B right": right["b"],
                          "teacher dominant": dominant_modality(modality_saliency(cache))})
    frame["outcome"] = np.select([frame["A right"] & ~frame["B right"], ~frame["A right"] & frame["B right"],
                                  frame["A right"] & frame["B right"]],
                                 ["A right, B wrong", "B right, A wrong", "both right"], "both wrong")
    return frame
