"""Replay storage of off-policy agents, in preallocated NumPy arrays.

- `ReplayMemory`: a ring buffer of transitions with uniform sampling (with
  replacement, as Tensorforce's `replay` memory) driven by the agent's NumPy
  generator, so that a seeded agent samples the same minibatches on every
  backend; or the newest transitions (`latest`, Tensorforce's `recent`
  memory).
- `NStepWindow`: the last `horizon` steps of every parallel slot, turned into
  n-step transitions as soon as the state `horizon` steps later is known
  (at the next `act` of the slot) or the episode ends.

A transition is a flat dict of arrays (one row per transition):

| field | meaning |
|---|---|
| `states/<name>`, `masks/<name>`, `actions/<name>` | state, action mask (int actions) and action at time t |
| `reward` | `Σ_{i<k} γ^i r_{t+i}`, the reward summed over the `k ≤ horizon` steps of the transition |
| `terminal` | 1.0 when the episode ended within those steps without bootstrap (true terminal), else 0.0 |
| `discount` | `γ^k`, the factor of the bootstrap value |
| `next_states/<name>`, `next_masks/<name>` | the state `k` steps later and its action mask (for a true terminal: a copy of the state at t and an all-True mask; they are never used) |

Next states are stored explicitly (rather than as indices of the following
row), which doubles the memory taken by states but keeps transitions
independent of the ring-buffer order and of the interleaving of parallel
environments.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from kerasrl.errors import ArgumentError
from kerasrl.memories import check_saved_fields
from kerasrl.validation import check_int


class ReplayMemory:
    """A fixed-capacity ring buffer of transitions with uniform sampling.

    Args:
        fields: `{name: (shape, dtype)}` of one transition.
        capacity: Maximum number of transitions (the oldest are overwritten).

    Attributes:
        data: `{name: array (capacity, *shape)}`, preallocated.
        size: Number of transitions stored.
        index: Row where the next transition is written.

    Example:

    >>> memory = ReplayMemory({'reward': ((), np.float32)}, capacity=3)
    >>> memory.add({'reward': np.arange(5, dtype=np.float32)})
    >>> memory.size, sorted(memory.data['reward'].tolist())
    (3, [2.0, 3.0, 4.0])
    """

    def __init__(self, fields: Mapping[str, tuple], capacity: int):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ArgumentError.invalid("capacity", "a positive int", capacity, "replay memory")
        self.fields = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in fields.items()}
        self.capacity = int(capacity)
        self.data = {
            name: np.zeros((self.capacity,) + shape, dtype=dtype)
            for name, (shape, dtype) in self.fields.items()
        }
        self.size = 0
        self.index = 0

    def add(self, values: Mapping[str, np.ndarray]) -> None:
        """Appends a batch of transitions (every field, same number of rows).

        Args:
            values: `{name: array (n, *shape)}` for every field.
        """
        n = len(next(iter(values.values())))
        if n == 0:
            return
        start = 0
        if n > self.capacity:  # only the newest `capacity` rows survive
            start, n = n - self.capacity, self.capacity
        positions = (self.index + np.arange(n)) % self.capacity
        for name, array in self.data.items():
            array[positions] = values[name][start:]
        self.index = int((self.index + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def sample(self, rng: np.random.Generator, batch_size: int, num_batches: int = 1) -> dict:
        """Draws `num_batches` minibatches uniformly, with replacement.

        Args:
            rng: The NumPy generator to draw indices with.
            batch_size: Transitions per minibatch.
            num_batches: Number of minibatches.

        Returns:
            `{name: array (num_batches, batch_size, *shape)}`; int64 fields
            are returned as int32 (what the compiled functions take).

        Raises:
            ArgumentError: the memory is empty.
        """
        if self.size == 0:
            raise ArgumentError("Cannot sample from an empty replay memory.")
        return self._gather(rng.integers(0, self.size, size=(num_batches, batch_size)))

    def latest(self, batch_size: int, num_batches: int = 1) -> dict:
        """The newest `batch_size` transitions, oldest first (Tensorforce's `recent` memory).

        Every one of the `num_batches` minibatches is that same batch (the
        gradient steps of one update all see it). With fewer transitions
        stored, the stored ones repeat in order to fill `batch_size`, so the
        shapes of the compiled update stay fixed.

        Args:
            batch_size: Transitions per minibatch.
            num_batches: Number of (identical) minibatches.

        Returns:
            `{name: array (num_batches, batch_size, *shape)}`, as `sample`.

        Raises:
            ArgumentError: the memory is empty.

        Example:

        >>> memory = ReplayMemory({'reward': ((), np.float32)}, capacity=4)
        >>> memory.add({'reward': np.arange(6, dtype=np.float32)})
        >>> memory.latest(3)['reward'].tolist()
        [[3.0, 4.0, 5.0]]
        """
        if self.size == 0:
            raise ArgumentError("Cannot take transitions from an empty memory.")
        count = min(batch_size, self.size)
        newest = (self.index - count + np.arange(count)) % self.capacity
        indices = newest[np.arange(batch_size) % count]
        return self._gather(np.broadcast_to(indices, (num_batches, batch_size)))

    def _gather(self, indices: np.ndarray) -> dict:
        batch = {}
        for name, array in self.data.items():
            values = array[indices]
            if values.dtype == np.int64:
                values = values.astype(np.int32)
            batch[name] = values
        return batch

    def clear(self) -> None:
        """Forgets every transition (the arrays stay allocated)."""
        self.size = 0
        self.index = 0

    def get_arrays(self) -> dict[str, np.ndarray]:
        """The stored rows (raw ring order) plus `index` and `size`, for checkpoints."""
        arrays = {f"field/{name}": array[: self.size] for name, array in self.data.items()}
        arrays["index"] = np.asarray(self.index, np.int64)
        arrays["size"] = np.asarray(self.size, np.int64)
        return arrays

    def set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Restores what `get_arrays` returned (same ring layout, so sampling resumes exactly)."""
        where = "checkpoint of the replay memory"
        size = check_int(np.asarray(arrays.get("size", 0))[()], "memory['size']", minimum=0,
                         maximum=self.capacity, where=where)
        index = check_int(np.asarray(arrays.get("index", 0))[()], "memory['index']", minimum=0,
                          maximum=self.capacity - 1, where=where)
        fields = {name: (array.shape[1:], array.dtype) for name, array in self.data.items()}
        checked = check_saved_fields(arrays, fields, size, ("size", "index"), where)
        self.clear()
        for name, array in self.data.items():
            array[:size] = checked[name]
        self.size = size
        self.index = index


class NStepWindow:
    """Per-slot windows of the last `horizon` steps, emitted as n-step transitions.

    The agent calls `push` at every training `act` (with the states, masks
    and actions of the slots) and `set_reward` / `finish` at `observe`.

    - At `push`, a slot whose window already holds `horizon` observed steps
      emits its oldest step: reward `Σ_{i<n} γ^i r_{t+i}`, bootstrap discount
      `γ^n`, next state = the state just given.
    - At the end of an episode, `finish` emits the remaining steps: after a
      true terminal without bootstrap, each with the rewards up to the end
      and `terminal=1`; after an aborted episode (terminal 2, or a true
      terminal with `predict_terminal_values`), each step but the last
      bootstraps from the last state of the episode (its n-step return is
      cut shorter), and the last step, whose next state is never seen, is
      dropped.

    Args:
        fields: `{name: (shape, dtype)}` of the per-step fields (`states/..`,
            `masks/..`, `actions/..`).
        num_slots: Number of parallel slots.
        horizon: n of the n-step returns (>= 1).
    """

    def __init__(self, fields: Mapping[str, tuple], num_slots: int, horizon: int):
        self.fields = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in fields.items()}
        self.horizon = int(horizon)
        self.data = {
            name: np.zeros((num_slots, self.horizon) + shape, dtype=dtype)
            for name, (shape, dtype) in self.fields.items()
        }
        self.reward = np.zeros((num_slots, self.horizon), dtype=np.float64)
        self.count = np.zeros(num_slots, dtype=np.int64)
        self.state_names = [name[len("states/"):] for name in self.fields if name.startswith("states/")]
        self.mask_names = [name[len("masks/"):] for name in self.fields if name.startswith("masks/")]

    def clear(self, slots: np.ndarray | int | slice = slice(None)) -> None:
        self.count[slots] = 0

    def _transitions(self, rows: dict, reward: np.ndarray, terminal: np.ndarray,
                     discount: np.ndarray, next_rows: dict) -> dict:
        out = dict(rows)
        out["reward"] = reward.astype(np.float32)
        out["terminal"] = terminal.astype(np.float32)
        out["discount"] = discount.astype(np.float32)
        for name in self.state_names:
            out[f"next_states/{name}"] = next_rows[f"states/{name}"]
        for name in self.mask_names:
            out[f"next_masks/{name}"] = next_rows[f"masks/{name}"]
        return out

    def push(self, slots: np.ndarray, values: Mapping[str, np.ndarray], gamma: float) -> dict | None:
        """Records a new step of `slots`; returns the transitions completed by it, or None.

        Args:
            slots: `(b,)` slot indices.
            values: `{field: array (b, *shape)}` for every per-step field.
            gamma: Discount factor.
        """
        out = None
        ready = self.count[slots] >= self.horizon
        if ready.any():
            ready_slots = slots[ready]
            rows = {name: array[ready_slots, 0] for name, array in self.data.items()}
            powers = gamma ** np.arange(self.horizon)
            reward = self.reward[ready_slots] @ powers
            n = len(ready_slots)
            next_rows = {name: np.asarray(value)[ready] for name, value in values.items()}
            out = self._transitions(rows, reward, np.zeros(n), np.full(n, gamma ** self.horizon),
                                    next_rows)
            if self.horizon > 1:
                for array in list(self.data.values()) + [self.reward]:
                    array[ready_slots, :-1] = array[ready_slots, 1:]
            self.count[ready_slots] -= 1
        positions = self.count[slots]
        for name, array in self.data.items():
            array[slots, positions] = values[name]
        self.reward[slots, positions] = 0.0
        self.count[slots] += 1
        return out

    def set_reward(self, slots: np.ndarray, reward: np.ndarray) -> None:
        """Stores the rewards of the newest step of `slots`."""
        self.reward[slots, self.count[slots] - 1] = reward

    def finish(self, slot: int, bootstrap: bool, gamma: float) -> dict | None:
        """Ends the episode of `slot`; returns its remaining transitions, or None.

        Args:
            slot: The slot index.
            bootstrap: Bootstrap from the last state (aborted episode) rather
                than treat the end as a true terminal.
            gamma: Discount factor.
        """
        count = int(self.count[slot])
        self.count[slot] = 0
        if bootstrap:
            count -= 1  # the last step has no observed next state: dropped
        if count <= 0:
            return None
        rewards = self.reward[slot, :count]
        powers = gamma ** np.arange(count)
        # reward[k] = Σ_{j>=k} γ^(j-k) r_j over the kept steps.
        reward = np.array([rewards[k:] @ powers[: count - k] for k in range(count)])
        rows = {name: array[slot, :count].copy() for name, array in self.data.items()}
        if bootstrap:
            last = self.data
            next_rows = {name: np.repeat(last[name][slot, count:count + 1], count, axis=0)
                         for name in self.data}
            terminal = np.zeros(count)
            discount = gamma ** (count - np.arange(count)).astype(np.float64)
        else:
            next_rows = dict(rows)
            for name in self.mask_names:
                next_rows[f"masks/{name}"] = np.ones_like(rows[f"masks/{name}"])
            terminal = np.ones(count)
            discount = gamma ** (count - np.arange(count)).astype(np.float64)
        return self._transitions(rows, reward, terminal, discount, next_rows)
