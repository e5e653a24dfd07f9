"""Tensorforce's public helpers (`tensorforce.util`) that user code calls.

Environments and scripts written for Tensorforce use a few of its `util`
functions, mostly to check an action's type the way its Runner delivers
it (Python scalars for shape-() actions, numpy arrays of these dtypes
otherwise). They are provided under the same names; the rest of
Tensorforce's `util` is internal to its TensorFlow graph code.

Example:

>>> from kerasrl import util
>>> util.np_dtype('int'), util.py_dtype('float'), util.product((2, 3))
(<class 'numpy.int64'>, <class 'float'>, 6)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kerasrl.errors import ArgumentError
from kerasrl.specs import NP_DTYPES

#: Tensorforce's small constant for numerical safety.
epsilon = 1e-6

#: Spec type -> numpy dtype of its values (`'long'` is Tensorforce's alias of int).
np_dtype_mapping: dict[str, type] = dict(NP_DTYPES, long=NP_DTYPES["int"])

_PY_DTYPES = {"bool": bool, "int": int, "long": int, "float": float}


def np_dtype(dtype: str) -> type:
    """The numpy dtype of values of a spec type.

    Args:
        dtype: `'bool'`, `'int'` (or `'long'`) or `'float'`.

    Returns:
        `np.bool_`, `np.int64` or `np.float32`.

    Raises:
        ArgumentError: for another type.
    """
    return _lookup(np_dtype_mapping, dtype, "util.np_dtype")


def py_dtype(dtype: str) -> type:
    """The Python type of a shape-() value of a spec type (as the Runner passes it).

    Args:
        dtype: `'bool'`, `'int'` (or `'long'`) or `'float'`.

    Returns:
        `bool`, `int` or `float`.

    Raises:
        ArgumentError: for another type.
    """
    return _lookup(_PY_DTYPES, dtype, "util.py_dtype")


def _lookup(table: dict[str, type], dtype: Any, where: str) -> type:
    if dtype not in table:
        raise ArgumentError.invalid("dtype", f"one of {sorted(table)}", dtype, where=where)
    return table[dtype]


def is_iterable(x: Any) -> bool:
    """Whether `x` is iterable and not a string (Tensorforce's test)."""
    return not isinstance(x, str) and isinstance(x, Iterable)


def product(xs: Iterable[int], empty: int = 1) -> int:
    """The product of `xs` (`empty` for none), e.g. the size of a shape."""
    result = None
    for x in xs:
        result = x if result is None else result * x
    return empty if result is None else result
