"""Vectorizable and multi-actor custom environments (Tensorforce's indexed protocol).

Some environments step many interactions at once themselves, reporting which
of them are still running with an array of *parallel indices*:

- a **vectorizable** environment (`is_vectorizable()` returns True) runs N
  episodes side by side: `reset(num_parallel=N)` returns
  `(indices, states_batch)` and `execute(actions_batch)` returns
  `(indices, states_batch, terminal_batch, reward_batch)`;
- a **multi-actor** environment (`num_actors()` returns K > 1) is one episode
  shared by K actors: `reset()` returns `(indices, states_batch)` and
  `execute(actions_batch)` the same 4-tuple.

`IndexedEnvironment` wraps such an environment, validates everything it
returns, converts states to flat dicts of batched arrays (the format of
`VectorEnvironment`) and enforces `max_episode_timesteps`. The `Runner`
uses it automatically (see `docs/environments.md`).

The protocol, as in Tensorforce's examples:

- `actions_batch` holds one row per index that was running before the call,
  in that order; `terminal_batch` and `reward_batch` are aligned with it;
- the returned `indices` are the running indices whose terminal is 0, in the
  same order (finished interactions drop out until the next reset);
- `states_batch` holds the next states of the returned indices (a batch with
  one row per *acted* index is accepted too: the rows of finished indices are
  then dropped);
- once no index is running, the episode (of every interaction) is over and the
  next `reset` starts all of them again.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from kerasrl.environments.environment import (
    Environment,
    EnvironmentOutputError,
    _check_max_episode_timesteps,
    _environment_specs,
    _name_of,
    invalid_state,
)
from kerasrl.environments.vectorized import check_batched_actions
from kerasrl.errors import ArgumentError, CallOrderError, InputError
from kerasrl.specs import flatten, unflatten


def is_indexed(environment: Any) -> bool:
    """Whether `environment` is a vectorizable or multi-actor `Environment` instance.

    Args:
        environment: Any object.

    Returns:
        True for an `Environment` whose `is_vectorizable()` is True or whose
        `num_actors()` is above 1.
    """
    if not isinstance(environment, Environment):
        return False
    return bool(environment.is_vectorizable()) or _num_actors(environment) > 1


def _num_actors(environment: Environment) -> int:
    count = environment.num_actors()
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ArgumentError.invalid(
            "num_actors()", "an int >= 1", count, where=f"environment {_name_of(environment)}"
        )
    return int(count)


class IndexedEnvironment:
    """Steps a vectorizable or multi-actor `Environment` as one batch of interactions.

    Args:
        environment: An `Environment` instance with `is_vectorizable()` True
            or `num_actors() > 1`.
        num_parallel: Vectorizable environments: number of interactions N
            (>= 1). Multi-actor environments: None or `num_actors()`.
        max_episode_timesteps: Maximum episode length; when an episode
            reaches it, every running interaction ends with terminal 2.
            Overrides the environment's own None and must not exceed its own
            value.
        reward_shaping: Must be None: the reward shaping of `Environment.create`
            applies to single episodes and is refused here rather than dropped.

    Attributes:
        num_parallel: Number of interactions (N, or the number of actors).
        multi_actor: Whether the environment is multi-actor.
        states_spec, actions_spec: The validated `Specs`.
        max_episode_timesteps: The episode limit (or None).

    Raises:
        ArgumentError: for an ordinary environment or invalid arguments.
        SpecError: for invalid state or action specs.

    Example:

    ```python
    env = IndexedEnvironment(MyVectorizedEnvironment(), num_parallel=8)
    indices, states = env.reset()               # indices [0..7], states {'state': (8, ...)}
    indices, states, terminal, reward = env.execute({'action': np.zeros(8, np.int64)})
    ```
    """

    def __init__(
        self,
        environment: Environment,
        num_parallel: int | None = None,
        max_episode_timesteps: int | None = None,
        reward_shaping: Any = None,
    ):
        if not isinstance(environment, Environment):
            raise ArgumentError.invalid(
                "environment", "an Environment instance", environment,
                where="IndexedEnvironment",
            )
        name = _name_of(environment)
        if reward_shaping is not None:
            raise ArgumentError.invalid(
                "reward_shaping", "None for a vectorizable or multi-actor environment",
                reward_shaping, where=f"environment {name}",
            )
        actors = _num_actors(environment)
        self.multi_actor = actors > 1
        if self.multi_actor:
            if environment.is_vectorizable():
                raise ArgumentError.invalid(
                    "environment", "either a vectorizable or a multi-actor environment, not both",
                    name, where="IndexedEnvironment",
                )
            if num_parallel not in (None, 1, actors):
                raise ArgumentError.invalid(
                    "num_parallel", f"None (or {actors}): environment {name} has "
                    f"num_actors()={actors}, each actor is a parallel interaction",
                    num_parallel, where="IndexedEnvironment",
                )
            num_parallel = actors
        elif environment.is_vectorizable():
            if isinstance(num_parallel, bool) or not isinstance(
                    num_parallel, (int, np.integer)) or num_parallel < 1:
                raise ArgumentError.invalid(
                    "num_parallel", "an int >= 1 for a vectorizable environment",
                    num_parallel, where="IndexedEnvironment",
                )
        else:
            raise ArgumentError.invalid(
                "environment", "a vectorizable (is_vectorizable() True) or multi-actor "
                "(num_actors() > 1) environment", name, where="IndexedEnvironment",
            )
        self._environment = environment
        self.num_parallel = int(num_parallel)
        max_episode_timesteps = _check_max_episode_timesteps(max_episode_timesteps)
        own = environment.max_episode_timesteps()
        if own is not None:
            own = _check_max_episode_timesteps(own)
        if max_episode_timesteps is not None and own is not None and max_episode_timesteps > own:
            raise ArgumentError.invalid(
                "max_episode_timesteps",
                f"at most the environment's own max_episode_timesteps ({own})",
                max_episode_timesteps, where=f"environment {name}",
            )
        self.max_episode_timesteps = max_episode_timesteps if max_episode_timesteps is not None \
            else own
        self.states_spec, self.actions_spec, self._mask_specs = _environment_specs(
            environment, name)
        self._running: np.ndarray | None = None
        self._timestep = 0
        self._closed = False

    # ------------------------------------------------------------------ interface
    @property
    def environment(self) -> Environment:
        """The wrapped environment."""
        return self._environment

    @property
    def running(self) -> np.ndarray:
        """Indices of the interactions still running (empty outside an episode)."""
        return np.zeros((0,), np.int64) if self._running is None else self._running.copy()

    def __str__(self) -> str:
        return _name_of(self._environment)

    def supports_seed(self) -> bool:
        """Whether the environment's `reset` accepts a `seed` keyword."""
        try:
            parameters = inspect.signature(self._environment.reset).parameters.values()
        except (TypeError, ValueError):  # pragma: no cover - builtins
            return False
        return any(p.name == "seed" or p.kind is inspect.Parameter.VAR_KEYWORD
                   for p in parameters)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Starts an episode of every interaction.

        Args:
            seed: Optional seed given to the environment's `reset`.

        Returns:
            `(indices, states)`: int64 indices of the running interactions
            and a flat dict of batched states aligned with them.

        Raises:
            CallOrderError: after `close()`.
            ArgumentError: a seed for an environment whose reset takes none.
            EnvironmentOutputError: invalid indices or states.
        """
        if self._closed:
            raise CallOrderError(f"Environment {self}: reset() after close().")
        kwargs: dict = {} if self.multi_actor else {"num_parallel": self.num_parallel}
        if seed is not None:
            if not self.supports_seed():
                raise ArgumentError.invalid(
                    "seed", "None: the reset() of this environment takes no seed", seed,
                    where=f"environment {self}",
                )
            kwargs["seed"] = seed
        result = self._environment.reset(**kwargs)
        if not isinstance(result, tuple) or len(result) != 2:
            raise self._fail("reset", "result", "a pair (parallel indices, states batch)",
                             result)
        indices = self._indices(result[0], "reset", np.arange(self.num_parallel))
        states = self._states(result[1], "reset", len(indices), None)
        self._running = indices
        self._timestep = 0
        return indices.copy(), states

    def execute(
        self, actions: Mapping[str, Any] | np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Executes one batch of actions, one row per running interaction.

        Args:
            actions: A flat dict `{action_name: array (R, ...)}` for the R
                running indices (an array for a singleton action spec).

        Returns:
            `(indices, states, terminal, reward)`: the indices still running
            and their next states (flat dict); int64 terminal in {0, 1, 2}
            and float32 reward, one per interaction that acted.

        Raises:
            CallOrderError: execute before reset or after every interaction
                ended.
            InputError: actions outside the spec or of the wrong batch size.
            EnvironmentOutputError: invalid indices, states, terminal or reward.
        """
        running = self._running
        if running is None or len(running) == 0:
            raise CallOrderError(
                f"Environment {self}: execute() called before reset() or after every "
                "interaction ended; call reset() to start an episode."
            )
        size = len(running)
        checked = check_batched_actions(self, self.actions_spec, actions, size)
        value = checked["action"] if self.actions_spec.singleton else unflatten(checked)
        result = self._environment.execute(value)
        if not isinstance(result, tuple) or len(result) != 4:
            raise self._fail("execute", "result",
                             "a 4-tuple (parallel indices, states, terminal, reward)", result)
        raw_indices, raw_states, raw_terminal, raw_reward = result
        terminal = self._terminal(raw_terminal, size)
        reward = self._reward(raw_reward, size)
        expected = running[terminal == 0]
        indices = self._indices(raw_indices, "execute", running)
        if not np.array_equal(indices, expected):
            raise self._fail(
                "execute", "parallel indices",
                f"the running indices whose terminal is 0, in order ({expected.tolist()})",
                indices.tolist(),
            )
        states = self._states(raw_states, "execute", len(indices), terminal == 0)
        self._timestep += 1
        limit = self.max_episode_timesteps
        if limit is not None and self._timestep >= limit and len(indices):
            terminal = np.where(terminal == 0, 2, terminal)
            indices = indices[:0]
            states = {name: array[:0] for name, array in states.items()}
        self._running = indices
        return indices.copy(), states, terminal, reward

    def close(self) -> None:
        """Closes the environment."""
        if not self._closed:
            self._closed = True
            self._running = None
            self._environment.close()

    def get_config(self) -> dict:
        """Returns the environment spec and the number of interactions."""
        config = dict(self._environment.get_config())
        if not self.multi_actor:
            config["num_parallel"] = self.num_parallel
        if self.max_episode_timesteps is not None:
            config["max_episode_timesteps"] = self.max_episode_timesteps
        return config

    # ------------------------------------------------------------------ validation
    def _fail(self, function: str, what: str, expected: str, received: Any) -> Exception:
        return EnvironmentOutputError.invalid(
            what, expected, received, where=f"environment {self} ({function})"
        )

    def _indices(self, value: Any, function: str, allowed: np.ndarray) -> np.ndarray:
        array = np.asarray(value)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise self._fail(function, "parallel indices", "a 1-D int array", value)
        array = array.astype(np.int64, copy=False)
        if len(np.unique(array)) != len(array) or not np.isin(array, allowed).all():
            raise self._fail(
                function, "parallel indices",
                f"distinct indices among {allowed.tolist()}", array.tolist(),
            )
        return array

    def _states(self, value: Any, function: str, size: int,
                keep: np.ndarray | None) -> dict[str, np.ndarray]:
        specs = self.states_spec
        if isinstance(value, Mapping):
            flat = flatten(value) if any(isinstance(v, Mapping) for v in value.values()) \
                else dict(value)
        elif specs.singleton:
            flat = {"state": value}
        else:
            raise self._fail(function, "states", f"a dict of batched states {list(specs)}",
                             value)
        unknown = [n for n in flat if n not in specs._specs and n not in self._mask_specs]
        missing = [n for n in specs if n not in flat]
        if unknown or missing:
            raise self._fail(
                function, "states",
                f"batched states {list(specs)} (and '<action>_mask'); unknown {unknown}, "
                f"missing {missing}", sorted(flat),
            )
        converted = {}
        for name, raw in flat.items():
            spec = specs._specs.get(name) or self._mask_specs[name]
            try:
                array = spec.check_batch(raw, argument=name, num_batch_dims=1)
            except InputError as exc:
                raise invalid_state(self, name, function, exc) from None
            if keep is not None and len(array) == len(keep) and len(keep) != size:
                array = array[keep]  # rows of the acted indices: drop the finished ones
            if len(array) != size:
                acted = "" if keep is None else f" (or {len(keep)}, one per acted index)"
                raise self._fail(
                    function, f"state '{name}'",
                    f"a batch of {size} rows, one per returned index{acted}",
                    f"shape {array.shape}",
                )
            converted[name] = array
        for name in self._mask_specs:
            mask = converted.get(name)
            if mask is not None and mask.size and not mask.any(axis=-1).all():
                raise self._fail(function, f"state '{name}'",
                                 "at least one allowed action per mask row", mask)
        return converted

    def _terminal(self, value: Any, size: int) -> np.ndarray:
        array = np.asarray(value)
        if array.shape != (size,) or array.dtype.kind not in "biu" or (
                array.size and (array.min() < 0 or array.max() > 2)):
            raise self._fail(
                "execute", "terminal",
                f"{size} values (one per acted index), bools or ints in {{0, 1, 2}}", value,
            )
        return array.astype(np.int64)

    def _reward(self, value: Any, size: int) -> np.ndarray:
        array = np.asarray(value)
        if array.shape != (size,) or array.dtype.kind not in "biuf":
            raise self._fail("execute", "reward",
                             f"{size} numbers (one per acted index)", value)
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise self._fail("execute", "reward", "finite rewards (no NaN/inf)", value)
        return array


__all__ = ["IndexedEnvironment", "is_indexed"]
