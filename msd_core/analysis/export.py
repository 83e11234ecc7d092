"""Exports of finished runs: a per-example table (Parquet or CSV) and the metrics table (CSV,
Markdown, LaTeX). The Compare page's download buttons and ``msd export`` call the same functions.

Per-example columns (one row per example of the split, in data-set order):

- ``index``, ``id``, ``label``;
- ``teacher/<view>/logit:<class>`` and ``teacher/<view>/pred`` for ``full``, ``only:m`` and
  ``without:m`` (the teacher cache, §9, with the runs' removal), ``teacher/sal:<m>``
  (loss-drop saliency, §5.1) and ``teacher/shapley:<m>`` (§6);
- for every run, ``<run id>/<view>/logit:<class>``, ``<run id>/<view>/pred`` and
  ``<run id>/<view>/correct`` for ``full`` and ``only:m`` (the views of §10).

The Parquet file's metadata key ``msd_export`` holds JSON: split, teacher, removal and each run's
name, group and seed. ``export`` writes the table a chunk of examples at a time (docs/METHOD.md
§9.1); the download button's ``examples_frame`` joins the chunks in memory.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from ..config import DataConfig, DistillConfig
from ..engine.evaluate import METRICS
from ..errors import ConfigError
from ..data.tasks import correct, predicted_texts
from ..fileio import atomic_write
from ..method.view_logits import chunk_rows
from .finished import data_name, group_name, run_predictor, seed_of, split_metrics

FORMATS = {"examples": ("parquet", "csv"), "table": ("csv", "md", "tex")}
TABLE_METRICS = (*dict.fromkeys(k for names in METRICS.values() for k in names), "agreement")  # higher is better
DIGITS = 4


# -- per-example -----------------------------------------------------------------------
def check_same_data(runs: list[dict]) -> None:
    """Runs exported example by example must share the data config and the teacher."""
    if not runs:
        raise ConfigError("no runs to export: pick at least one finished distillation run")
    for r in runs:
        if r.get("kind", "student") != "student" or "teacher" not in r["config"]:
            raise ConfigError(f"run {r['id']} is a {r.get('kind')} run: per-example exports take distillation "
                              f"(student) runs; export a teacher's table with msd saliency")
    first = runs[0]
    for r in runs[1:]:
        if r["config"]["data"] != first["config"]["data"]:
            raise ConfigError(f"runs {first['id']} and {r['id']} used different data ({data_name(first['config'])} "
                              f"vs {data_name(r['config'])}, or other data settings): export them separately")
        if r["config"]["teacher"] != first["config"]["teacher"]:
            raise ConfigError(f"runs {first['id']} and {r['id']} distilled different teachers: export them "
                              f"separately")


def removal_of(runs: list[dict]) -> str:
    """The removal the runs share (their students' views and the teacher's); the default when they differ."""
    found = {r["config"].get("distill", {}).get("removal", DistillConfig().removal) for r in runs}
    return found.pop() if len(found) == 1 else DistillConfig().removal


def _logit_columns(frame: dict, who: str, view: str, logits, labels: list[str], task: str, targets=None) -> None:
    z = logits.numpy()
    for j, name in enumerate(labels):
        frame[f"{who}/{view}/logit:{name}"] = z[:, j]
    frame[f"{who}/{view}/pred"] = predicted_texts(logits, labels, task)
    if targets is not None:
        frame[f"{who}/{view}/correct"] = correct(logits, targets, task).numpy()


def examples_chunks(runs: list[dict], split: str = "test", device: str = "cpu",
                    size: int | None = None) -> tuple[dict, Iterator[pd.DataFrame]]:
    """The per-example table of ``runs`` on ``split`` (see the module docstring) as its metadata
    and its frames of ``size`` consecutive examples, in order: one frame's teacher logits and
    predictions are in memory at a time (docs/METHOD.md §9.1), and the frames joined are the
    whole table. ``size`` (by default as many rows as ``chunk_rows`` allows for the teacher's and
    the runs' views) is a multiple of ``PREDICT_BATCH``, so the runs predict in the batches a pass
    over the whole split forms; under ``swap`` removal each run predicts the whole split at once,
    since its partners follow one random stream through it."""
    from ..data.registry import load_split
    from ..engine.predict import PREDICT_BATCH
    from ..engine.teacher_cache import teacher_logits
    from ..method.saliency import modality_saliency, shapley_values

    if size is not None and (size <= 0 or size % PREDICT_BATCH):
        raise ValueError(f"export chunks of {size} rows: use a positive multiple of {PREDICT_BATCH}")
    check_same_data(runs)
    cfg = runs[0]["config"]
    data = DataConfig.from_dict(cfg["data"])
    ds = load_split(data, split)
    if not len(ds):
        raise ConfigError(f"the {split} split of {data_name(cfg)} holds no examples: there is nothing to export")
    removal = removal_of(runs)
    cache = teacher_logits(cfg["teacher"], data, ds, removal=removal, subsets=True, device=device)
    shown = [view for view in cache.logits if not view.startswith("subset:")]
    if size is None:
        rows = chunk_rows(len(ds.labels), len(shown) + len(runs) * (1 + len(ds.modality_names)))
        size = max(PREDICT_BATCH, rows // PREDICT_BATCH * PREDICT_BATCH)
    per_example = {**{f"teacher/sal:{m}": v for m, v in modality_saliency(cache, "loss-drop").items()},
                   **{f"teacher/shapley:{m}": v for m, v in shapley_values(cache).items()}}
    predictors = {r["id"]: run_predictor(r, ds, device) for r in runs}
    whole = {r["id"]: predictors[r["id"]](ds) for r in runs
             if r["config"].get("distill", {}).get("removal", DistillConfig().removal) == "swap"}
    meta = {"split": split, "data": cfg["data"], "teacher": cfg["teacher"], "removal": removal,
            "runs": {r["id"]: {"name": r.get("name"), "group": group_name(r["config"]), "seed": seed_of(r)}
                     for r in runs}}

    def frame_of(start: int, part) -> pd.DataFrame:
        stop = start + len(part.ids)
        frame: dict = {"index": np.arange(start, stop), "id": part.ids,
                       "label": [ds.label_text(e) for e in ds.examples[start:stop]]}
        for view, z in part.logits.items():
            _logit_columns(frame, "teacher", view, z, ds.labels, ds.task)  # every logit is a column
        frame.update({name: v[start:stop].numpy() for name, v in per_example.items()})
        for r in runs:
            if r["id"] in whole:
                logits, targets = whole[r["id"]]
                logits, targets = {view: z[start:stop] for view, z in logits.items()}, targets[start:stop]
            else:
                logits, targets = predictors[r["id"]](ds.subset(range(start, stop)))
            for view, z in logits.items():
                _logit_columns(frame, r["id"], view, z, ds.labels, ds.task, targets)
        return pd.DataFrame(frame)

    return meta, (frame_of(start, part) for start, part in zip(range(0, len(ds), size), cache.chunks(size, shown)))


def examples_frame(runs: list[dict], split: str = "test", device: str = "cpu") -> tuple[pd.DataFrame, dict]:
    """The whole per-example table of ``runs`` on ``split`` in memory, and its metadata (for the
    Compare page's download; ``export`` writes it a chunk at a time)."""
    meta, frames = examples_chunks(runs, split, device)
    return pd.concat(list(frames), ignore_index=True), meta


def _with_meta(table, meta: dict):
    return table.replace_schema_metadata({**(table.schema.metadata or {}),
                                          b"msd_export": json.dumps(meta, default=str).encode()})


def parquet_bytes(frame: pd.DataFrame, meta: dict) -> bytes:
    """``frame`` as a Parquet file whose schema metadata holds ``meta`` under ``msd_export``."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(_with_meta(pa.Table.from_pandas(frame, preserve_index=False), meta), buf)
    return buf.getvalue()


def write_examples(meta: dict, frames: Iterable[pd.DataFrame], out: Path, fmt: str) -> tuple[int, int]:
    """Write the per-example table a frame at a time to ``out``, atomically: Parquet (a row group
    a frame, ``meta`` in the schema) or CSV. Returns its rows and columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shape = [0, 0]

    def parquet(tmp: str) -> None:
        writer = None
        try:
            for frame in frames:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, _with_meta(table, meta).schema)
                writer.write_table(table.cast(writer.schema))
                shape[:] = shape[0] + len(frame), frame.shape[1]
        finally:
            if writer is not None:
                writer.close()

    def csv(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            for frame in frames:
                frame.to_csv(f, index=False, header=shape[0] == 0)
                shape[:] = shape[0] + len(frame), frame.shape[1]

    atomic_write(out, parquet if fmt == "parquet" else csv)
    return shape[0], shape[1]


def read_export_meta(path: str | Path) -> dict:
    """The ``msd_export`` metadata of an exported Parquet file."""
    import pyarrow.parquet as pq

    return json.loads(pq.read_schema(path).metadata[b"msd_export"])


# -- metrics table ---------------------------------------------------------------------
def metrics_summary(runs: list[dict], split: str = "test") -> pd.DataFrame:
    """Mean, sample std (``ddof = 1``) and count over seeds of each view's metrics (every task kind's:
    accuracy, AUROC, the F1s, exact match, VQA accuracy) and agreement, one row per data set and run group; columns ``<view> <metric> mean`` / ``std``."""
    rows = []
    for r in runs:
        metrics = split_metrics(r, split)
        if metrics is None:
            continue
        row = {"data": data_name(r["config"]), "group": group_name(r["config"])}
        for view, m in metrics.items():
            for k in TABLE_METRICS:
                if k in m and m[k] is not None and not (isinstance(m[k], float) and math.isnan(m[k])):
                    row[f"{view} {k}"] = float(m[k])
        rows.append(row)
    per_run = pd.DataFrame(rows)
    if per_run.empty:
        return per_run
    cols = [c for c in per_run.columns if c not in ("data", "group")]
    out = []
    for (data, group), part in per_run.groupby(["data", "group"], sort=False):
        row = {"data": data, "group": group, "seeds": len(part)}
        for c in cols:
            vals = part[c].dropna().to_numpy()
            row[f"{c} mean"] = float(vals.mean()) if len(vals) else math.nan
            row[f"{c} std"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
        out.append(row)
    return pd.DataFrame(out)


def value_columns(summary: pd.DataFrame) -> list[str]:
    return [c.removesuffix(" mean") for c in summary.columns if c.endswith(" mean")]


def best_rows(summary: pd.DataFrame, col: str) -> set[int]:
    """Rows holding the best (highest) mean of ``col`` among rows of the same data set; ties all count."""
    best = set()
    for _, part in summary.groupby("data", sort=False):
        vals = part[f"{col} mean"]
        if vals.notna().any():
            top = round(vals.max(), DIGITS)
            best |= {i for i, v in vals.items() if pd.notna(v) and round(v, DIGITS) == top}
    return best


def cell(mean: float, std: float, pm: str = " ± ") -> str:
    """``mean ± std`` to ``DIGITS`` places; the plain mean with one seed; empty when missing."""
    if pd.isna(mean):
        return ""
    return f"{mean:.{DIGITS}f}" + (f"{pm}{std:.{DIGITS}f}" if pd.notna(std) else "")


LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{",
         "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "λ": r"$\lambda$", "·": r"$\cdot$",
         "±": r"$\pm$"}


def _latex(text: str) -> str:
    return "".join(LATEX.get(ch, ch) for ch in str(text))


def format_table(summary: pd.DataFrame, fmt: str) -> str:
    """The metrics table as ``csv`` (numbers: mean, std, seeds), ``md`` or ``tex`` (``mean ± std``,
    the best mean of each column within a data set in bold)."""
    if fmt not in FORMATS["table"]:
        raise ConfigError(f"table format {fmt!r}: use one of {', '.join(FORMATS['table'])}")
    if summary.empty:
        raise ConfigError("none of the runs has metrics for this split: pick finished runs")
    if fmt == "csv":
        return summary.to_csv(index=False)
    cols = value_columns(summary)
    best = {c: best_rows(summary, c) for c in cols}
    header = ["data", "method", "seeds", *cols]
    body = []
    for i, row in summary.iterrows():
        cells = []
        for c in cols:
            text = cell(row[f"{c} mean"], row[f"{c} std"], " ± " if fmt == "md" else r" $\pm$ ")
            if text and i in best[c]:
                text = f"**{text}**" if fmt == "md" else r"\textbf{" + text + "}"
            cells.append(text)
        body.append([row["data"], row["group"], str(row["seeds"]), *cells])
    if fmt == "md":
        esc = lambda s: str(s).replace("|", r"\|")  # noqa: E731
        lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in body]
        return "\n".join(lines) + "\n"
    lines = [r"\begin{tabular}{ll" + "r" * (len(header) - 2) + "}", r"\toprule",
             " & ".join(_latex(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join([_latex(r[0]), _latex(r[1]), *r[2:]]) + r" \\" for r in body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


# -- one entry point for the CLI ------------------------------------------------------
def export(runs: list[dict], what: str, fmt: str, out: Path, split: str = "test", device: str = "cpu") -> str:
    """Write ``what`` (``examples`` or ``table``) of ``runs`` to ``out`` as ``fmt``; returns a summary line."""
    if what not in FORMATS:
        raise ConfigError(f"--what {what!r}: use examples or table")
    if fmt not in FORMATS[what]:
        raise ConfigError(f"--format {fmt!r} cannot hold the {what} export: use one of {', '.join(FORMATS[what])}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if what == "examples":
        n, columns = write_examples(*examples_chunks(runs, split, device), out, fmt)
        return f"{n} examples × {columns} columns ({split})"
    summary = metrics_summary(runs, split)
    out.write_text(format_table(summary, fmt))
    return f"{len(summary)} groups × {len(value_columns(summary)) if not summary.empty else 0} metrics ({split})"


def format_from_suffix(path: Path) -> str | None:
    """``parquet``, ``csv``, ``md`` or ``tex`` from a file name's suffix (None when it says nothing)."""
    suffix = path.suffix.lower().lstrip(".")
    return {"markdown": "md", "latex": "tex", "pq": "parquet"}.get(suffix, suffix) \
        if suffix in {"parquet", "pq", "csv", "md", "markdown", "tex", "latex"} else None


__all__ = ["FORMATS", "check_same_data", "examples_chunks", "examples_frame", "export", "format_table",
           "metrics_summary", "parquet_bytes", "read_export_meta", "write_examples"]
