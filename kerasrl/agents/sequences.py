"""Recurrent policies: stepping a network with internal state, and sequence batches.

A network with `rnn`/`lstm`/`gru` layers (`kerasrl.networks`) is a *step*
model: `(states_t, h_t) → (output_t, h_{t+1})`, where `h` holds one internal
state per recurrent layer. Acting calls it once per timestep and carries
`h`; training uses truncated backpropagation through time:

- the internal state `h_t` *before* each step is stored with the experience;
- a batch (timesteps in memory order: the segments of every slot one after
  the other) is cut into consecutive sequences of `horizon` rows
  (`to_sequences`), the same layout for every batch of the same size, so the
  compiled update is traced once;
- the update unrolls the step model over each sequence (`unroll`): the state
  is `h_{t+1} = f(s_t, h_t)`, except at the first row of a sequence and at
  the first row of each stored segment (an episode start, or where a rollout
  was cut), where it is the stored `h_t`. So no state flows across an episode
  start or from one slot's segment into another's, and the gradient flows
  back through at most `horizon - 1` steps.

This is Tensorforce's `horizon` (the truncated-BPTT length), laid out as
sb3-contrib's `RecurrentPPO` and CleanRL's `ppo_atari_lstm` lay out their
batches: consecutive chunks, not one window per timestep, so every timestep
is computed once per pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasrl import backend as kbackend
from kerasrl.memories import pad_batch
from kerasrl.networks import internal_key, network_internals


def step(model: keras.Model, states: Mapping[str, Any], internals: Mapping[str, Any],
         training: bool = False, call: Any = None) -> tuple[Any, dict]:
    """One step of a (possibly recurrent) model.

    Args:
        model: A model whose inputs are `states` plus, when recurrent, the
            internal states `internal_key(name)`; its outputs are `output` or
            `[output, *next internal states]`.
        states: `{state name: (batch, ...)}`.
        internals: `{name: (batch, *shape)}` in `network_internals(model)`
            order (empty for a model without recurrent layers).
        training: Keras training mode.
        call: `call(model, inputs)` to use instead of `kbackend.call_model`
            (the agents' variable-noise call).

    Returns:
        `(output, next_internals)`.
    """
    if not internals:
        if call is not None:
            return call(model, states), {}
        return kbackend.call_model(model, states, training=training), {}
    inputs = {**states, **{internal_key(name): value for name, value in internals.items()}}
    if call is not None:
        outputs = call(model, inputs)
    else:
        outputs = kbackend.call_model(model, inputs, training=training)
    return outputs[0], dict(zip(internals, outputs[1:]))


def unroll(model: keras.Model, states: Mapping[str, Any], internals: Mapping[str, Any],
           starts: Any, horizon: int, training: bool = False) -> Any:
    """Runs a recurrent model over the sequences of a `to_sequences` batch.

    Args:
        model: A recurrent model (see `step`).
        states: `{state name: (n * horizon, ...)}`, sequence-major rows.
        internals: `{name: (n * horizon, *shape)}`: the stored internal states
            of every row.
        starts: `(n * horizon,)`: 1 where a stored segment begins (the state
            is then the stored one, not the one carried from the row before).
        horizon: The sequence length.
        training: Keras training mode.

    Returns:
        The model's outputs of every row, `(n * horizon, ...)` each, in the
        structure of one step's output.
    """
    rows = ops.shape(next(iter(states.values())))[0]
    count = rows // horizon

    def time_major(x):  # (rows, ...) -> (horizon, count, ...)
        x = ops.reshape(x, (count, horizon) + tuple(x.shape[1:]))
        return ops.moveaxis(x, 1, 0)

    restart = ops.cast(starts, "bool")

    def restarted(current, stored, restart):
        return {name: ops.where(
            ops.reshape(restart, (-1,) + (1,) * (len(value.shape) - 1)), stored[name], value)
            for name, value in current.items()}

    def body(carry, inputs):
        states_t, stored_t, restart_t = inputs
        current = restarted(carry[0], stored_t, restart_t)
        output, current = step(model, states_t, current, training=training)
        carry = (current, output)
        return carry, carry  # Keras' TensorFlow scan wants outputs shaped like the carry

    states, internals, restart = (
        {name: time_major(value) for name, value in states.items()},
        {name: time_major(value) for name, value in internals.items()},
        time_major(restart))
    # The first step runs before the loop: its output gives the carry its structure.
    output, current = step(model, {name: value[0] for name, value in states.items()},
                           {name: value[0] for name, value in internals.items()},
                           training=training)
    if horizon > 1:
        _, (_, later) = ops.scan(body, (current, output), (
            {name: value[1:] for name, value in states.items()},
            {name: value[1:] for name, value in internals.items()}, restart[1:]))
        outputs = keras.tree.map_structure(
            lambda first, rest: ops.concatenate([first[None], rest], axis=0), output, later)
    else:
        outputs = keras.tree.map_structure(lambda first: first[None], output)
    return keras.tree.map_structure(
        lambda x: ops.reshape(ops.moveaxis(x, 0, 1), (rows,) + tuple(x.shape[2:])), outputs)


def to_sequences(batch: Mapping[str, np.ndarray], horizon: int,
                 minimum: int = 16) -> tuple[dict, np.ndarray, int]:
    """Pads a batch of timesteps to whole sequences of `horizon` rows.

    The number of sequences is padded to a power of two (so compiled shapes
    repeat), with at least `minimum` rows in all; a batch of a fixed size
    always gets the same layout.

    Args:
        batch: `{field: (n, ...)}` consecutive timesteps of whole segments.
        horizon: The sequence length.
        minimum: The fewest rows of the result.

    Returns:
        `(padded, valid, n)`: `{field: (sequences * horizon, ...)}`, the
        float32 mask of real rows, and `n`. Padded bool rows are True
        (padded masks allow every action, padded rows start segments).

    Example:

    >>> padded, valid, n = to_sequences({'x': np.arange(5)}, 2, minimum=1)
    >>> padded['x'].reshape(-1, 2).tolist()
    [[0, 1], [2, 3], [4, 0], [0, 0]]
    >>> valid.reshape(-1, 2).tolist()
    [[1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
    """
    return pad_batch(batch, minimum, multiple=horizon)


__all__ = ["network_internals", "step", "to_sequences", "unroll"]
