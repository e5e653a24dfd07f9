"""Shared helpers of the kerasrl layers: argument checks, activations, registration.

Every layer that a Tensorforce-style layer spec creates validates its
arguments in its constructor and raises `ArgumentError` naming the layer, the
argument, the expectation and the received value.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasrl import registry
from kerasrl.errors import ArgumentError

PACKAGE = "kerasrl"

#: Activation names accepted by `activation` arguments (Tensorforce's list).
NONLINEARITIES = (
    "crelu",
    "elu",
    "leaky-relu",
    "none",
    "relu",
    "selu",
    "sigmoid",
    "softmax",
    "softplus",
    "softsign",
    "swish",
    "tanh",
)


def serializable(cls: type) -> type:
    """Registers a layer class for Keras serialization under `kerasrl>Name`."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


def from_saved_config(cls: type, config: dict) -> Any:
    """`cls(**config)` for a config Keras read from a file, resolved in safe mode.

    Import paths in the config are refused unless registered
    (`kerasrl.register`), unless Keras' safe mode was turned off
    (`keras.saving.load_model(..., safe_mode=False)`) or kerasrl's
    (`safe_mode=False`).
    """
    from keras.src.saving import serialization_lib

    trusted = serialization_lib.in_safe_mode() is False
    with registry.safe_mode_scope(False) if trusted else registry.reading_file():
        registry.check_file_content(config, f"the Keras config of a {cls.__name__} layer",
                                    "config")
        return cls(**config)


def where(kwargs: dict, key: str) -> str:
    """Names a layer in messages, before `Layer.__init__` has set `self.name`."""
    name = kwargs.get("name")
    return f"layer '{name}'" if name else f"layer '{key}'"


def check_int(value: Any, argument: str, where: str, minimum: int = 0) -> int:
    """Returns `value` as an int >= `minimum`, or raises `ArgumentError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ArgumentError.invalid(argument, f"an int >= {minimum}", value, where)
    return int(value)


def check_ints(
    value: Any, argument: str, where: str, rank: int, minimum: int = 1
) -> int | tuple[int, ...]:
    """Accepts an int or a sequence of `rank` ints (window, stride, dilation)."""
    if isinstance(value, (list, tuple)):
        if len(value) != rank:
            raise ArgumentError.invalid(
                argument, f"an int or a sequence of {rank} ints >= {minimum}", value, where
            )
        return tuple(check_int(v, argument, where, minimum) for v in value)
    return check_int(value, argument, where, minimum)


def check_float(
    value: Any,
    argument: str,
    where: str,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_maximum: bool = False,
) -> float:
    """Returns `value` as a float within the bounds, or raises `ArgumentError`."""
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if maximum is not None:
        bounds.append(f"{'<' if exclusive_maximum else '<='} {maximum}")
    expected = "a number" + (f" {' and '.join(bounds)}" if bounds else "")
    if isinstance(value, bool):
        raise ArgumentError.invalid(argument, expected, value, where)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ArgumentError.invalid(argument, expected, value, where) from None
    if math.isnan(number) or (minimum is not None and number < minimum):
        raise ArgumentError.invalid(argument, expected, value, where)
    if maximum is not None and (number >= maximum if exclusive_maximum else number > maximum):
        raise ArgumentError.invalid(argument, expected, value, where)
    return number


def check_bool(value: Any, argument: str, where: str) -> bool:
    """Returns `value` if it is a bool, or raises `ArgumentError`."""
    if not isinstance(value, bool):
        raise ArgumentError.invalid(argument, "True or False", value, where)
    return value


def check_choice(value: Any, argument: str, where: str, choices: tuple[str, ...]) -> str:
    """Returns the lower-cased `value` if it is one of `choices`."""
    if not isinstance(value, str) or value.lower() not in choices:
        raise ArgumentError.invalid(argument, f"one of {list(choices)}", value, where)
    return value.lower()


def normalize_activation(value: Any, where: str, argument: str = "activation") -> str:
    """Returns the canonical Tensorforce name of an activation (`None` → `'none'`)."""
    if value is None:
        return "none"
    if isinstance(value, str):
        key = value.lower().replace("_", "-")
        key = {"linear": "none", "silu": "swish"}.get(key, key)
        if key in NONLINEARITIES:
            return key
    raise ArgumentError.invalid(argument, f"one of {list(NONLINEARITIES)} or None", value, where)


def apply_activation(x: Any, nonlinearity: str) -> Any:
    """Applies a (canonical) Tensorforce nonlinearity with `keras.ops`."""
    if nonlinearity == "none":
        return x
    if nonlinearity == "crelu":
        return ops.concatenate([ops.relu(x), ops.relu(-x)], axis=-1)
    if nonlinearity == "leaky-relu":
        return ops.leaky_relu(x, negative_slope=0.2)
    if nonlinearity == "swish":
        return ops.silu(x)
    if nonlinearity == "softmax":
        return ops.softmax(x, axis=-1)
    return getattr(ops, nonlinearity)(x)


def activation_output_shape(shape: tuple, nonlinearity: str) -> tuple:
    """`crelu` doubles the last axis; every other nonlinearity keeps the shape."""
    if nonlinearity == "crelu" and shape:
        last = shape[-1]
        return tuple(shape[:-1]) + (None if last is None else 2 * last,)
    return tuple(shape)


def orthogonal(scale: float, nonlinearity: str) -> keras.initializers.Initializer:
    """Tensorforce's `orthogonal` (`orthogonal-relu` for relu) weight initializer."""
    gain = scale * (math.sqrt(2.0) if nonlinearity == "relu" else 1.0)
    return keras.initializers.Orthogonal(gain=gain)


def l2(coefficient: float) -> keras.regularizers.Regularizer | None:
    """An L2 weight regularizer (`coefficient * sum(w**2)`), or None for 0."""
    return keras.regularizers.L2(coefficient) if coefficient > 0.0 else None


def as_float(x: Any, dtype: str) -> Any:
    """Casts non-float inputs (int or bool states) to the layer's compute dtype."""
    if "float" not in keras.backend.standardize_dtype(x.dtype):
        return ops.cast(x, dtype)
    return x


class TransformationMixin:
    """Shared `activation` and `dropout` handling of dense, conv and embedding layers.

    Subclasses call `_setup_transformation` after `Layer.__init__`, apply
    `_finish(x, training)` at the end of `call` and adjust their output shape
    with `_finish_shape`.
    """

    def _setup_transformation(
        self, activation: Any, dropout: Any, initialization_scale: Any,
        l2_regularization: Any, where: str,
    ) -> None:
        self.nonlinearity = normalize_activation(activation, where)
        self.dropout = check_float(dropout, "dropout", where, 0.0, 1.0, exclusive_maximum=True)
        self.initialization_scale = check_float(
            initialization_scale, "initialization_scale", where, 0.0
        )
        self.l2_regularization = check_float(l2_regularization, "l2_regularization", where, 0.0)
        self._dropout_layer = (
            keras.layers.Dropout(self.dropout, name="dropout") if self.dropout > 0.0 else None
        )

    def _finish(self, x: Any, training: Any) -> Any:
        x = apply_activation(x, self.nonlinearity)
        if self._dropout_layer is not None:
            x = self._dropout_layer(x, training=training)
        return x

    def _finish_shape(self, shape: tuple) -> tuple:
        return activation_output_shape(shape, self.nonlinearity)

    def _transformation_config(self) -> dict:
        return {
            "activation": self.nonlinearity,
            "dropout": self.dropout,
            "initialization_scale": self.initialization_scale,
            "l2_regularization": self.l2_regularization,
        }


def trainable_kwargs(kwargs: dict, vars_trainable: Any) -> dict:
    """Maps Tensorforce's `vars_trainable` onto Keras' `trainable`."""
    if vars_trainable is not None:
        kwargs["trainable"] = bool(vars_trainable)
    return kwargs
