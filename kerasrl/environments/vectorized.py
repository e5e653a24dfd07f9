"""Vectorized environments: N copies stepped as one batch, with automatic reset.

`VectorEnvironment.create(...)` picks one of two implementations:

- `GymnasiumVectorEnvironment` for plain gymnasium ids (also `'gym'` +
  `level`, dicts and JSON files that resolve to one) without reward shaping:
  a `gymnasium.vector.SyncVectorEnv` (or `AsyncVectorEnv`) with same-step
  autoreset, converted with array operations only;
- `LocalVectorEnvironment` for everything else: N `Environment.create(...)`
  instances (each wrapped and validated), stepped in turn.

Both return flat dicts of batched arrays named as the flattened `Specs`
(`'state'` for a singleton state), plus `'<action>_mask'` entries when the
environments provide masks. Sub-environments whose terminal is not 0 are
reset within the same `execute` call, and the returned states hold their
*reset* states (Tensorforce semantics: the agent bootstraps from the last
observed state, so the final state is not needed).

Note on gymnasium's `vector_entry_point` (e.g. `CartPoleVectorEnv`): in
gymnasium 1.4 these only support the next-step autoreset mode, which cannot
return the reset states in the same step, so they are used only when
explicitly requested and when they declare same-step autoreset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kerasrl.environments.environment import (
    Environment,
    EnvironmentOutputError,
    EnvironmentWrapper,
    ResolvedEnvironment,
    gymnasium_id,
    resolve_environment,
)
from kerasrl.errors import ArgumentError, CallOrderError, InputError, UnknownTypeError
from kerasrl.specs import Specs, ValueSpec, flatten, to_python, unflatten

VECTORIZATION_MODES = ("sync", "async", "vector_entry_point", "local")
# Options of GymnasiumEnvironment that the gymnasium vector path implements itself.
_GYMNASIUM_OPTIONS = (
    "visualize", "min_value", "max_value", "terminal_reward", "reward_threshold",
    "drop_states_indices", "seed",
)


def _check_num_parallel(num_parallel: Any) -> int:
    if (
        isinstance(num_parallel, bool)
        or not isinstance(num_parallel, (int, np.integer))
        or num_parallel <= 0
    ):
        raise ArgumentError.invalid(
            "num_parallel", "a positive int", num_parallel, where="VectorEnvironment.create"
        )
    return int(num_parallel)


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArgumentError.invalid("seed", "None or an int >= 0", seed, where="VectorEnvironment")
    return int(seed)


class VectorEnvironment:
    """Base class and factory of vectorized environments.

    Attributes:
        num_parallel: Number of sub-environments N.
        states_spec: State `Specs`.
        actions_spec: Action `Specs`.
        max_episode_timesteps: Maximum episode length (or None).

    Example:

    >>> venv = VectorEnvironment.create('CartPole-v1', num_parallel=4, seed=0)
    >>> states = venv.reset()           # {'state': array (4, 4)}
    >>> states, terminal, reward = venv.execute({'action': np.zeros(4, np.int64)})
    >>> venv.close()
    """

    num_parallel: int
    states_spec: Specs
    actions_spec: Specs
    max_episode_timesteps: int | None

    @staticmethod
    def create(
        environment: Any,
        num_parallel: int = 1,
        max_episode_timesteps: int | None = None,
        seed: int | None = None,
        reward_shaping: Any = None,
        vectorization_mode: str | None = None,
        remote: str | None = None,
        **kwargs: Any,
    ) -> VectorEnvironment:
        """Creates N environments stepped as one batch.

        Args:
            environment: An environment spec as for `Environment.create`, or
                a list of N specs / instances (then `num_parallel` is N).
            num_parallel: Number of sub-environments.
            max_episode_timesteps: Maximum episode length (terminal 2).
            seed: Sub-environment i is seeded with `seed + i` at its first
                reset (later resets continue its RNG).
            reward_shaping: Reward shaping (see `Environment.create`); forces
                the local implementation.
            vectorization_mode: None (automatic: gymnasium `'sync'` for plain
                gymnasium ids, else `'local'`), `'sync'`, `'async'` (gymnasium
                subprocesses), `'vector_entry_point'` (only for gymnasium
                vector envs with same-step autoreset) or `'local'`.
            remote: None, `'multiprocessing'` (one child process per
                environment) or `'socket-client'` (`host=`/`port=` in
                kwargs, `environment` None); see `kerasrl.environments.remote`.
                Further remote options in kwargs: `blocking`, `recover`,
                `timeout`, `connect_timeout`, `auth_key`, `max_frame_bytes`.
            **kwargs: Environment arguments.

        Returns:
            A `VectorEnvironment`.

        Raises:
            ArgumentError: for invalid arguments.
        """
        if remote is not None:
            if remote not in ("multiprocessing", "socket-client"):
                raise ArgumentError.invalid(
                    "remote", "None, 'multiprocessing' or 'socket-client'", remote,
                    where="VectorEnvironment.create",
                )
            from kerasrl.environments.remote import create_remote_vector

            return create_remote_vector(
                environment, num_parallel, max_episode_timesteps, reward_shaping, remote,
                _check_seed(seed), dict(kwargs),
            )
        if vectorization_mode is not None and vectorization_mode not in VECTORIZATION_MODES:
            raise ArgumentError.invalid(
                "vectorization_mode", f"None or one of {list(VECTORIZATION_MODES)}",
                vectorization_mode, where="VectorEnvironment.create",
            )
        seed = _check_seed(seed)
        if isinstance(environment, (list, tuple)):
            if not environment:
                raise ArgumentError.invalid(
                    "environment", "a non-empty list of environments", environment,
                    where="VectorEnvironment.create",
                )
            if num_parallel not in (1, len(environment)):
                raise ArgumentError.invalid(
                    "num_parallel", f"1 or the number of environments ({len(environment)})",
                    num_parallel, where="VectorEnvironment.create",
                )
            if vectorization_mode not in (None, "local"):
                raise ArgumentError.invalid(
                    "vectorization_mode", "None or 'local' for a list of environments",
                    vectorization_mode, where="VectorEnvironment.create",
                )
            environments = [
                Environment.create(
                    spec, max_episode_timesteps=max_episode_timesteps,
                    reward_shaping=reward_shaping, **kwargs,
                )
                for spec in environment
            ]
            return LocalVectorEnvironment(environments, seed=seed)
        num_parallel = _check_num_parallel(num_parallel)
        resolved = resolve_environment(environment, max_episode_timesteps, reward_shaping, kwargs)
        if resolved.kind == "gymnasium" and "seed" in resolved.kwargs:
            # One seed for all copies would make them identical: copy i gets seed + i.
            own_seed = _check_seed(resolved.kwargs.pop("seed"))
            seed = seed if seed is not None else own_seed
        eligible = _gymnasium_eligible(resolved)
        if vectorization_mode in ("sync", "async", "vector_entry_point"):
            if not eligible:
                raise ArgumentError.invalid(
                    "vectorization_mode",
                    "'local' or None unless the environment is a plain gymnasium id "
                    "without reward shaping",
                    vectorization_mode, where="VectorEnvironment.create",
                )
        elif vectorization_mode is None and eligible:
            vectorization_mode = "sync"
        if vectorization_mode in ("sync", "async", "vector_entry_point"):
            options = dict(resolved.kwargs)
            level = options.pop("level")
            return GymnasiumVectorEnvironment(
                level,
                num_parallel=num_parallel,
                max_episode_timesteps=resolved.max_episode_timesteps,
                seed=seed,
                vectorization_mode=vectorization_mode,
                **options,
            )
        return LocalVectorEnvironment.from_resolved(resolved, num_parallel, seed=seed)

    # interface --------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Resets all sub-environments.

        Args:
            seed: Optional seed: sub-environment i gets `seed + i`. Without
                it, the first reset uses the seed given to `create`.

        Returns:
            A flat dict `{name: array (N, ...)}` (plus `'<action>_mask'`).
        """
        raise NotImplementedError

    def execute(
        self, actions: Mapping[str, Any] | np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Steps all sub-environments; finished ones are reset.

        Args:
            actions: A flat dict `{action_name: array (N, ...)}` (an array
                is accepted for a singleton action spec).

        Returns:
            `(states, terminal, reward)`: states as for `reset` (reset
            states for finished sub-environments), terminal `int64 (N,)` in
            {0, 1, 2}, reward `float32 (N,)`.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Closes all sub-environments."""
        raise NotImplementedError

    def get_config(self) -> dict:
        """Returns the arguments of `VectorEnvironment.create` (best effort)."""
        raise NotImplementedError

    def __enter__(self) -> VectorEnvironment:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # helpers ------------------------------------------------------------------------
    def _check_actions(self, actions: Any) -> dict[str, np.ndarray]:
        return check_batched_actions(self, self.actions_spec, actions, self.num_parallel)


def check_batched_actions(
    owner: Any, specs: Specs, actions: Any, size: int
) -> dict[str, np.ndarray]:
    """Validates a flat dict (or singleton array) of actions with a batch of `size` rows.

    Args:
        owner: The environment (named in error messages).
        specs: The action `Specs`.
        actions: The actions.
        size: Expected batch size.

    Returns:
        A flat dict of converted arrays.

    Raises:
        InputError: actions outside the spec or of the wrong batch size.
    """
    prefix = f"Invalid action: an action outside the spec returned to an environment ({owner})"
    if not isinstance(actions, Mapping):
        if not specs.singleton:
            raise InputError(
                f"{prefix}: expected a dict of batched actions {list(specs)}, "
                f"received {actions!r}."
            )
        actions = {"action": actions}
    elif any(isinstance(value, Mapping) for value in actions.values()):
        actions = flatten(actions)
    if len(actions) != len(specs) or any(name not in actions for name in specs):
        raise InputError(f"{prefix}: expected actions {list(specs)}, received {sorted(actions)}.")
    checked = {}
    for name, spec in specs.items():
        try:
            array = spec.check_action(actions[name], argument=name, num_batch_dims=1)
        except InputError as exc:
            raise InputError(f"{prefix}: {exc}") from None
        if array.shape[0] != size:
            raise InputError(
                f"{prefix}: expected a batch of {size} values for '{name}', received "
                f"shape {array.shape}."
            )
        checked[name] = array
    return checked


def _gymnasium_eligible(resolved: ResolvedEnvironment) -> bool:
    return (
        resolved.kind == "gymnasium"
        and isinstance(resolved.kwargs.get("level"), str)
        and resolved.reward_shaping is None
    )


# ---------------------------------------------------------------------- gymnasium
class GymnasiumVectorEnvironment(VectorEnvironment):
    """N gymnasium environments in a gymnasium vector env with same-step autoreset.

    Args:
        level: A gymnasium id (versionless ids mean the latest version).
        num_parallel: Number of sub-environments.
        max_episode_timesteps: Sets the sub-environments' TimeLimit.
        seed: Seeds of the first reset are `seed + i`.
        vectorization_mode: `'sync'` (default), `'async'` or
            `'vector_entry_point'`.
        visualize: Render with `render_mode='human'`.
        min_value: As `GymnasiumEnvironment` (with `max_value`).
        max_value: As `GymnasiumEnvironment`.
        terminal_reward: Added to the reward of `terminated` steps.
        reward_threshold: Kept as the attribute `reward_threshold`.
        drop_states_indices: As `GymnasiumEnvironment`.
        **gym_kwargs: Arguments of `gymnasium.make`.

    Raises:
        ArgumentError: invalid arguments, or a vector entry point without
            same-step autoreset.
    """

    def __init__(
        self,
        level: str,
        num_parallel: int = 1,
        max_episode_timesteps: int | None = None,
        seed: int | None = None,
        vectorization_mode: str = "sync",
        visualize: bool = False,
        min_value: float | None = None,
        max_value: float | None = None,
        terminal_reward: float = 0.0,
        reward_threshold: float | None = None,
        drop_states_indices: list[int] | None = None,
        **gym_kwargs: Any,
    ):
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode

        from kerasrl.environments.gymnasium import (
            _check_bounds_options,
            space_adapter,
        )

        where = "GymnasiumVectorEnvironment"
        self.num_parallel = _check_num_parallel(num_parallel)
        self._seed = _check_seed(seed)
        _check_bounds_options(min_value, max_value, where)
        level_id = gymnasium_id(level)
        if level_id is None:
            raise UnknownTypeError.invalid("level", "a registered gymnasium id", level, where=where)
        if vectorization_mode not in ("sync", "async", "vector_entry_point"):
            raise ArgumentError.invalid(
                "vectorization_mode", "'sync', 'async' or 'vector_entry_point'",
                vectorization_mode, where=where,
            )
        if isinstance(drop_states_indices, int):
            drop_states_indices = [drop_states_indices]
        self.level = level
        self.level_id = level_id
        self.vectorization_mode = vectorization_mode
        self.terminal_reward = float(terminal_reward)
        self._options = {
            "visualize": visualize, "min_value": min_value, "max_value": max_value,
            "terminal_reward": terminal_reward, "drop_states_indices": drop_states_indices,
        }
        self._gym_kwargs = dict(gym_kwargs)
        make_kwargs = dict(gym_kwargs)
        if visualize:
            make_kwargs["render_mode"] = "human"
        if max_episode_timesteps is not None:
            make_kwargs.setdefault("max_episode_steps", int(max_episode_timesteps))
        vector_kwargs = {}
        if vectorization_mode != "vector_entry_point":
            vector_kwargs = {"autoreset_mode": AutoresetMode.SAME_STEP, "copy": False}
        try:
            self.environment = gym.make_vec(
                level_id, num_envs=self.num_parallel, vectorization_mode=vectorization_mode,
                vector_kwargs=vector_kwargs, **make_kwargs,
            )
        except TypeError as exc:
            raise ArgumentError(
                f"Invalid arguments for gymnasium environment {level_id!r}: {exc}."
            ) from None
        except gym.error.Error as exc:
            raise ArgumentError.invalid(
                "level", "a gymnasium id that can be vectorized", f"{level}: {exc}", where=where
            ) from None
        if self.environment.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            mode = self.environment.metadata.get("autoreset_mode")
            self.environment.close()
            raise ArgumentError.invalid(
                "vectorization_mode",
                "'sync' or 'async': this vector entry point does not support same-step "
                "autoreset",
                f"{vectorization_mode} ({level_id} autoreset mode {mode})", where=where,
            )
        spec = gym.spec(level_id.rpartition(":")[2])  # 'module:Env-v0' imported by now
        if "max_episode_steps" in make_kwargs:
            self.max_episode_timesteps = int(make_kwargs["max_episode_steps"])
        else:
            steps = spec.max_episode_steps
            self.max_episode_timesteps = int(steps) if steps is not None else None
        if self.max_episode_timesteps is not None and self.max_episode_timesteps <= 0:
            self.max_episode_timesteps = None
        self.reward_threshold = (
            reward_threshold if reward_threshold is not None else spec.reward_threshold
        )
        self._states_adapter = space_adapter(
            self.environment.single_observation_space, min_value, max_value,
            drop_states_indices, is_state=True, where="observation_space",
        )
        self._actions_adapter = space_adapter(
            self.environment.single_action_space, is_state=False, where="action_space"
        )
        self.states_spec = Specs(self._states_adapter.spec, "states")
        self.actions_spec = Specs(self._actions_adapter.spec, "actions")
        self._float_states = [
            name for name, spec in self.states_spec.items() if spec.type == "float"
        ]
        self._reset_done = False
        self._closed = False

    def __str__(self) -> str:
        return f"GymnasiumVectorEnvironment({self.level_id}, num_parallel={self.num_parallel})"

    def _states(self, observations: Any, function: str) -> dict[str, np.ndarray]:
        value = self._states_adapter.to_value(observations)
        states = {"state": value} if self.states_spec.singleton else flatten(value)
        for name in self._float_states:
            if not np.isfinite(states[name]).all():
                raise EnvironmentOutputError(
                    f"Environment {self} returned an invalid state '{name}' from {function}(): "
                    "expected finite values (no NaN/inf)."
                )
        return states

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if self._closed:
            raise CallOrderError(f"Environment {self}: reset() after close().")
        seed = _check_seed(seed)
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        observations, _ = self.environment.reset(seed=seed)
        self._reset_done = True
        return self._states(observations, "reset")

    def execute(
        self, actions: Mapping[str, Any] | np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        if not self._reset_done:
            raise CallOrderError(
                f"Environment {self}: execute() called before reset(); call reset() first."
            )
        checked = self._check_actions(actions)
        value = checked["action"] if self.actions_spec.singleton else unflatten(checked)
        gym_actions = self._actions_adapter.to_gym(value, batched=True)
        observations, rewards, terminated, truncated, _ = self.environment.step(gym_actions)
        terminal = np.where(terminated, 1, np.where(truncated, 2, 0)).astype(np.int64)
        reward = np.asarray(rewards, dtype=np.float32)
        if self.terminal_reward:
            reward = reward + np.float32(self.terminal_reward) * terminated
        elif reward is rewards:
            reward = reward.copy()
        if not np.isfinite(reward).all():
            raise EnvironmentOutputError(
                f"Environment {self} returned an invalid reward from execute(): expected "
                f"finite values (no NaN/inf), received {reward.tolist()}."
            )
        return self._states(observations, "execute"), terminal, reward

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.environment.close()

    def get_config(self) -> dict:
        config: dict[str, Any] = {
            "environment": "gymnasium", "level": self.level,
            "num_parallel": self.num_parallel,
            "max_episode_timesteps": self.max_episode_timesteps,
            "vectorization_mode": self.vectorization_mode,
        }
        for key, value in self._options.items():
            if value not in (None, False, 0.0):
                config[key] = value
        config.update(self._gym_kwargs)
        return config


# ---------------------------------------------------------------------- local
class LocalVectorEnvironment(VectorEnvironment):
    """N wrapped environments stepped in turn, finished ones reset.

    Args:
        environments: N `EnvironmentWrapper`s (from `Environment.create`)
            with equal specs.
        seed: Seeds of the first reset are `seed + i`.

    Raises:
        ArgumentError: for differing specs or invalid arguments.
    """

    def __init__(self, environments: Sequence[EnvironmentWrapper], seed: int | None = None):
        environments = list(environments)
        if not environments:
            raise ArgumentError.invalid(
                "environments", "a non-empty list", environments, where="LocalVectorEnvironment"
            )
        for env in environments:
            if not isinstance(env, EnvironmentWrapper):
                raise ArgumentError.invalid(
                    "environments", "environments created by Environment.create", env,
                    where="LocalVectorEnvironment",
                )
        if len({id(env) for env in environments}) != len(environments):
            raise ArgumentError.invalid(
                "environments", "distinct environment instances", environments,
                where="LocalVectorEnvironment",
            )
        first = environments[0]
        for env in environments[1:]:
            if env.states_spec != first.states_spec or env.actions_spec != first.actions_spec:
                raise ArgumentError.invalid(
                    "environments", f"equal specs (states {first.states_spec.get_config()}, "
                    f"actions {first.actions_spec.get_config()})",
                    f"{env}: states {env.states_spec.get_config()}, "
                    f"actions {env.actions_spec.get_config()}",
                    where="LocalVectorEnvironment",
                )
        self.environments = environments
        self.num_parallel = len(environments)
        self.states_spec = first.states_spec
        self.actions_spec = first.actions_spec
        lengths = {env.max_episode_timesteps() for env in environments}
        self.max_episode_timesteps = lengths.pop() if len(lengths) == 1 else max(
            (n for n in lengths if n is not None), default=None
        )
        self._seed = _check_seed(seed)
        if self._seed is not None:
            self._check_seedable()
        self._mask_specs = {
            f"{name}_mask": ValueSpec(type="bool", shape=spec.mask_shape())
            for name, spec in self.actions_spec.items()
            if spec.type == "int" and spec.num_values is not None
        }
        self._mask_names: list[str] = []
        self._reset_done = False
        self._closed = False

    @classmethod
    def from_resolved(
        cls, resolved: ResolvedEnvironment, num_parallel: int, seed: int | None = None
    ) -> LocalVectorEnvironment:
        """Builds N environments from one resolved spec (instances only for N == 1)."""
        if resolved.kind in ("wrapper", "instance") or (
            resolved.kind == "gymnasium" and not isinstance(resolved.kwargs.get("level"), (str, type))
        ):
            if num_parallel != 1:
                raise ArgumentError.invalid(
                    "environment",
                    "a spec, a class or a list of instances for num_parallel > 1 "
                    "(one instance cannot be copied)",
                    resolved.value if resolved.value is not None else resolved.kwargs["level"],
                    where="VectorEnvironment.create",
                )
        return cls([resolved.build() for _ in range(num_parallel)], seed=seed)

    def __str__(self) -> str:
        return f"LocalVectorEnvironment({self.environments[0]}, num_parallel={self.num_parallel})"

    def _check_seedable(self) -> None:
        for env in self.environments:
            if not env.supports_seed():
                raise ArgumentError.invalid(
                    "seed", "None: the reset() of this environment takes no seed", self._seed,
                    where=f"environment {env}",
                )

    def _flat(self, states: Any) -> dict[str, Any]:
        if isinstance(states, Mapping):
            if any(isinstance(value, Mapping) for value in states.values()):
                return flatten(states)
            return states
        return {"state": states}

    def _stack(self, per_env: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        batch = {}
        n = self.num_parallel
        for name, spec in self.states_spec.items():
            array = np.empty((n,) + spec.shape, dtype=spec.dtype)
            for i, states in enumerate(per_env):
                array[i] = states[name]
            batch[name] = array
        names = set()
        for states in per_env:
            if len(states) > len(self.states_spec):
                names.update(name for name in states if name in self._mask_specs)
        for name in self._mask_names:
            names.add(name)
        if names:
            self._mask_names = sorted(names)
            for name in self._mask_names:
                spec = self._mask_specs[name]
                array = np.ones((n,) + spec.shape, dtype=np.bool_)
                for i, states in enumerate(per_env):
                    mask = states.get(name)
                    if mask is not None:
                        array[i] = mask
                batch[name] = array
        return batch

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if self._closed:
            raise CallOrderError(f"Environment {self}: reset() after close().")
        seed = _check_seed(seed)
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        elif seed is not None:
            self._check_seedable()
        per_env = []
        for i, env in enumerate(self.environments):
            states = env.reset() if seed is None else env.reset(seed=seed + i)
            per_env.append(self._flat(states))
        self._reset_done = True
        return self._stack(per_env)

    def execute(
        self, actions: Mapping[str, Any] | np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        if not self._reset_done:
            raise CallOrderError(
                f"Environment {self}: execute() called before reset(); call reset() first."
            )
        checked = self._check_actions(actions)
        singleton = self.actions_spec.singleton
        n = self.num_parallel
        terminal = np.empty((n,), dtype=np.int64)
        reward = np.empty((n,), dtype=np.float32)
        per_env = []
        for i, env in enumerate(self.environments):
            # each environment gets what an unbatched act returns: a Python
            # scalar for a shape-() action (as Tensorforce's Runner), else an array
            if singleton:
                value = to_python(np.asarray(checked["action"][i]))
            else:
                value = unflatten({name: to_python(np.asarray(array[i]))
                                   for name, array in checked.items()})
            states, terminal[i], reward[i] = env.execute(value)
            if terminal[i] != 0:
                states = env.reset()
            per_env.append(self._flat(states))
        return self._stack(per_env), terminal, reward

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for env in self.environments:
                env.close()

    def get_config(self) -> dict:
        return {
            "environment": self.environments[0].get_config(),
            "num_parallel": self.num_parallel,
            "max_episode_timesteps": self.max_episode_timesteps,
            "vectorization_mode": "local",
        }


__all__ = [
    "VectorEnvironment",
    "GymnasiumVectorEnvironment",
    "LocalVectorEnvironment",
    "VECTORIZATION_MODES",
]
