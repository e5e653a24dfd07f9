"""Host-side experience storage in preallocated NumPy arrays.

- `TrajectoryBuffer`: the running (unfinished) trajectory of every parallel
  slot, written one timestep at a time for any subset of slots with a single
  fancy-indexed assignment per field.
- `RecentMemory`: finished, processed segments (episodes, or rollout pieces)
  kept in order; an update reads the most recent timesteps or episodes.

Both hold flat dicts of arrays (`{field_name: array}`), so states and actions
of any nesting are stored the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from kerasrl.errors import ArgumentError


def check_saved_fields(arrays: Mapping[str, np.ndarray], fields: Mapping[str, tuple],
                       rows: int, extra: tuple[str, ...], where: str) -> dict[str, np.ndarray]:
    """Checks memory arrays read from a checkpoint before they are used.

    The arrays must be exactly `field/<name>` for every name of `fields` (none
    when `rows` is 0) plus the keys `extra`; each field array must have `rows`
    rows of the field's shape, a dtype of the same kind (bool, int or float),
    and finite values where it is float.

    Args:
        arrays: `{key: array}` as read from the checkpoint.
        fields: `{name: (shape, dtype)}` of the memory.
        rows: Number of rows the checkpoint declares.
        extra: The non-field keys the memory stores (e.g. `'size'`).
        where: Context for messages (e.g. `"checkpoint of the replay memory"`).

    Returns:
        `{name: array}` of the fields, cast to their dtypes.

    Raises:
        ArgumentError: for a missing or unexpected key, a wrong shape or
            dtype, or a non-finite value.
    """
    expected = {f"field/{name}" for name in fields} if rows else set()
    keys = set(arrays) - set(extra)
    if keys - expected or (rows and expected - keys):
        raise ArgumentError.invalid(
            "memory arrays", f"the keys {sorted(expected | set(extra))}", sorted(arrays), where)
    checked = {}
    for name, (shape, dtype) in fields.items():
        if not rows:
            checked[name] = np.zeros((0,) + tuple(shape), dtype)
            continue
        array = np.asarray(arrays[f"field/{name}"])
        kind = np.dtype(dtype).kind
        if array.shape != (rows,) + tuple(shape) or array.dtype.kind not in (
                "b" if kind == "b" else "biu" if kind in "iu" else "biuf"):
            raise ArgumentError.invalid(
                f"memory['field/{name}']", f"an array of shape {(rows,) + tuple(shape)} and "
                f"dtype {np.dtype(dtype).name}", array, where)
        if kind == "f" and not np.isfinite(array).all():
            raise ArgumentError.invalid(f"memory['field/{name}']", "finite values", array, where)
        checked[name] = array.astype(dtype, copy=False)
    return checked


class TrajectoryBuffer:
    """Per-slot running trajectories.

    Args:
        fields: `{name: (shape, dtype)}` of what one timestep holds.
        num_slots: Number of parallel slots.
        capacity: Initial timesteps per slot (grows by doubling when needed).
    """

    def __init__(self, fields: Mapping[str, tuple], num_slots: int, capacity: int = 64):
        self.fields = dict(fields)
        self.num_slots = num_slots
        self.capacity = max(1, int(capacity))
        self.data = {
            name: np.zeros((num_slots, self.capacity) + tuple(shape), dtype=dtype)
            for name, (shape, dtype) in self.fields.items()
        }
        self.position = np.zeros(num_slots, dtype=np.int64)

    def _grow(self) -> None:
        self.capacity *= 2
        for name, array in self.data.items():
            grown = np.zeros((array.shape[0], self.capacity) + array.shape[2:], dtype=array.dtype)
            grown[:, : array.shape[1]] = array
            self.data[name] = grown

    def write(self, slots: np.ndarray, values: Mapping[str, np.ndarray], advance: bool) -> None:
        """Writes `values` (batched over `slots`) at each slot's current position.

        Args:
            slots: `(n,)` slot indices.
            values: Subset of fields, each `(n, *shape)`.
            advance: Move the slots' positions forward after writing.
        """
        positions = self.position[slots]
        while positions.max(initial=0) >= self.capacity:
            self._grow()
        for name, value in values.items():
            self.data[name][slots, positions] = value
        if advance:
            self.position[slots] += 1

    def segment(self, slot: int, length: int | None = None) -> dict[str, np.ndarray]:
        """Copies the first `length` (default: all written) timesteps of a slot."""
        length = int(self.position[slot]) if length is None else length
        return {name: array[slot, :length].copy() for name, array in self.data.items()}

    def clear(self, slots: np.ndarray | int) -> None:
        self.position[slots] = 0


class RecentMemory:
    """The most recent processed segments, in insertion order.

    Args:
        capacity: Maximum number of timesteps kept (older segments are
            dropped whole, but the newest segment is always kept).
        max_episodes: Maximum number of complete episodes kept.
    """

    def __init__(self, capacity: int | None = None, max_episodes: int | None = None):
        self.capacity = capacity
        self.max_episodes = max_episodes
        self.segments: deque[tuple[dict[str, np.ndarray], bool]] = deque()
        self.size = 0
        self.num_episodes = 0

    def add(self, segment: dict[str, np.ndarray], episode_end: bool) -> None:
        """Appends a segment; `episode_end` marks that it completes an episode."""
        length = len(next(iter(segment.values())))
        if length == 0:
            return
        self.segments.append((segment, episode_end))
        self.size += length
        self.num_episodes += int(episode_end)
        while len(self.segments) > 1 and (
            (self.capacity is not None and self.size > self.capacity)
            or (self.max_episodes is not None and self.num_episodes > self.max_episodes)
        ):
            old, old_end = self.segments.popleft()
            self.size -= len(next(iter(old.values())))
            self.num_episodes -= int(old_end)

    def latest_timesteps(self, n: int) -> dict[str, np.ndarray]:
        """The last `min(n, size)` timesteps, concatenated."""
        parts, total = [], 0
        for segment, _ in reversed(self.segments):
            parts.append(segment)
            total += len(next(iter(segment.values())))
            if total >= n:
                break
        batch = {k: np.concatenate([p[k] for p in reversed(parts)]) for k in parts[0]}
        if total > n:
            batch = {k: v[total - n:] for k, v in batch.items()}
        return batch

    def latest_episodes(self, n: int) -> dict[str, np.ndarray]:
        """All timesteps of the last `min(n, num_episodes)` complete episodes."""
        parts, count = [], 0
        for segment, end in reversed(self.segments):
            if count >= n and end:
                break
            parts.append(segment)
            count += int(end)
        return {k: np.concatenate([p[k] for p in reversed(parts)]) for k in parts[0]}

    def clear(self) -> None:
        self.segments.clear()
        self.size = 0
        self.num_episodes = 0


def _power_of_two(n: int, minimum: int) -> int:
    """The smallest power of two >= `n`, and at least `minimum`."""
    return max(minimum, 1 << max(0, int(n - 1).bit_length()))


def pad_batch(batch: Mapping[str, np.ndarray], minimum: int = 16,
              multiple: int = 1, size: int | None = None) -> tuple[dict, np.ndarray, int]:
    """Pads every array to a power of two of rows (so compiled shapes repeat).

    Args:
        batch: `{field: (n, ...)}`.
        minimum: The fewest rows of the result.
        multiple: Pad to a power of two of blocks of `multiple` rows instead
            (the sequences of `kerasrl.agents.sequences`).
        size: Pad to exactly this many rows instead (`>= n`; chosen by
            `PaddedSizes`).

    Returns:
        `(padded, valid, n)` where `valid` is a float32 `(padded_size,)` mask
        of real rows and `n` the number of real rows. Bool arrays are padded
        with True (padded masks then allow every action).

    Example:
    >>> padded, valid, n = pad_batch({"reward": np.ones(20, "float32")})
    >>> padded["reward"].shape, int(valid.sum()), n
    ((32,), 20, 20)
    """
    n = len(next(iter(batch.values())))
    if size is None:
        size = multiple * _power_of_two(-(-n // multiple), -(-minimum // multiple))
    padded = {}
    for key, value in batch.items():
        out = np.ones if value.dtype == np.bool_ else np.zeros
        array = out((size,) + value.shape[1:], dtype=value.dtype)
        array[:n] = value
        padded[key] = array
    valid = np.zeros(size, dtype=np.float32)
    valid[:n] = 1.0
    return padded, valid, n


class PaddedSizes:
    """Chooses how many rows each update batch is padded to, so that few sizes compile.

    On JAX every new batch size is one more compilation of the update (seconds
    each), while a padded row costs microseconds. Batches whose length varies
    (episode-based updates: the episodes grow as the agent learns) would
    compile once per power of two. Instead, when no size in use holds a batch,
    the new size is the largest batch the memory can return (`maximum`, when
    it is known and one call padded to it wastes at most an eighth of
    `compile_rows`): later batches fit and nothing compiles again. A size in use
    is reused while the rows it wastes, summed over the calls, stay below
    `compile_rows` (what one compilation costs, counted in padded rows); past
    that the batch gets its own power of two, as a rented ski is bought once
    the rent has added up to its price. With `compile_rows=0` (backends that
    do not compile per shape) every batch is padded to the next power of two.

    The choice depends on the batch lengths only, never on timings, so a run
    with a fixed seed pads, and therefore samples, the same way every time;
    the state is saved with the agent.

    Args:
        maximum: The most rows a batch can have (`None`: unknown).
        compile_rows: The cost of one compilation in padded rows.
        minimum: The fewest rows of a padded batch.

    Example:
    >>> sizes = PaddedSizes(maximum=6000, compile_rows=2**18)
    >>> sizes(20), sizes(300), sizes(5000)
    (6000, 6000, 6000)
    >>> PaddedSizes(maximum=6000, compile_rows=0)(20)
    32
    """

    def __init__(self, maximum: int | None, compile_rows: int, minimum: int = 16):
        self.maximum = None if maximum is None else -(-int(maximum) // minimum) * minimum
        self.compile_rows = int(compile_rows)
        self.minimum = minimum
        self.sizes: list[int] = []
        self.waste = 0

    def __call__(self, n: int) -> int:
        """The padded size for a batch of `n` rows (and records its use)."""
        tight = _power_of_two(n, self.minimum)
        fits = [size for size in self.sizes if size >= n]
        if fits:
            size = min(fits)
            extra = max(0, size - tight)
            if self.waste + extra <= self.compile_rows:
                self.waste += extra
                return size
            self.waste = 0
        elif (self.compile_rows and self.maximum is not None and self.maximum >= n
              and self.maximum - tight <= self.compile_rows // 8):
            tight = self.maximum  # one call wastes at most an eighth of a compilation
        self.sizes.append(tight)
        return tight

    def state(self) -> dict:
        """What `set_state` restores (saved with the agent)."""
        return {"sizes": list(self.sizes), "waste": self.waste}

    def set_state(self, state: Mapping[str, Any], argument: str) -> None:
        """Restores `state()` after checking it (a checkpoint is untrusted input)."""
        sizes, waste = state.get("sizes"), state.get("waste")
        if (not isinstance(sizes, list) or len(sizes) > 64
                or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                           for s in sizes)):
            raise ArgumentError.invalid(f"{argument}['sizes']", "a list of at most 64 positive ints",
                                        sizes, where="checkpoint metadata")
        if isinstance(waste, bool) or not isinstance(waste, int) or waste < 0:
            raise ArgumentError.invalid(f"{argument}['waste']", "an int >= 0", waste,
                                        where="checkpoint metadata")
        self.sizes, self.waste = list(sizes), waste
