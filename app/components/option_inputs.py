"""One widget per run option, derived from the option's own declaration: its choices (a registry)
make a selectbox, its declared range bounds a number input, and its default and help text come
from the config dataclass, so a page restates none of them."""

from __future__ import annotations

import math

from msd_core.options import LIST_CHOICES, choices, default, field_at, help_text


def float_step(value: float) -> float:
    """A number input's step: a tenth of the default's order of magnitude (0.01 for a default of 0)."""
    return 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value else 0.01


def option_input(container, config_cls, path: str, *, disabled: bool = False):
    """A widget in ``container`` for the option at ``path`` (``"distill.meta_lr"``) of ``config_cls``,
    labelled with the field's name, set to its default; returns the chosen value. Inclusive bounds
    (``at_least``/``at_most``) limit the input; strict ones (``above``/``below``) are checked when the
    run is launched (``check_ranges``), with a message naming the option."""
    name = path.split(".")[-1]
    value, tip, key = default(config_cls, path), help_text(config_cls, path), f"option-{path}"
    options = choices(path)
    listed = LIST_CHOICES.get(path)
    if listed is not None:  # a comma-separated list of these, "none" for none
        picked = container.multiselect(name, listed(), default=[v for v in str(value).split(",") if v in listed()],
                                       help=tip, key=key, disabled=disabled)
        return ",".join(picked) or "none"
    if options is not None:
        return container.selectbox(name, options, index=options.index(value), help=tip, key=key, disabled=disabled)
    bounds = field_at(config_cls, path).metadata.get("range", {})
    if isinstance(value, bool):
        return container.checkbox(name, value, help=tip, key=key, disabled=disabled)
    if isinstance(value, int):
        low, high = bounds.get("at_least"), bounds.get("at_most")
        return int(container.number_input(name, None if low is None else int(low), None if high is None else int(high),
                                          value, 1, help=tip, key=key, disabled=disabled))
    low, high = bounds.get("at_least"), bounds.get("at_most")
    return float(container.number_input(name, None if low is None else float(low),
                                        None if high is None else float(high), float(value), float_step(value),
                                        format="%g", help=tip, key=key, disabled=disabled))
