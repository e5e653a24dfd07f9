"""Recurrent layers.

- `rnn`, `lstm`, `gru` (`Rnn`): one step of an LSTM or GRU cell whose state
  is carried from timestep to timestep of an episode (Tensorforce's temporal
  layers). In a network the builder gives each one an *internal* input and
  output (see `kerasrl.networks`); agents carry the state while acting and
  unroll it over `horizon` steps when training (truncated backpropagation
  through time, `kerasrl.agents.sequences`).
- `input_rnn`, `input_lstm`, `input_gru` (`InputRnn`): run over a sequence
  axis inside one state, with nothing carried across calls.
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


def _init_recurrent(layer: keras.layers.Layer, kwargs: dict, vars_trainable: Any, cell: Any,
                    size: Any, bias: Any, activation: Any, dropout: Any,
                    l2_regularization: Any, location: str) -> str:
    """Checks the arguments shared by the recurrent layers, initializes `layer` as a
    Keras layer with them (`size`, `use_bias`, `nonlinearity`, `dropout`,
    `l2_regularization`, `cell_kwargs`: what is left of `kwargs`); returns the cell."""
    cell = base.check_choice(cell, "cell", location, CELLS)
    size = base.check_int(size, "size", location, minimum=1)
    bias = base.check_bool(bias, "bias", location)
    nonlinearity = base.normalize_activation(activation, location)
    if nonlinearity == "crelu":
        raise ArgumentError.invalid(
            "activation", "an elementwise activation (not crelu)", activation, location
        )
    dropout = base.check_float(dropout, "dropout", location, 0.0, 1.0, exclusive_maximum=True)
    l2 = base.check_float(l2_regularization, "l2_regularization", location, 0.0)
    layer_kwargs = {k: kwargs.pop(k) for k in _LAYER_KWARGS if k in kwargs}
    keras.layers.Layer.__init__(layer, **base.trainable_kwargs(layer_kwargs, vars_trainable))
    layer.size = size
    layer.use_bias = bias
    layer.nonlinearity = nonlinearity
    layer.dropout = dropout
    layer.l2_regularization = l2
    layer.cell_kwargs = dict(kwargs)
    return cell


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
        return_final_state = base.check_bool(return_final_state, "return_final_state", location)
        self.cell = _init_recurrent(self, kwargs, vars_trainable, cell, size, bias, activation,
                                    dropout, l2_regularization, location)
        self.return_final_state = return_final_state
        keras_class = keras.layers.LSTM if self.cell == "lstm" else keras.layers.GRU
        try:
            self.rnn = keras_class(
                self.size,
                activation=_KERAS_ACTIVATIONS.get(self.nonlinearity, self.nonlinearity),
                use_bias=self.use_bias,
                dropout=self.dropout,
                kernel_regularizer=base.l2(self.l2_regularization),
                return_sequences=not return_final_state,
                name=self.cell,
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


@base.serializable
class Rnn(keras.layers.Layer):
    """One step of an episode-recurrent LSTM or GRU (Tensorforce `rnn`).

    Called on `[x, state]` with `x` of shape `(batch, features)` and the
    internal state of shape `internal_shape` (`(batch, size)` for a GRU,
    `(batch, 2, size)` for an LSTM: hidden and cell state, Tensorforce's
    layout); returns `[y, next_state]`. As in Tensorforce the cell output
    `h` goes through the layer's bias and activation: `y = act(h + b)`.

    Args:
        cell: `'lstm'` or `'gru'`.
        size: Number of units.
        horizon: Truncated-backpropagation length: the agent trains on
            sequences of at most `horizon` timesteps, each started from the
            internal state stored when acting.
        bias: Whether the output adds a bias `b` (the cell always has its own).
        activation: Output activation (not `'crelu'`), default `'tanh'`.
        dropout: Input dropout rate of the cell in [0, 1).
        l2_regularization: L2 coefficient of the input kernel.
        vars_trainable: Tensorforce's name for Keras' `trainable`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...); any
            other keyword goes to `keras.layers.LSTMCell`/`GRUCell`.

    Example:

    >>> layer = Rnn(cell='lstm', size=4, horizon=8)
    >>> y, state = layer([keras.ops.ones((2, 3)), keras.ops.zeros((2, 2, 4))])
    >>> tuple(y.shape), tuple(state.shape), layer.internal_shape
    ((2, 4), (2, 2, 4), (2, 4))
    """

    TYPE = "rnn"

    def __init__(
        self,
        cell: str,
        size: int,
        horizon: int,
        bias: bool = True,
        activation: str | None = "tanh",
        dropout: float = 0.0,
        l2_regularization: float = 0.0,
        vars_trainable: bool | None = None,
        **kwargs: Any,
    ):
        location = base.where(kwargs, cell if isinstance(cell, str) else self.TYPE)
        horizon = base.check_int(horizon, "horizon", location, minimum=1)
        self.cell_type = _init_recurrent(self, kwargs, vars_trainable, cell, size, bias,
                                         activation, dropout, l2_regularization, location)
        self.horizon = horizon
        keras_class = keras.layers.LSTMCell if self.cell_type == "lstm" else keras.layers.GRUCell
        try:
            self.cell = keras_class(
                self.size, dropout=self.dropout, kernel_regularizer=base.l2(
                    self.l2_regularization), name="cell", **kwargs
            )
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"Invalid keyword arguments of {location}: {exc}") from None

    @property
    def internal_shape(self) -> tuple[int, ...]:
        """The shape of one sample's internal state: `(2, size)` (LSTM) or `(size,)`."""
        return (2, self.size) if self.cell_type == "lstm" else (self.size,)

    def build(self, input_shape: Any) -> None:
        x_shape = tuple(input_shape[0])
        if len(x_shape) != 2 or x_shape[-1] is None:
            raise ArgumentError.invalid(
                "input shape", "(batch, features) (flatten or pool the input first)",
                x_shape, f"layer '{self.name}'",
            )
        self.cell.build(x_shape)
        self.output_bias = self.add_weight(
            shape=(self.size,), initializer="zeros", name="bias") if self.use_bias else None

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x, state = inputs
        x = base.as_float(x, self.compute_dtype)
        if self.cell_type == "lstm":
            h, (h_next, c_next) = self.cell(x, [state[:, 0], state[:, 1]], training=training)
            next_state = ops.stack([h_next, c_next], axis=1)
        else:
            h, next_state = self.cell(x, [state], training=training)
            next_state = next_state[0] if isinstance(next_state, (list, tuple)) else next_state
        if self.output_bias is not None:
            h = h + self.output_bias
        return [base.apply_activation(h, self.nonlinearity), next_state]

    def compute_output_spec(self, inputs: Any, training: bool | None = None) -> Any:
        x, state = inputs
        return [keras.KerasTensor((x.shape[0], self.size), dtype=self.compute_dtype),
                keras.KerasTensor(tuple(state.shape), dtype=self.compute_dtype)]

    def get_config(self) -> dict:
        config = keras.layers.Layer.get_config(self)
        config.update(
            cell=self.cell_type, size=self.size, horizon=self.horizon, bias=self.use_bias,
            activation=self.nonlinearity, dropout=self.dropout,
            l2_regularization=self.l2_regularization, **self.cell_kwargs,
        )
        return config


def lstm(**kwargs: Any) -> Rnn:
    """`Rnn` with an LSTM cell (Tensorforce `lstm`)."""
    if "cell" in kwargs:
        raise ArgumentError.invalid("cell", "no cell argument for lstm", kwargs["cell"])
    return Rnn(cell="lstm", **kwargs)


def gru(**kwargs: Any) -> Rnn:
    """`Rnn` with a GRU cell (Tensorforce `gru`)."""
    if "cell" in kwargs:
        raise ArgumentError.invalid("cell", "no cell argument for gru", kwargs["cell"])
    return Rnn(cell="gru", **kwargs)


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
