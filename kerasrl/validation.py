"""Checks of numeric arguments, shared by every constructor that takes one.

Each check returns the value as a plain Python `int`/`float`, or raises
`ArgumentError` naming the argument, the expected range and the value. Bools
are never numbers here (`True` is not a batch size), NaN is never in range,
and infinities only where a bound is itself infinite and inclusive.

Example:

>>> check_float(0.99, "discount", low=0.0, high=1.0)
0.99
>>> check_int(64, "batch_size", minimum=1)
64
>>> check_float(float("nan"), "discount", low=0.0, high=1.0)
Traceback (most recent call last):
...
kerasrl.errors.ArgumentError: Invalid argument 'discount': expected a float in [0, 1], received nan.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kerasrl.errors import ArgumentError, KerasRLError


def _bound(value: float) -> str:
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


def describe_range(low: float | None = None, high: float | None = None,
                   low_open: bool = False, high_open: bool = False,
                   kind: str = "a float") -> str:
    """The words for a range, e.g. `'a float in (0, 1]'` or `'a float > 0'`."""
    if low is not None and high is not None:
        return (f"{kind} in {'(' if low_open else '['}{_bound(low)}, "
                f"{_bound(high)}{')' if high_open else ']'}")
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {_bound(low)}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {_bound(high)}"
    return f"a finite {kind.removeprefix('a ').removeprefix('an ')}"


def in_range(value: float, low: float | None = None, high: float | None = None,
             low_open: bool = False, high_open: bool = False) -> bool:
    """Whether `value` lies in the range (NaN never does; infinities only at an infinite bound)."""
    if math.isnan(value):
        return False
    if math.isinf(value) and not (
            (value > 0 and high is not None and math.isinf(high) and not high_open)
            or (value < 0 and low is not None and math.isinf(low) and not low_open)):
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return not (high is not None and (value >= high if high_open else value > high))


def is_number(value: Any) -> bool:
    """A real number (int, float or numpy scalar), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def check_float(value: Any, argument: str, low: float | None = None,
                high: float | None = None, low_open: bool = False, high_open: bool = False,
                where: str | None = None, allow_none: bool = False,
                error: type[KerasRLError] = ArgumentError) -> float | None:
    """Checks that `value` is a number in the range and returns it as a float.

    Args:
        value: The value to check.
        argument: Its name, for the message.
        low, high: Bounds (None: unbounded on that side).
        low_open, high_open: Whether the bound itself is excluded.
        where: Optional context for the message (e.g. `"agent 'ppo'"`).
        allow_none: Whether None is accepted (and returned).
        error: The `KerasRLError` subclass raised (e.g. `SaveError` for a
            field read from a checkpoint).

    Returns:
        `float(value)` (None for None when `allow_none`).

    Raises:
        ArgumentError: (or `error`) for a non-number, a bool, NaN or a value
            out of range.
    """
    if value is None and allow_none:
        return None
    if not is_number(value) or not in_range(float(value), low, high, low_open, high_open):
        expected = describe_range(low, high, low_open, high_open)
        raise error.invalid(argument, expected + (" or None" if allow_none else ""), value,
                            where=where)
    return float(value)


def check_int(value: Any, argument: str, minimum: int | None = None,
              maximum: int | None = None, where: str | None = None, allow_none: bool = False,
              error: type[KerasRLError] = ArgumentError) -> int | None:
    """Checks that `value` is an int (not a bool, not `2.5`) in `[minimum, maximum]`.

    Args:
        value: The value to check.
        argument: Its name, for the message.
        minimum, maximum: Inclusive bounds (None: unbounded).
        where: Optional context for the message.
        allow_none: Whether None is accepted (and returned).
        error: The `KerasRLError` subclass raised.

    Returns:
        `int(value)` (None for None when `allow_none`).

    Raises:
        ArgumentError: (or `error`) for a non-int or a value out of range.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or (
            minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if minimum == 1 and maximum is None:
            expected = "a positive int"
        elif minimum == 0 and maximum is None:
            expected = "a non-negative int"
        else:
            expected = describe_range(minimum, maximum, kind="an int")
        raise error.invalid(argument, expected + (" or None" if allow_none else ""), value,
                            where=where)
    return int(value)


__all__ = ["check_float", "check_int", "describe_range", "in_range", "is_number"]
