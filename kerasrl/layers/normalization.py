"""Normalization and preprocessing layers: `linear_normalization`, `clipping`,
`instance_normalization`, `batch_normalization`, `exponential_normalization`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from kerasrl.errors import ArgumentError
from kerasrl.layers import base
from kerasrl.specs import BOUND_INFINITY


def _bound_array(value: Any, argument: str, where: str) -> np.ndarray:
    if isinstance(value, bool):
        raise ArgumentError.invalid(argument, "a number or an array of numbers", value, where)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArgumentError.invalid(
            argument, "a number or an array of numbers", value, where
        ) from None
    if np.isnan(array).any():
        raise ArgumentError.invalid(argument, "bounds without NaN", value, where)
    return array


def _config_value(array: np.ndarray) -> Any:
    """A scalar when all entries agree, else a nested list (JSON-friendly)."""
    flat = np.unique(array)
    if array.ndim == 0 or flat.size == 1:
        return float(flat[0])
    return array.tolist()


@base.serializable
class LinearNormalization(keras.layers.Layer):
    """Clips to `[min_value, max_value]`, then maps linearly onto [-2, 2] (Tensorforce `linear_normalization`).

    Computes `4 * (clip(x, min, max) - min) / (max - min) - 2` per component.
    Components whose bounds are infinite (or have an absolute value of at
    least 1e6, which counts as unbounded) pass through unchanged; components
    with `min == max` give 0. In a network the bounds default to the state's
    `min_value` / `max_value`.

    Args:
        min_value: Lower bound(s): a number or an array broadcastable to the
            per-sample shape.
        max_value: Upper bound(s), likewise.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ArgumentError: for missing or invalid bounds, or `min_value > max_value`.

    Example:

    >>> layer = LinearNormalization(min_value=[0.0, -1.0], max_value=[1.0, 1.0])
    >>> keras.ops.convert_to_numpy(layer(np.array([[0.5, 1.0]]))).tolist()
    [[0.0, 2.0]]
    """

    TYPE = "linear_normalization"

    def __init__(self, min_value: Any = None, max_value: Any = None, **kwargs: Any):
        location = base.where(kwargs, self.TYPE)
        for argument, value in (("min_value", min_value), ("max_value", max_value)):
            if value is None:
                raise ArgumentError(
                    f"Missing argument '{argument}' of {location}: expected a number or an "
                    "array (in a network, the input state must have bounds)."
                )
        low = _bound_array(min_value, "min_value", location)
        high = _bound_array(max_value, "max_value", location)
        try:
            low, high = np.broadcast_arrays(low, high)
        except ValueError:
            raise ArgumentError.invalid(
                "max_value", f"an array broadcastable with min_value {low.shape}", max_value,
                location,
            ) from None
        if np.any(low > high):
            raise ArgumentError.invalid("max_value", f">= min_value {min_value!r}", max_value,
                                        location)
        super().__init__(**kwargs)
        self.min_value = low.copy()
        self.max_value = high.copy()
        bounded = (np.abs(low) < BOUND_INFINITY) & (np.abs(high) < BOUND_INFINITY)
        spread = bounded & (high > low)
        self._bounded = bounded
        self._low = np.where(bounded, low, 0.0).astype(np.float32)
        self._high = np.where(bounded, high, 1.0).astype(np.float32)
        self._scale = np.where(spread, 4.0 / np.where(spread, high - low, 1.0), 0.0)
        self._scale = self._scale.astype(np.float32)
        self._offset = np.where(spread, -2.0, 0.0).astype(np.float32)

    def build(self, input_shape: tuple) -> None:
        try:
            np.broadcast_shapes(self._low.shape, tuple(1 if d is None else d for d in input_shape))
        except ValueError:
            raise ArgumentError.invalid(
                "min_value/max_value", f"bounds broadcastable to the input {tuple(input_shape)}",
                self._low.shape, f"layer '{self.name}'",
            ) from None

    def call(self, inputs: Any) -> Any:
        x = base.as_float(inputs, self.compute_dtype)
        clipped = ops.minimum(ops.maximum(x, self._low), self._high)
        y = ops.add(ops.multiply(ops.subtract(clipped, self._low), self._scale), self._offset)
        if self._bounded.all():
            return y
        return ops.where(self._bounded, y, x)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "min_value": _config_value(self.min_value),
            "max_value": _config_value(self.max_value),
        }


@base.serializable
class Clipping(keras.layers.Layer):
    """Clips values to `[lower, upper]` (Tensorforce `clipping`).

    Args:
        lower: Lower bound, or None for none.
        upper: Upper bound, or None for none (at least one must be given).
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ArgumentError: for no bounds, or `lower > upper`.

    Example:

    >>> tuple(Clipping(lower=-1.0, upper=1.0)(keras.ops.ones((2, 3)) * 5.0).shape)
    (2, 3)
    """

    TYPE = "clipping"

    def __init__(self, lower: float | None = None, upper: float | None = None, **kwargs: Any):
        location = base.where(kwargs, self.TYPE)
        if lower is None and upper is None:
            raise ArgumentError.invalid(
                "lower/upper", "at least one bound", (lower, upper), location
            )
        if lower is not None:
            lower = base.check_float(lower, "lower", location)
        if upper is not None:
            upper = base.check_float(upper, "upper", location)
        if lower is not None and upper is not None and lower > upper:
            raise ArgumentError.invalid("upper", f">= lower ({lower})", upper, location)
        super().__init__(**kwargs)
        self.lower = lower
        self.upper = upper

    def call(self, inputs: Any) -> Any:
        x = inputs
        if self.lower is not None:
            x = ops.maximum(x, ops.cast(self.lower, x.dtype))
        if self.upper is not None:
            x = ops.minimum(x, ops.cast(self.upper, x.dtype))
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "lower": self.lower, "upper": self.upper}


def _check_axes(axes: Any, where: str) -> tuple[int, ...] | None:
    if axes is None:
        return None
    if isinstance(axes, int) and not isinstance(axes, bool):
        axes = (axes,)
    if not isinstance(axes, (list, tuple)) or not all(
        isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in axes
    ):
        raise ArgumentError.invalid(
            "axes", "a sequence of per-sample axes (ints >= 0, batch axis excluded)", axes, where
        )
    return tuple(axes)


class _Normalization(keras.layers.Layer):
    """Shared arguments and arithmetic of the moment-based normalizations."""

    TYPE = "normalization"

    def __init__(
        self, axes: Any = None, only_mean: bool = False, min_variance: float = 1e-4,
        **kwargs: Any,
    ):
        location = base.where(kwargs, self.TYPE)
        axes = _check_axes(axes, location)
        only_mean = base.check_bool(only_mean, "only_mean", location)
        min_variance = base.check_float(min_variance, "min_variance", location, 0.0)
        super().__init__(**kwargs)
        self.axes = axes
        self.only_mean = only_mean
        self.min_variance = min_variance

    def _sample_axes(self, rank: int) -> tuple[int, ...]:
        """Per-sample axes to normalize over, checked against the per-sample `rank`."""
        axes = self._default_axes(rank) if self.axes is None else self.axes
        if any(a >= rank for a in axes):
            raise ArgumentError.invalid(
                "axes", f"per-sample axes < {rank}", list(axes), f"layer '{self.name}'"
            )
        return axes

    def _default_axes(self, rank: int) -> tuple[int, ...]:
        return tuple(range(rank))

    def _normalize(self, x: Any, mean: Any, variance: Any) -> Any:
        x = x - ops.stop_gradient(mean)
        if self.only_mean:
            return x
        return x * ops.stop_gradient(ops.rsqrt(ops.maximum(variance, self.min_variance)))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "axes": None if self.axes is None else list(self.axes),
            "only_mean": self.only_mean,
            "min_variance": self.min_variance,
        }


@base.serializable
class InstanceNormalization(_Normalization):
    """Normalizes each sample by its own mean and variance (Tensorforce `instance_normalization`).

    Args:
        axes: Per-sample axes (batch axis excluded) to compute the moments
            over (default: all).
        only_mean: Subtract the mean only.
        min_variance: Lower bound of the variance.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(InstanceNormalization()(keras.ops.ones((2, 3))).shape)
    (2, 3)
    """

    TYPE = "instance_normalization"

    def call(self, inputs: Any) -> Any:
        x = base.as_float(inputs, self.compute_dtype)
        axes = tuple(1 + a for a in self._sample_axes(len(x.shape) - 1))
        if not axes:
            return x
        mean = ops.mean(x, axis=axes, keepdims=True)
        variance = ops.var(x, axis=axes, keepdims=True)
        return self._normalize(x, mean, variance)


@base.serializable
class BatchNormalization(_Normalization):
    """Normalizes by the moments over the batch (Tensorforce `batch_normalization`).

    The moments are those of the current batch (and of `axes`); nothing is
    stored. Tensorforce meant it for return and advantage processing.

    Args:
        axes: Extra per-sample axes to compute the moments over (default
            none: only the batch axis).
        only_mean: Subtract the mean only.
        min_variance: Lower bound of the variance.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(BatchNormalization()(keras.ops.ones((4, 3))).shape)
    (4, 3)
    """

    TYPE = "batch_normalization"

    def _default_axes(self, rank: int) -> tuple[int, ...]:
        return ()

    def call(self, inputs: Any) -> Any:
        x = base.as_float(inputs, self.compute_dtype)
        axes = (0,) + tuple(1 + a for a in self._sample_axes(len(x.shape) - 1))
        mean = ops.mean(x, axis=axes, keepdims=True)
        variance = ops.var(x, axis=axes, keepdims=True)
        return self._normalize(x, mean, variance)


@base.serializable
class ExponentialNormalization(_Normalization):
    """Normalizes by exponential moving averages of mean and variance (Tensorforce `exponential_normalization`).

    The moving moments are non-trainable weights (`moving_mean`,
    `moving_variance`, and a flag `after_first_call`). They are updated only
    when the layer is called with `training=True`: the first such call sets
    them to the batch moments, later calls blend them in with weight
    `1 - decay ** batch_size`. Calls with `training=False`/None use the stored
    moments unchanged (Tensorforce: updated in non-independent act). Under
    `model.stateless_call`, the updated values come back in the returned
    non-trainable variables.

    Args:
        decay: Decay rate in [0, 1] (required).
        axes: Per-sample axes (batch axis excluded) over which the moments are
            shared (default: all but the last axis).
        only_mean: Subtract the mean only.
        min_variance: Lower bound of the variance.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> layer = ExponentialNormalization(decay=0.99)
    >>> tuple(layer(keras.ops.ones((4, 3)), training=True).shape)
    (4, 3)
    """

    TYPE = "exponential_normalization"

    def __init__(self, decay: float, **kwargs: Any):
        decay = base.check_float(decay, "decay", base.where(kwargs, self.TYPE), 0.0, 1.0)
        super().__init__(**kwargs)
        self.decay = decay

    def _default_axes(self, rank: int) -> tuple[int, ...]:
        return tuple(range(rank - 1))

    def build(self, input_shape: tuple) -> None:
        rank = len(input_shape) - 1
        axes = self._sample_axes(rank)
        shape = (1,) + tuple(1 if a in axes else input_shape[1 + a] for a in range(rank))
        if None in shape:
            raise ArgumentError.invalid(
                "input shape", "known sizes of the axes that are not normalized over",
                tuple(input_shape), f"layer '{self.name}'",
            )
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=shape, initializer="zeros", trainable=False
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=shape, initializer="ones", trainable=False
        )
        self.after_first_call = self.add_weight(
            name="after_first_call", shape=(), initializer="zeros", trainable=False
        )

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = base.as_float(inputs, self.compute_dtype)
        if not training:
            return self._normalize(x, self.moving_mean, self.moving_variance)
        axes = (0,) + tuple(1 + a for a in self._sample_axes(len(x.shape) - 1))
        batch_size = ops.cast(ops.shape(x)[0], x.dtype)
        decay = ops.power(ops.cast(self.decay, x.dtype), batch_size)
        first = self.after_first_call < 0.5
        mean = ops.mean(x, axis=axes, keepdims=True)
        mean = ops.where(first, mean, decay * self.moving_mean + (1.0 - decay) * mean)
        variance = ops.mean(ops.square(x - mean), axis=axes, keepdims=True)
        variance = ops.where(
            first, variance, decay * self.moving_variance + (1.0 - decay) * variance
        )
        self.moving_mean.assign(mean)
        self.moving_variance.assign(variance)
        self.after_first_call.assign(1.0)
        return self._normalize(x, mean, variance)

    def get_config(self) -> dict:
        return {**super().get_config(), "decay": self.decay}
