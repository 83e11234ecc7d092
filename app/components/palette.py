"""The colours and view names every chart shares, whichever library draws it."""

from __future__ import annotations

VIEW_COLOURS = {"full": "#4C78A8", "only:image": "#F58518", "only:text": "#54A24B", "only:tabular": "#B279A2"}
OTHER_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"]


def other_colour(i: int) -> str:
    """The ``i``-th colour of a series with no colour of its own."""
    return OTHER_COLOURS[i % len(OTHER_COLOURS)]


def view_colour(view: str, i: int = 0) -> str:
    """One colour per view on every chart (``full``, ``only:image``, ...); else the ``i``-th other."""
    return VIEW_COLOURS.get(view, other_colour(i))


def modality_colour(modality: str, i: int = 0) -> str:
    """One colour per modality on every chart (its single-modality view's colour)."""
    return view_colour(f"only:{modality}", i)


def view_label(view: str) -> str:
    """``full`` -> full input, ``only:image`` -> image only, ``without:text`` -> without text."""
    if view == "full":
        return "full input"
    if view.startswith("only:"):
        return view.removeprefix("only:") + " only"
    return view.replace(":", " ")
