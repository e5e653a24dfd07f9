"""Recurrent policies: stepping a network with internal state, and sequence batches.

A network with `rnn`/`lstm`/`gru` layers (`kerasrl.networks`) is a *step*
model: `(states_t, h_t) → (output_t, h_{t+1})`, where `h` holds one internal
state per recurrent layer. Acting calls it once per timestep and carries
`h`; training uses truncated backpropagation through time:

- the internal state `h_t` *before* each step is stored with the experience;
- a batch is cut into sequences of at most `horizon` consecutive timesteps
  of one episode (`to_sequences`); each sequence starts from its stored
  `h_{t_0}`, so no sequence crosses an episode start and none is longer than
  `horizon`;
- the update unrolls the step model over each sequence (`unroll`):
  `h_{t+1} = f(s_t, h_t)` from `h_{t_0}`, and the gradient flows back
  through at most `horizon` steps.

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
           horizon: int, training: bool = False) -> Any:
    """Runs a recurrent model over the sequences of a `to_sequences` batch.

    Args:
        model: A recurrent model (see `step`).
        states: `{state name: (n * horizon, ...)}`, sequence-major rows.
        internals: `{name: (n * horizon, *shape)}`: the stored internal states
            of every row; each sequence starts from the one of its first row.
        horizon: The sequence length.
        training: Keras training mode.

    Returns:
        The model's outputs of every row, `(n * horizon, ...)` each, in the
        structure of one step's output.
    """
    rows = ops.shape(next(iter(states.values())))[0]
    count = rows // horizon

    def sequences(x):
        return ops.reshape(x, (count, horizon) + tuple(x.shape[1:]))

    states = {name: sequences(value) for name, value in states.items()}
    current = {name: sequences(value)[:, 0] for name, value in internals.items()}
    outputs = []
    for t in range(horizon):
        output, current = step(model, {name: value[:, t] for name, value in states.items()},
                               current, training=training)
        outputs.append(output)
    return keras.tree.map_structure(
        lambda *steps: ops.reshape(ops.stack(steps, axis=1), (rows,) + tuple(steps[0].shape[1:])),
        *outputs)


def to_sequences(batch: Mapping[str, np.ndarray], starts: np.ndarray, horizon: int,
                 minimum: int = 16) -> tuple[dict, np.ndarray, int]:
    """Lays out a batch of timesteps as sequences of at most `horizon` steps.

    A sequence begins at every `starts` row (the first timestep of a stored
    segment: an episode start, or where an update cut a rollout) and after
    every `horizon` steps; the rest of a short sequence is padding. The
    number of sequences is padded to a power of two (so compiled shapes
    repeat), with at least `minimum` rows in all.

    Args:
        batch: `{field: (n, ...)}` consecutive timesteps of whole segments
            (the first row always starts a sequence).
        starts: `(n,)` bool, True at the first row of each segment.
        horizon: The longest sequence.
        minimum: The fewest rows of the result.

    Returns:
        `(padded, valid, n)`: `{field: (sequences * horizon, ...)}` in
        sequence-major order, the float32 mask of real rows, and `n`. Padded
        bool rows are True (padded masks allow every action).

    Example:

    >>> batch = {'x': np.arange(5)}
    >>> padded, valid, n = to_sequences(batch, np.array([1, 0, 0, 1, 0], bool), 2, minimum=1)
    >>> padded['x'].reshape(-1, 2).tolist()
    [[0, 1], [2, 0], [3, 4], [0, 0]]
    >>> valid.reshape(-1, 2).tolist()
    [[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    """
    n = len(starts)
    index = np.arange(n)
    starts = np.asarray(starts, bool).copy()
    starts[0] = True
    segment_start = index[starts][np.cumsum(starts) - 1]
    offset = (index - segment_start) % horizon
    sequence = np.cumsum(offset == 0) - 1
    count = int(sequence[-1]) + 1
    padded_count = max(-(-minimum // horizon), 1 << max(0, (count - 1).bit_length()))
    rows = sequence * horizon + offset
    size = padded_count * horizon
    padded = {}
    for key, value in batch.items():
        fill = np.ones if value.dtype == np.bool_ else np.zeros
        array = fill((size,) + value.shape[1:], dtype=value.dtype)
        array[rows] = value
        padded[key] = array
    valid = np.zeros(size, dtype=np.float32)
    valid[rows] = 1.0
    return padded, valid, n


__all__ = ["network_internals", "step", "to_sequences", "unroll"]
