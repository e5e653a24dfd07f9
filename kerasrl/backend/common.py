"""Pieces shared by the backend modules (`jax.py`, `tensorflow.py`, `torch.py`).

Only Keras and NumPy here: this module never imports JAX, TensorFlow or
PyTorch, so every backend module can use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

logger = logging.getLogger("kerasrl")

#: A compiled function warns once when it makes more versions than this.
#: Batches padded to powers of two from 16 to 32,768 rows make 12 versions of
#: an update at most; more mean that some input changes shape in a way the
#: padding does not catch, and each new version costs a compilation.
RECOMPILATION_WARNING = 12


class Compilations:
    """Counts the versions of one compiled function (one per new input layout).

    On JAX and TensorFlow each trace counts (a new trace is a new compiled
    version); PyTorch compiles nothing and counts the distinct input layouts
    instead, that is what the other backends would compile. Warns once, on the
    logger `kerasrl`, when the count passes `RECOMPILATION_WARNING`.

    Args:
        fn: The function being compiled.
        name: Its name in the warning (default `fn.__name__`).

    Example:
    >>> def update(batch):
    ...     return batch
    >>> counter = Compilations(update)
    >>> counter.traced()
    >>> counter.count, counter.name
    (1, 'update')
    >>> counter.called_with(([1.0, 2.0],))  # a backend that does not trace
    >>> counter.called_with(([3.0, 4.0],))  # the same layout: not counted again
    >>> counter.count
    2
    """

    def __init__(self, fn: Callable, name: str | None = None):
        self.name = name or getattr(fn, "__name__", "function")
        self.count = 0
        self._layouts: set = set()

    def traced(self) -> None:
        """Records one new compiled version."""
        self.count += 1
        if self.count == RECOMPILATION_WARNING + 1:
            logger.warning(
                "%s has been compiled %d times (once per new input shape): its inputs change "
                "shape from call to call, and every compilation costs time. Keep batch sizes "
                "constant or bounded.", self.name, self.count)

    def called_with(self, args: Any) -> None:
        """Counts the layout of a call's `args` when it is new.

        For backends that do not trace (PyTorch): each new layout is what a
        tracing backend would compile.
        """
        layout = _layout(args)
        if layout not in self._layouts:
            self._layouts.add(layout)
            self.traced()


def _layout(value: Any) -> Any:
    """The structure, shapes and dtypes of `value` (hashable; a few µs per call,
    where `keras.tree.flatten` costs about 60 µs on small argument trees)."""
    if isinstance(value, dict):
        return tuple((key, _layout(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_layout(item) for item in value)
    shape = getattr(value, "shape", None)
    return type(value) if shape is None else (tuple(shape), value.dtype)


def unique_variables(variables: Sequence[keras.Variable]) -> list[keras.Variable]:
    """`variables` without repeats (by identity), in the order first seen.

    Args:
        variables: Keras variables, possibly listed more than once.

    Returns:
        A list with each variable once.
    """
    unique: dict[int, keras.Variable] = {}
    for variable in variables:
        unique.setdefault(id(variable), variable)
    return list(unique.values())


def set_keras_seed(seed: int) -> None:
    """Seeds Python, NumPy and Keras' global seed state without importing TensorFlow.

    Args:
        seed: The seed (an int).
    """
    import random

    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


def call_model(model: keras.Model, inputs: Any, training: bool = False) -> Any:
    """Runs `model` on `inputs` (inside compiled functions the call is traced once)."""
    return model(inputs, training=training)


class DirectEngine:
    """Base of the engines whose functions read and assign the Keras variables directly.

    TensorFlow's and PyTorch's engines: there is no copy of the values to
    keep in step with the variables, so `reload` and `sync` do nothing.

    Args:
        variables: All Keras variables the functions read or write
            (duplicates are removed).
    """

    def __init__(self, variables: Sequence[keras.Variable]):
        self.variables = unique_variables(variables)

    def reload(self) -> None:
        """No-op: the functions use the variables directly."""

    def sync(self) -> None:
        """No-op: the functions use the variables directly."""

    def assign(self, variable: keras.Variable, value: Any) -> None:
        """Sets one variable's value from the host (e.g. a scheduled learning rate)."""
        variable.assign(value)


def polyak_update(pairs: Sequence[tuple[keras.Variable, keras.Variable]], weight: Any) -> None:
    """`target ← weight·online + (1-weight)·target` for `(target, online)` variable pairs.

    Inside a compiled function; `weight` is a scalar tensor (0 leaves the
    targets unchanged, 1 copies). Non-float variables are copied when
    `weight > 0`.

    Args:
        pairs: `(target, online)` Keras variables of equal shapes.
        weight: The interpolation weight, a scalar.
    """
    from keras import ops

    for target, online in pairs:
        if "float" in str(target.dtype):
            w = ops.cast(weight, target.dtype)
            value = w * ops.stop_gradient(online.value) + (1.0 - w) * target.value
        else:
            value = ops.where(weight > 0, online.value, target.value)
        target.assign(value)
