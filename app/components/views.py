"""Small streamlit widgets shared by pages (drawing only; data comes from msd_core)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from msd_core.engine.evaluate import headline
from msd_core.failures import explain
from msd_core.paths import display_path  # noqa: F401 - re-exported for the pages


def show_error(e: Exception) -> None:
    """A user-facing error: what went wrong and what to do, never a traceback (unexpected ones
    are logged, and the message says where)."""
    st.error(explain(e).message, icon=":material/error:")


def example_cards(records: list[dict], columns: int = 4) -> None:
    """A grid of examples: image, text, label (and reliance when known)."""
    cols = st.columns(columns)
    for i, rec in enumerate(records):
        with cols[i % columns]:
            with st.container(border=True):
                if rec["image"] is not None:
                    st.image(rec["image"], width="stretch")
                elif rec["image_error"]:
                    st.warning(rec["image_error"])
                st.markdown(target_markdown(rec) + (f" · _{rec['reliance']}_" if rec.get("reliance") else ""))
                if rec.get("text") is not None:
                    st.caption(rec["text"])
                for name, values in rec.get("extra", {}).items():
                    st.caption(f"{name}: {values}")


def target_markdown(rec: dict) -> str:
    """An example's target for a card: the class in bold; a multi-label example's labels as chips;
    a soft-target example's answers as chips with their scores, best first (none: "no answer in the
    vocabulary")."""
    if rec.get("task", "single-label") == "single-label":
        return f"**{escape_markdown(rec['label'])}**"
    if not rec["targets"]:
        return "_no answer in the vocabulary_" if rec["task"] == "soft" else "_no label_"
    if rec["task"] == "soft":
        return " ".join(f":{'green' if s >= 1 else 'orange'}-badge[{escape_markdown(a)} · {s:.2f}]"
                        for a, s in rec["targets"])
    return " ".join(f":blue-badge[{escape_markdown(label)}]" for label, _ in rec["targets"])


def teacher_metrics_table(teachers: list[dict], split: str = "test") -> pd.DataFrame:
    """One row per teacher and view: the data for the per-view bar chart and table."""
    rows = []
    for t in teachers:
        metrics = t.get("metrics", {})
        for view, m in (metrics.get(split) or {}).items():
            name, value = headline(m, metrics.get("metric"))
            rows.append({"model": short_name(t), "view": view, "value": value, "metric": name, "loss": m["loss"]})
    return pd.DataFrame(rows)


def short_name(teacher: dict) -> str:
    return f"{teacher.get('data')} · {teacher.get('preset')}"


def pick_teacher(column, teachers: list[dict], key: str | None = None) -> dict:
    """A selectbox of the usable teachers in ``column``; without one, says how to get one and
    stops the page."""
    usable = [t for t in teachers if "error" not in t]
    if not usable:
        st.info("No trained teacher yet: train one first (Overview shows how), or run `./studio` from the "
                "repository, which ships two demo teachers in assets/teachers.")
        st.stop()
    return column.selectbox("Teacher", usable, format_func=lambda t: f"{short_name(t)} — {display_path(t['path'])}",
                            key=key)


def cli_hint(command: str, folded: bool = False) -> None:
    """The command that does what the page shows. ``folded``: behind a button, for pages where it is
    secondary; a popover draws its content only when opened, so the page need not load the code
    highlighter (about 0.4 s of a first visit on a small machine)."""
    if folded:
        with st.popover("The same from the command line", icon=":material/terminal:"):
            st.code(command, language="bash", wrap_lines=True)
        return
    st.caption("The same from the command line:")
    st.code(command, language="bash", wrap_lines=True)


def escape_markdown(value) -> str:
    """``value`` shown as written: no Markdown inside it, on one line."""
    return "".join("\\" + c if c in "\\`*_[]<>|#~$" else c for c in str(value).replace("\n", " "))


def markdown_table(rows: list[dict]) -> str:
    """A few rows as a Markdown table: drawn with the page's text, where ``st.dataframe`` would
    load the data grid's code into the browser."""
    header = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(escape_markdown(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(escape_markdown(r[h]) for h in header) + " |" for r in rows]
    return "\n".join(lines)


def token_html(tokens: list[tuple[str, float]]) -> str:
    """Word pieces coloured by attribution (red: for the prediction, blue: against)."""
    import html

    lim = max((abs(s) for _, s in tokens), default=1.0) or 1.0
    spans = []
    for tok, s in tokens:
        a = min(abs(s) / lim, 1.0)
        rgb = "220,50,47" if s >= 0 else "38,139,210"
        spans.append(f'<span title="{s:+.4f}" style="background: rgba({rgb},{a:.2f}); padding: 2px 3px; '
                     f'margin: 1px; border-radius: 3px; font-family: monospace">{html.escape(tok)}</span>')
    return '<div style="line-height: 2.2">' + " ".join(spans) + "</div>"
