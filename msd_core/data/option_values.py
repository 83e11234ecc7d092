"""Checked reads of loader options (``DataConfig.options``), before a loader does any work.

A bad value is a ``ConfigError`` naming the loader, the option, what is allowed and the
value: ``synthetic: option n must be an integer ≥ 1, got -5``. Values come from JSON
(``--data-option n=500``), the pages or Python, so a number written as a string
(``"500"``) and ``"true"``/``"false"`` are accepted too.
"""

from __future__ import annotations

import math

from ..errors import ConfigError

_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


def _allowed(kind: str, lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{kind} from {lo:g} to {hi:g}"
    if lo is not None:
        return f"{kind} ≥ {lo:g}"
    return f"{kind} ≤ {hi:g}" if hi is not None else kind


def _fail(owner: str, key: str, allowed: str, value) -> ConfigError:
    return ConfigError(f"{owner}: option {key} must be {allowed}, got {value!r}")


def bool_option(owner: str, options: dict, key: str, default: bool) -> bool:
    """``options[key]`` as a boolean (true/false), ``default`` when absent."""
    value = options.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _fail(owner, key, "true or false", value)


def int_option(owner: str, options: dict, key: str, default: int, lo: int | None = None,
               hi: int | None = None) -> int:
    """``options[key]`` as an integer in ``lo..hi`` (either may be None), ``default`` when absent."""
    value = options.get(key, default)
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            pass
    if number is None or (lo is not None and number < lo) or (hi is not None and number > hi):
        raise _fail(owner, key, _allowed("an integer", lo, hi), value)
    return number


def float_option(owner: str, options: dict, key: str, default: float, lo: float | None = None,
                 hi: float | None = None) -> float:
    """``options[key]`` as a finite number in ``[lo, hi]`` (either may be None), ``default`` when absent."""
    value = options.get(key, default)
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
    if (number is None or not math.isfinite(number) or (lo is not None and number < lo)
            or (hi is not None and number > hi)):
        raise _fail(owner, key, _allowed("a number", lo, hi), value)
    return number
