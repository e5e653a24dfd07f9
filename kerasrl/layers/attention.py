"""Self-attention over the positions of one state (Tensorforce `self_attention`)."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from kerasrl.errors import ArgumentError
from kerasrl.layers import base


@base.serializable
class SelfAttention(base.TransformationMixin, keras.layers.Layer):
    """Single-head scaled dot-product self-attention.

    An input `(batch, *positions, features)` (at least one position axis) is
    attended over all positions: queries and keys of size `attention_size`,
    values of size `size`, `softmax(q k^T / sqrt(attention_size)) v`, then the
    activation and dropout. The output is `(batch, *positions, size)`.

    Args:
        size: Output (value) size.
        attention_size: Size of queries and keys (default `size`).
        bias: Whether the query, key and value projections have biases.
        activation: One of `base.NONLINEARITIES` or None (default None).
        dropout: Dropout rate in [0, 1), active with `training=True`.
        initialization_scale: Gain of the orthogonal initializers.
        l2_regularization: L2 coefficient of the projections.
        vars_trainable: Tensorforce's name for Keras' `trainable`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(SelfAttention(size=8)(keras.ops.ones((2, 5, 3))).shape)
    (2, 5, 8)
    """

    TYPE = "self_attention"

    def __init__(
        self,
        size: int,
        attention_size: int | None = None,
        bias: bool = False,
        activation: str | None = None,
        dropout: float = 0.0,
        initialization_scale: float = 1.0,
        l2_regularization: float = 0.0,
        vars_trainable: bool | None = None,
        **kwargs: Any,
    ):
        location = base.where(kwargs, self.TYPE)
        size = base.check_int(size, "size", location, minimum=1)
        if attention_size is not None:
            attention_size = base.check_int(attention_size, "attention_size", location, 1)
        bias = base.check_bool(bias, "bias", location)
        super().__init__(**base.trainable_kwargs(kwargs, vars_trainable))
        self.size = size
        self.attention_size = attention_size
        self.use_bias = bias
        self._setup_transformation(
            activation, dropout, initialization_scale, l2_regularization, location
        )

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) < 3 or input_shape[-1] is None:
            raise ArgumentError.invalid(
                "input shape", "(batch, positions..., features) with a known last axis",
                tuple(input_shape), f"layer '{self.name}'",
            )
        features = input_shape[-1]
        attention = self.attention_size or self.size
        init = base.orthogonal(self.initialization_scale, "none")
        regularizer = base.l2(self.l2_regularization)
        for key, units in (("query", attention), ("key", attention), ("value", self.size)):
            kernel = self.add_weight(
                name=f"{key}_kernel", shape=(features, units), initializer=init,
                regularizer=regularizer,
            )
            bias = None
            if self.use_bias:
                bias = self.add_weight(name=f"{key}_bias", shape=(units,), initializer="zeros")
            setattr(self, f"{key}_kernel", kernel)
            setattr(self, f"{key}_bias", bias)
        self.input_spec = keras.layers.InputSpec(min_ndim=3, axes={-1: features})

    def _project(self, x: Any, key: str) -> Any:
        bias = getattr(self, f"{key}_bias")
        y = ops.matmul(x, getattr(self, f"{key}_kernel"))
        return y if bias is None else y + bias

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = base.as_float(inputs, self.compute_dtype)
        positions = tuple(x.shape[1:-1])
        x = ops.reshape(x, (-1, math.prod(positions), x.shape[-1]))
        query, key, value = (self._project(x, k) for k in ("query", "key", "value"))
        scale = 1.0 / math.sqrt(self.attention_size or self.size)
        scores = ops.matmul(query, ops.transpose(key, (0, 2, 1))) * scale
        y = ops.matmul(ops.softmax(scores, axis=-1), value)
        y = ops.reshape(y, (-1, *positions, self.size))
        return self._finish(y, training)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return self._finish_shape(tuple(input_shape[:-1]) + (self.size,))

    def get_config(self) -> dict:
        config = keras.layers.Layer.get_config(self)
        config.update(
            size=self.size, attention_size=self.attention_size, bias=self.use_bias,
            **self._transformation_config(),
        )
        return config
