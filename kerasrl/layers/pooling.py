"""Pooling layers: global `pooling`, and windowed `pool1d` / `pool2d`."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from kerasrl.errors import ArgumentError
from kerasrl.layers import base

GLOBAL_REDUCTIONS = ("concat", "max", "mean", "product", "sum")
WINDOW_REDUCTIONS = ("average", "max")


@base.serializable
class Pooling(keras.layers.Layer):
    """Global pooling over all axes between the batch and the last axis (Tensorforce `pooling`).

    `(batch, *positions, channels)` becomes `(batch, channels)` with `max`,
    `mean`, `product` or `sum`, and `(batch, prod(positions) * channels)`
    with `concat` (a flatten). A `(batch, features)` input is returned
    unchanged.

    Args:
        reduction: One of `'concat'`, `'max'`, `'mean'`, `'product'`, `'sum'`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(Pooling(reduction='max')(keras.ops.ones((2, 4, 4, 8))).shape)
    (2, 8)
    """

    TYPE = "pooling"

    def __init__(self, reduction: str, **kwargs: Any):
        reduction = base.check_choice(
            reduction, "reduction", base.where(kwargs, self.TYPE), GLOBAL_REDUCTIONS
        )
        super().__init__(**kwargs)
        self.reduction = reduction

    def call(self, inputs: Any) -> Any:
        rank = len(inputs.shape)
        if rank <= 2:
            return inputs
        if self.reduction == "concat":
            return ops.reshape(inputs, (-1, math.prod(inputs.shape[1:])))
        axes = tuple(range(1, rank - 1))
        function = {"max": ops.max, "mean": ops.mean, "product": ops.prod, "sum": ops.sum}
        return function[self.reduction](inputs, axis=axes)

    def get_config(self) -> dict:
        return {**super().get_config(), "reduction": self.reduction}


class _WindowPooling(keras.layers.Layer):
    RANK = 1
    TYPE = "pool"

    def __init__(
        self, reduction: str = "max", window: Any = 2, stride: Any = 2, padding: str = "same",
        **kwargs: Any,
    ):
        location = base.where(kwargs, self.TYPE)
        reduction = base.check_choice(reduction, "reduction", location, WINDOW_REDUCTIONS)
        window = base.check_ints(window, "window", location, self.RANK)
        stride = base.check_ints(stride, "stride", location, self.RANK)
        padding = base.check_choice(padding, "padding", location, ("same", "valid"))
        super().__init__(**kwargs)
        self.reduction = reduction
        self.window = window
        self.stride = stride
        self.padding = padding

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != self.RANK + 2:
            raise ArgumentError.invalid(
                "input shape", f"rank {self.RANK + 1} per sample (spatial axes, then channels)",
                tuple(input_shape), f"layer '{self.name}'",
            )

    def call(self, inputs: Any) -> Any:
        pool = ops.max_pool if self.reduction == "max" else ops.average_pool
        return pool(
            base.as_float(inputs, self.compute_dtype), pool_size=self.window,
            strides=self.stride, padding=self.padding,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            reduction=self.reduction,
            window=list(self.window) if isinstance(self.window, tuple) else self.window,
            stride=list(self.stride) if isinstance(self.stride, tuple) else self.stride,
            padding=self.padding,
        )
        return config


@base.serializable
class Pool1d(_WindowPooling):
    """1D max or average pooling over `(batch, width, channels)` (Tensorforce `pool1d`).

    Args:
        reduction: `'max'` (default) or `'average'`.
        window: Pool width (default 2).
        stride: Stride (default 2).
        padding: `'same'` (default) or `'valid'`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(Pool1d()(keras.ops.ones((2, 9, 3))).shape)
    (2, 5, 3)
    """

    RANK = 1
    TYPE = "pool1d"


@base.serializable
class Pool2d(_WindowPooling):
    """2D max or average pooling over `(batch, height, width, channels)` (Tensorforce `pool2d`).

    Args:
        reduction: `'max'` (default) or `'average'`.
        window: Pool size, an int or a pair (default 2).
        stride: Stride, an int or a pair (default 2).
        padding: `'same'` (default) or `'valid'`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(Pool2d(reduction='average')(keras.ops.ones((2, 8, 8, 3))).shape)
    (2, 4, 4, 3)
    """

    RANK = 2
    TYPE = "pool2d"
