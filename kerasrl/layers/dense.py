"""Fully connected layers: `dense` and `linear`."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from kerasrl.errors import ArgumentError
from kerasrl.layers import base


@base.serializable
class Dense(base.TransformationMixin, keras.layers.Layer):
    """Fully connected layer over the last axis (Tensorforce `dense`).

    Weights are `kernel` (Tensorforce's `weights`, shape `(input_size, size)`)
    and `bias`, initialized orthogonally (gain `initialization_scale`, times
    sqrt(2) for relu) and to zeros.

    Args:
        size: Output size; 0 removes the last axis (a single output, squeezed).
        bias: Whether to add a bias.
        activation: One of `base.NONLINEARITIES` or None (default `'tanh'`).
        dropout: Dropout rate in [0, 1), applied after the activation when
            called with `training=True`.
        initialization_scale: Gain of the orthogonal kernel initializer.
        l2_regularization: L2 coefficient of the kernel (a Keras regularizer:
            its loss appears in `model.losses`).
        vars_trainable: Tensorforce's name for Keras' `trainable`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Raises:
        ArgumentError: for an invalid argument, or an input without a last
            axis of known size.

    Example:

    >>> layer = Dense(size=32, activation='relu')
    >>> tuple(layer(keras.ops.ones((2, 4))).shape)
    (2, 32)
    """

    TYPE = "dense"

    def __init__(
        self,
        size: int,
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
        bias = base.check_bool(bias, "bias", location)
        super().__init__(**base.trainable_kwargs(kwargs, vars_trainable))
        self.size = size
        self.use_bias = bias
        self._setup_transformation(
            activation, dropout, initialization_scale, l2_regularization, location
        )
        if self.size == 0 and self.nonlinearity in ("crelu", "softmax"):
            raise ArgumentError.invalid(
                "activation", "an elementwise activation for size 0", activation, location
            )

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ArgumentError.invalid(
                "input shape", "(batch, ..., features) with a known last axis (flatten "
                "scalar states first)",
                tuple(input_shape), f"layer '{self.name}'",
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], max(self.size, 1)),
            initializer=base.orthogonal(self.initialization_scale, self.nonlinearity),
            regularizer=base.l2(self.l2_regularization),
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(max(self.size, 1),), initializer="zeros")
        # Later calls (shared layers) must match the input size the kernel was built for.
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_shape[-1]})

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = ops.matmul(base.as_float(inputs, self.compute_dtype), self.kernel)
        if self.bias is not None:
            x = x + self.bias
        if self.size == 0:
            x = ops.squeeze(x, axis=-1)
        return self._finish(x, training)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        shape = tuple(input_shape[:-1]) + ((self.size,) if self.size > 0 else ())
        return self._finish_shape(shape)

    def get_config(self) -> dict:
        config = keras.layers.Layer.get_config(self)
        config.update(size=self.size, bias=self.use_bias, **self._transformation_config())
        return config


@base.serializable
class Linear(Dense):
    """Affine layer without activation (Tensorforce `linear`).

    Args:
        size: Output size; 0 removes the last axis.
        bias: Whether to add a bias.
        initialization_scale: Gain of the orthogonal kernel initializer.
        l2_regularization: L2 coefficient of the kernel.
        vars_trainable: Tensorforce's name for Keras' `trainable`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(Linear(size=2)(keras.ops.ones((3, 8))).shape)
    (3, 2)
    """

    TYPE = "linear"

    def __init__(
        self,
        size: int,
        bias: bool = True,
        initialization_scale: float = 1.0,
        l2_regularization: float = 0.0,
        vars_trainable: bool | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            size=size, bias=bias, activation=None, dropout=0.0,
            initialization_scale=initialization_scale, l2_regularization=l2_regularization,
            vars_trainable=vars_trainable, **kwargs,
        )

    def get_config(self) -> dict:
        config = keras.layers.Layer.get_config(self)
        config.update(
            size=self.size, bias=self.use_bias, initialization_scale=self.initialization_scale,
            l2_regularization=self.l2_regularization,
        )
        return config
