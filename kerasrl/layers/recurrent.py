"""Recurrent layers over a sequence axis inside one state: `input_rnn`, `input_lstm`, `input_gru`.

Episode-recurrent layers (Tensorforce `rnn`, `lstm`, `gru`, which carry an
internal state from timestep to timestep) are not supported yet.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from kerasrl.errors import ArgumentError
from kerasrl.layers import base

CELLS = ("gru", "lstm")
_LAYER_KWARGS = ("name", "dtype", "trainable", "autocast", "input_dim", "input_shape")
_KERAS_ACTIVATIONS = {"none": "linear", "leaky-relu": "leaky_relu", "swish": "silu"}


@base.serializable
class InputRnn(keras.layers.Layer):
    """Runs an LSTM or GRU over axis 1 of each sample (Tensorforce `input_rnn`).

    An input `(batch, steps, features)` gives `(batch, size)` (the output of
    the last step) when `return_final_state` is True, else
    `(batch, steps, size)`. A rank-1 input `(batch, steps)` is treated as one
    feature per step. Nothing is carried across calls.

    Args:
        cell: `'lstm'` or `'gru'`.
        size: Number of units.
        return_final_state: Whether to return only the last step's output.
        bias: Whether the cell uses biases.
        activation: Cell activation (not `'crelu'`), default `'tanh'`.
        dropout: Input dropout rate of the cell in [0, 1).
        l2_regularization: L2 coefficient of the input kernel.
        vars_trainable: Tensorforce's name for Keras' `trainable`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...); any
            other keyword goes to `keras.layers.LSTM`/`GRU` (for example
            `recurrent_activation`).

    Example:

    >>> tuple(InputRnn(cell='gru', size=8)(keras.ops.ones((2, 5, 3))).shape)
    (2, 8)
    """

    TYPE = "input_rnn"

    def __init__(
        self,
        cell: str,
        size: int,
        return_final_state: bool = True,
        bias: bool = True,
        activation: str | None = "tanh",
        dropout: float = 0.0,
        l2_regularization: float = 0.0,
        vars_trainable: bool | None = None,
        **kwargs: Any,
    ):
        location = base.where(kwargs, f"input_{cell}" if isinstance(cell, str) else self.TYPE)
        cell = base.check_choice(cell, "cell", location, CELLS)
        size = base.check_int(size, "size", location, minimum=1)
        return_final_state = base.check_bool(return_final_state, "return_final_state", location)
        bias = base.check_bool(bias, "bias", location)
        nonlinearity = base.normalize_activation(activation, location)
        if nonlinearity == "crelu":
            raise ArgumentError.invalid(
                "activation", "an elementwise activation (not crelu)", activation, location
            )
        dropout = base.check_float(dropout, "dropout", location, 0.0, 1.0, exclusive_maximum=True)
        l2 = base.check_float(l2_regularization, "l2_regularization", location, 0.0)
        layer_kwargs = {k: kwargs.pop(k) for k in _LAYER_KWARGS if k in kwargs}
        super().__init__(**base.trainable_kwargs(layer_kwargs, vars_trainable))
        self.cell = cell
        self.size = size
        self.return_final_state = return_final_state
        self.use_bias = bias
        self.nonlinearity = nonlinearity
        self.dropout = dropout
        self.l2_regularization = l2
        self.cell_kwargs = dict(kwargs)
        keras_class = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
        try:
            self.rnn = keras_class(
                size,
                activation=_KERAS_ACTIVATIONS.get(nonlinearity, nonlinearity),
                use_bias=bias,
                dropout=dropout,
                kernel_regularizer=base.l2(l2),
                return_sequences=not return_final_state,
                name=cell,
                **kwargs,
            )
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"Invalid keyword arguments of {location}: {exc}") from None

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) not in (2, 3):
            raise ArgumentError.invalid(
                "input shape", "(batch, steps) or (batch, steps, features)",
                tuple(input_shape), f"layer '{self.name}'",
            )
        self.rnn.build(tuple(input_shape) if len(input_shape) == 3 else (*input_shape, 1))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = base.as_float(inputs, self.compute_dtype)
        if len(x.shape) == 2:
            x = ops.expand_dims(x, axis=-1)
        return self.rnn(x, training=training)

    def get_config(self) -> dict:
        config = keras.layers.Layer.get_config(self)
        config.update(
            cell=self.cell, size=self.size, return_final_state=self.return_final_state,
            bias=self.use_bias, activation=self.nonlinearity, dropout=self.dropout,
            l2_regularization=self.l2_regularization, **self.cell_kwargs,
        )
        return config


def input_lstm(**kwargs: Any) -> InputRnn:
    """`InputRnn` with an LSTM cell (Tensorforce `input_lstm`)."""
    if "cell" in kwargs:
        raise ArgumentError.invalid("cell", "no cell argument for input_lstm", kwargs["cell"])
    return InputRnn(cell="lstm", **kwargs)


def input_gru(**kwargs: Any) -> InputRnn:
    """`InputRnn` with a GRU cell (Tensorforce `input_gru`)."""
    if "cell" in kwargs:
        raise ArgumentError.invalid("cell", "no cell argument for input_gru", kwargs["cell"])
    return InputRnn(cell="gru", **kwargs)
