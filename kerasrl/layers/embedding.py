"""Embedding layer for int and bool inputs (Tensorforce `embedding`)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from kerasrl.errors import ArgumentError
from kerasrl.layers import base


@base.serializable
class Embedding(base.TransformationMixin, keras.layers.Layer):
    """Looks up a trainable vector per int value, then adds a bias and an activation.

    An input of shape `(batch, *shape)` gives `(batch, *shape, size)`: an int
    state of shape `(4, 2)` becomes `(4, 2, size)` (flatten or pool it after).
    Bool inputs are looked up as 0/1. The table (`embeddings`, shape
    `(num_embeddings, size)`) is initialized from a standard normal
    distribution (Tensorforce's `normal`).

    Args:
        size: Embedding size; 0 removes the last axis.
        num_embeddings: Number of rows of the table. Networks fill it in from
            the input's `num_values` (2 for bool inputs) when it is None.
        max_norm: If set, looked-up vectors with a larger L2 norm are scaled
            down to this norm.
        bias: Whether to add a bias after the lookup.
        activation: One of `base.NONLINEARITIES` or None (default `'tanh'`).
        dropout: Dropout rate in [0, 1), active with `training=True`.
        initialization_scale: Standard deviation of the initial table.
        l2_regularization: L2 coefficient of the table.
        vars_trainable: Tensorforce's name for Keras' `trainable`.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ArgumentError: for invalid arguments, or a missing `num_embeddings`.

    Example:

    >>> layer = Embedding(size=16, num_embeddings=5)
    >>> tuple(layer(keras.ops.zeros((2, 4, 2), dtype='int32')).shape)
    (2, 4, 2, 16)
    """

    TYPE = "embedding"

    def __init__(
        self,
        size: int,
        num_embeddings: int | None = None,
        max_norm: float | None = None,
        bias: bool = True,
        activation: str | None = "tanh",
        dropout: float = 0.0,
        initialization_scale: float = 1.0,
        l2_regularization: float = 0.0,
        vars_trainable: bool | None = None,
        **kwargs: Any,
    ):
        location = base.where(kwargs, self.TYPE)
        size = base.check_int(size, "size", location, minimum=0)
        if num_embeddings is None:
            raise ArgumentError(
                f"Missing argument 'num_embeddings' of {location}: expected an int >= 1, "
                "or an int input with num_values (or a bool input) in a network."
            )
        num_embeddings = base.check_int(num_embeddings, "num_embeddings", location, minimum=1)
        if max_norm is not None:
            max_norm = base.check_float(max_norm, "max_norm", location, 0.0)
        bias = base.check_bool(bias, "bias", location)
        super().__init__(**base.trainable_kwargs(kwargs, vars_trainable))
        self.size = size
        self.num_embeddings = num_embeddings
        self.max_norm = max_norm
        self.use_bias = bias
        self._setup_transformation(
            activation, dropout, initialization_scale, l2_regularization, location
        )

    def build(self, input_shape: tuple) -> None:
        units = max(self.size, 1)
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_embeddings, units),
            initializer=keras.initializers.RandomNormal(stddev=self.initialization_scale),
            regularizer=base.l2(self.l2_regularization),
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(units,), initializer="zeros")

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if "float" in dtype:
            raise ArgumentError.invalid(
                "input dtype", "an int or bool input", dtype, f"layer '{self.name}'"
            )
        x = ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0)
        if self.max_norm is not None:
            norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
            x = x * ops.minimum(1.0, self.max_norm / ops.maximum(norm, 1e-12))
        if self.bias is not None:
            x = x + self.bias
        if self.size == 0:
            x = ops.squeeze(x, axis=-1)
        return self._finish(x, training)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        shape = tuple(input_shape) + ((self.size,) if self.size > 0 else ())
        return self._finish_shape(shape)

    def get_config(self) -> dict:
        config = keras.layers.Layer.get_config(self)
        config.update(
            size=self.size, num_embeddings=self.num_embeddings, max_norm=self.max_norm,
            bias=self.use_bias, **self._transformation_config(),
        )
        return config
