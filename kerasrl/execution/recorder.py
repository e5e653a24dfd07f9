"""The `recorder` agent argument: Tensorforce-compatible trace files.

Any agent created with `recorder=dict(directory=..., frequency=1, start=0,
max-traces=None)` (or `recorder='directory'`) writes the states, actions,
terminals and rewards of its *training* interaction (`act`/`observe` without
`independent=True`) to `.npz` files that Tensorforce's `pretrain` reads, and
that `agent.pretrain` reads back (see `kerasrl.execution.pretrain`).

Rules (Tensorforce's, reference §5.1):

- Buffers are kept per parallel slot; an episode of a slot is complete at its
  terminal observe (1, or 2 for an abort).
- The episode that finishes as the k-th training episode (0-based, in the
  order the terminals are observed) is recorded when `k >= start`.
- When `(episodes - start) % frequency == 0` (`episodes` = finished episodes
  so far), every recorded episode not yet written is concatenated along the
  time axis and written to `trace-{episodes - 1:09d}.npz` with
  `np.savez_compressed`, through a temporary file and `os.replace`, so a
  reader never sees half a file.
- With `max-traces`, the oldest `trace-*.npz` files of the directory (sorted
  by name) are deleted first so that at most `max-traces` remain, the new
  one included.

File keys: `states` and `actions` for a singleton spec, `states/<name>` and
`actions/<name>` for named (nested names joined by `/`), `terminal` (int64),
`reward` (float32), and `auxiliaries/<action>/mask` (bool, `(T, *shape,
num_values)`) for every int action whose mask was given to `act` during the
episodes of the file. (Tensorforce does not record masks; kerasrl does, so
that pretraining honours them. Steps where no mask was given get an all-True
mask.) States are stored as the agent parsed them: with the spec's dtype
(float32, int64, bool), before any preprocessing.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kerasrl.errors import ArgumentError
from kerasrl.validation import check_int

#: Accepted keys of the recorder dict (`max_traces` is an alias of Tensorforce's `max-traces`).
RECORDER_KEYS = ("directory", "frequency", "start", "max-traces", "max_traces")
TRACE_PATTERN = re.compile(r"^trace-\d{9}\.npz$")


def trace_filename(episodes: int) -> str:
    """The file name of a trace whose last episode has the 0-based index `episodes - 1`.

    Args:
        episodes: Number of episodes finished when the file is written.

    Returns:
        `'trace-{episodes - 1:09d}.npz'`.

    Example:

    >>> trace_filename(1)
    'trace-000000000.npz'
    """
    return f"trace-{episodes - 1:09d}.npz"


def parse_recorder_spec(spec: Any) -> dict:
    """Normalizes a `recorder` argument.

    Args:
        spec: A directory (str or path), or a dict with `directory` and
            optionally `frequency` (default 1), `start` (default 0) and
            `max-traces` (alias `max_traces`; default None: keep all).

    Returns:
        `dict(directory, frequency, start, max_traces)`.

    Raises:
        ArgumentError: unknown keys or invalid values.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = {"directory": spec}
    if not isinstance(spec, Mapping):
        raise ArgumentError.invalid(
            "recorder", "a directory or dict(directory=..., frequency=1, start=0, "
            "max-traces=None)", spec,
        )
    spec = dict(spec)
    unknown = sorted(set(spec) - set(RECORDER_KEYS))
    if unknown:
        raise ArgumentError.invalid(
            f"recorder key(s) {unknown}", f"keys among {list(RECORDER_KEYS)}", spec
        )
    if "max-traces" in spec and "max_traces" in spec:
        raise ArgumentError(
            "Give either 'max-traces' or 'max_traces' in the recorder dict, not both; "
            f"received {spec!r}."
        )
    directory = spec.get("directory")
    if not isinstance(directory, (str, os.PathLike)) or not str(directory):
        raise ArgumentError.invalid("recorder['directory']", "a directory path", directory)
    frequency = check_int(spec.get("frequency", 1), "recorder['frequency']", minimum=1)
    start = check_int(spec.get("start", 0) or 0, "recorder['start']", minimum=0)
    max_traces = spec.get("max-traces", spec.get("max_traces"))
    if max_traces is not None:
        max_traces = check_int(max_traces, "recorder['max-traces']", minimum=1)
    return {"directory": str(directory), "frequency": frequency, "start": start,
            "max_traces": max_traces}


class _SlotBuffer:
    """The running episode of one parallel slot (lists of per-timestep values)."""

    __slots__ = ("states", "masks", "actions", "terminal", "reward")

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.states: list[dict] = []
        self.masks: list[dict] = []
        self.actions: list[dict] = []
        self.terminal: list[int] = []
        self.reward: list[float] = []


class Recorder:
    """Writes an agent's training episodes to Tensorforce-style trace files.

    Created by the agent from its `recorder` argument; not meant to be
    instantiated directly.

    Args:
        agent: The agent (for its specs and episode counter).
        directory: Where the `trace-*.npz` files go (created if needed).
        frequency: Write a file every this many finished episodes.
        start: Number of initial episodes that are not recorded.
        max_traces: Keep at most this many trace files (None: all).

    Attributes:
        episodes: Finished training episodes seen (starting from the agent's
            `episodes` when the recorder was created).
        written: Paths of the files written so far.
    """

    def __init__(self, agent: Any, directory: str, frequency: int = 1, start: int = 0,
                 max_traces: int | None = None):
        self.directory = Path(directory)
        self.frequency = frequency
        self.start = start
        self.max_traces = max_traces
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArgumentError.invalid(
                "recorder['directory']", "a directory that can be created", str(directory)
            ) from exc
        self.states_spec = agent.states_spec
        self.actions_spec = agent.actions_spec
        self.episodes = int(agent.episodes)
        self.written: list[Path] = []
        self._buffers = [_SlotBuffer() for _ in range(agent.parallel_interactions)]
        self._recorded: list[dict] = []

    def get_config(self) -> dict:
        """The recorder dict in Tensorforce's spelling (`max-traces`)."""
        return {"directory": str(self.directory), "frequency": self.frequency,
                "start": self.start, "max-traces": self.max_traces}

    # ------------------------------------------------------------------ hooks
    def on_act(self, agent: Any, states: dict, masks: dict, actions: dict,
               slots: np.ndarray) -> None:
        """Appends the states, given masks and actions of each acting slot."""
        for index, slot in enumerate(slots):
            buffer = self._buffers[int(slot)]
            if agent._episode_timesteps[slot] == 0:
                # First step of an episode (e.g. after agent.reset()): drop leftovers.
                buffer.clear()
            buffer.states.append({name: np.array(value[index]) for name, value in states.items()})
            buffer.masks.append({name: np.array(value[index]) for name, value in masks.items()})
            buffer.actions.append(
                {name: np.array(value[index]) for name, value in actions.items()})

    def on_observe(self, agent: Any, reward: np.ndarray, terminal: np.ndarray,
                   slots: np.ndarray) -> None:
        """Appends rewards and terminals; completes, records and writes episodes."""
        for index, slot in enumerate(slots):
            buffer = self._buffers[int(slot)]
            if len(buffer.reward) >= len(buffer.actions):
                continue  # observe of an act made before the recorder saw the episode
            buffer.reward.append(float(reward[index]))
            buffer.terminal.append(int(terminal[index]))
            if terminal[index] > 0:
                self._finish(buffer)

    def close(self, agent: Any) -> None:
        """Nothing to flush: like Tensorforce, only complete files are written."""

    # ------------------------------------------------------------------ internals
    def _finish(self, buffer: _SlotBuffer) -> None:
        self.episodes += 1
        if self.episodes > self.start:
            self._recorded.append(self._episode_arrays(buffer))
        buffer.clear()
        if self.episodes > self.start and (self.episodes - self.start) % self.frequency == 0 \
                and self._recorded:
            self._write()

    def _episode_arrays(self, buffer: _SlotBuffer) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for name, spec in self.states_spec.items():
            key = "states" if self.states_spec.singleton else f"states/{name}"
            arrays[key] = np.stack([step[name] for step in buffer.states]).astype(
                spec.dtype, copy=False)
        for name, spec in self.actions_spec.items():
            key = "actions" if self.actions_spec.singleton else f"actions/{name}"
            arrays[key] = np.stack([step[name] for step in buffer.actions]).astype(
                spec.dtype, copy=False)
        arrays["terminal"] = np.asarray(buffer.terminal, dtype=np.int64)
        arrays["reward"] = np.asarray(buffer.reward, dtype=np.float32)
        given = {name for step in buffer.masks for name in step}
        for name in self.actions_spec:
            if name not in given:
                continue
            full = np.ones(self.actions_spec[name].mask_shape(), dtype=np.bool_)
            arrays[f"auxiliaries/{name}/mask"] = np.stack(
                [step.get(name, full) for step in buffer.masks]).astype(np.bool_, copy=False)
        return arrays

    def _write(self) -> None:
        episodes, self._recorded = self._recorded, []
        keys = list(dict.fromkeys(key for episode in episodes for key in episode))
        data = {}
        for key in keys:
            parts = []
            for episode in episodes:
                if key in episode:
                    parts.append(episode[key])
                else:  # a mask given in another episode of this file only
                    length = len(episode["terminal"])
                    name = key[len("auxiliaries/"):-len("/mask")]
                    parts.append(np.ones((length,) + self.actions_spec[name].mask_shape(),
                                         dtype=np.bool_))
            data[key] = np.concatenate(parts, axis=0)
        target = self.directory / trace_filename(self.episodes)
        if self.max_traces is not None:
            existing = sorted(path for path in self.directory.iterdir()
                              if TRACE_PATTERN.match(path.name) and path.name != target.name)
            for path in existing[:max(0, len(existing) - (self.max_traces - 1))]:
                path.unlink(missing_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".trace-", suffix=".tmp",
                                             dir=self.directory)
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez_compressed(file, **data)
            os.replace(temporary, target)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        self.written.append(target)


def create_recorder(agent: Any, spec: Any) -> Recorder:
    """Plugin factory of the `recorder` agent argument (see `Recorder`).

    Args:
        agent: The agent being built.
        spec: The `recorder` argument (directory, or dict).

    Returns:
        A `Recorder`.

    Raises:
        ArgumentError: invalid recorder spec.
    """
    return Recorder(agent, **parse_recorder_spec(spec))


__all__ = ["Recorder", "create_recorder", "parse_recorder_spec", "trace_filename"]
