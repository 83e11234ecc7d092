"""One widget per run option, derived from the option's own declaration: its choices (a registry)
make a selectbox, its declared range bounds a number input, and its default and help text come
from the config dataclass, so a page restates none of them."""

from __future__ import annotations

import math

from msd_core.options import LIST_CHOICES, choices, default, field_at, help_text


def float_step(value: float) -> float:
    """A number input's step: a tenth of the default's order of magnitude (0.01 for a default of 0)."""
    return 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value else 0.01


def option_input(container, config_cls, path: str, *, label: str | None = None, value=None, disabled: bool = False,
                 key_prefix: str = "option-"):
    """A widget in ``container`` for the option at ``path`` (``"distill.meta_lr"``) of ``config_cls``,
    labelled ``label`` (default: the field's name), set to its default (``value``: another config's
    default for it, a ``QuickRun``'s, say); returns the chosen value. Its choices, range and help come
    from the field: inclusive bounds (``at_least``/``at_most``) limit the input, strict ones
    (``above``/``below``) are checked when the run is launched (``check_ranges``), with a message
    naming the option. An optional count (``int | None`` with a lower bound of 1) takes 0 for None
    ("all")."""
    field = field_at(config_cls, path)
    name = label or path.split(".")[-1]
    value = default(config_cls, path) if value is None else value
    tip, key = help_text(config_cls, path), f"{key_prefix}{path}"
    options = choices(path)
    listed = LIST_CHOICES.get(path)
    if listed is not None:  # a comma-separated list of these, "none" for none
        picked = container.multiselect(name, listed(), default=[v for v in str(value).split(",") if v in listed()],
                                       help=tip, key=key, disabled=disabled)
        return ",".join(picked) or "none"
    if options is not None:
        return container.selectbox(name, options, index=options.index(value), help=tip, key=key, disabled=disabled)
    low, high = input_bounds(field)
    kind = str(field.type).split("|")[0].strip()
    if kind == "bool":
        return container.checkbox(name, value, help=tip, key=key, disabled=disabled)
    if kind == "str":
        return container.text_input(name, value, help=tip, key=key, disabled=disabled)
    if kind == "int":
        if "None" in str(field.type):  # an optional count: 0 stands for None
            chosen = int(container.number_input(name, 0, None if high is None else int(high), int(value or 0), 1,
                                                help=f"{tip} (0: all)", key=key, disabled=disabled))
            return chosen or None
        return int(container.number_input(name, None if low is None else int(low), None if high is None else int(high),
                                          int(value), 1, help=tip, key=key, disabled=disabled))
    return float(container.number_input(name, None if low is None else float(low),
                                        None if high is None else float(high), float(value), float_step(value),
                                        format="%g", help=tip, key=key, disabled=disabled))


def input_bounds(field) -> tuple[float | None, float | None]:
    """The inclusive bounds a number input of ``field`` takes: its ``at_least`` and ``at_most`` (strict
    bounds are checked at launch, since a number input cannot exclude its end)."""
    bounds = field.metadata.get("range", {})
    return bounds.get("at_least"), bounds.get("at_most")
