"""Gymnasium adapter: `GymnasiumEnvironment` and space ↔ spec conversion.

Gymnasium spaces map to kerasrl specs as follows:

- `Discrete(n, start)` → `dict(type='int', shape=(), num_values=n)` (values
  are offset by `start`);
- `MultiDiscrete(nvec)` → an int array with `num_values=nvec[0]` if all `nvec`
  are equal, else a dict of int scalars named `gymmdc{i}_{shape}`;
- `MultiBinary(n)` → `dict(type='bool', shape=n)`;
- `Box` → a float spec with bounds (a bound counts as absent when any of its
  elements satisfies |bound| >= 1e6 or is infinite, unless `min_value` /
  `max_value` replace the infinite elements); a bool Box → a bool spec;
- `Dict` → a nested dict of named specs; `Tuple` → a dict `gymtpl0`,
  `gymtpl1`, ….

The converters work on single values and on batches (leading batch axes), so
that the vectorized environment shares them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from kerasrl import registry
from kerasrl.environments.environment import Environment, gymnasium_id
from kerasrl.errors import ArgumentError, UnknownTypeError
from kerasrl.specs import BOUND_INFINITY, flatten, unflatten


def _gym():
    import gymnasium

    return gymnasium


# ---------------------------------------------------------------------- adapters
class SpaceAdapter:
    """Converts between one gymnasium space and kerasrl values.

    Attributes:
        spec: The kerasrl spec (a spec dict, or a dict of named specs).
    """

    spec: Any

    def to_value(self, observation: Any) -> Any:
        """Converts a gymnasium value (optionally batched) to kerasrl arrays."""
        raise NotImplementedError

    def to_gym(self, value: Any, batched: bool) -> Any:
        """Converts a kerasrl value (optionally batched) to the space's format."""
        raise NotImplementedError

    @property
    def is_leaf(self) -> bool:
        return "type" in self.spec


class _DiscreteAdapter(SpaceAdapter):
    def __init__(self, space: Any):
        self.num_values = int(space.n)
        self.start = int(space.start)
        self.spec = {"type": "int", "shape": (), "num_values": self.num_values}

    def to_value(self, observation: Any) -> np.ndarray:
        array = np.asarray(observation, dtype=np.int64)
        return array - self.start if self.start else array.copy()

    def to_gym(self, value: Any, batched: bool) -> Any:
        if batched:
            array = np.asarray(value, dtype=np.int64)
            return array + self.start if self.start else array
        return int(value) + self.start


class _MultiDiscreteAdapter(SpaceAdapter):
    def __init__(self, space: Any):
        self.nvec = np.asarray(space.nvec, dtype=np.int64)
        self.start = np.asarray(space.start, dtype=np.int64)
        self.has_start = bool(np.any(self.start != 0))
        self.dtype = space.dtype
        flat = self.nvec.reshape(-1)
        self.equal = bool(np.all(flat == flat[0]))
        if self.equal:
            self.spec = {"type": "int", "shape": self.nvec.shape, "num_values": int(flat[0])}
            self.names = None
        else:
            shape = "_".join(str(d) for d in self.nvec.shape)
            self.names = [f"gymmdc{i}_{shape}" for i in range(flat.size)]
            self.spec = {
                name: {"type": "int", "shape": (), "num_values": int(n)}
                for name, n in zip(self.names, flat)
            }

    def to_value(self, observation: Any) -> Any:
        array = np.asarray(observation, dtype=np.int64)
        if self.has_start:
            array = array - self.start
        if self.equal:
            return array if self.has_start else array.copy()
        batch_shape = array.shape[: array.ndim - self.nvec.ndim]
        array = array.reshape(batch_shape + (-1,))
        return {name: array[..., i].copy() for i, name in enumerate(self.names)}

    def to_gym(self, value: Any, batched: bool) -> Any:
        if self.equal:
            array = np.asarray(value, dtype=np.int64)
        else:
            array = np.stack([np.asarray(value[name], dtype=np.int64) for name in self.names], -1)
            array = array.reshape(array.shape[:-1] + self.nvec.shape)
        if self.has_start:
            array = array + self.start
        return array.astype(self.dtype, copy=False)


class _MultiBinaryAdapter(SpaceAdapter):
    def __init__(self, space: Any):
        self.dtype = space.dtype
        self.spec = {"type": "bool", "shape": tuple(int(d) for d in np.atleast_1d(space.n))}

    def to_value(self, observation: Any) -> np.ndarray:
        return np.array(observation, dtype=np.bool_)

    def to_gym(self, value: Any, batched: bool) -> np.ndarray:
        return np.asarray(value).astype(self.dtype)


def _bound(values: np.ndarray) -> Any:
    """A scalar when all elements are equal, else a list; None if any is unbounded."""
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) >= BOUND_INFINITY):
        return None
    flat = values.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return float(flat[0])
    return values.tolist()


class _BoxAdapter(SpaceAdapter):
    def __init__(
        self,
        space: Any,
        min_value: float | None = None,
        max_value: float | None = None,
        drop_indices: list[int] | None = None,
        is_state: bool = True,
    ):
        self.dtype = space.dtype
        self.bool = np.dtype(space.dtype) == np.bool_
        shape = tuple(space.shape)
        low = np.broadcast_to(np.asarray(space.low, dtype=np.float64), shape)
        high = np.broadcast_to(np.asarray(space.high, dtype=np.float64), shape)
        self.clip = None
        if is_state and not self.bool and min_value is not None:
            low_infinite = ~np.isfinite(low) | (np.abs(low) >= BOUND_INFINITY)
            high_infinite = ~np.isfinite(high) | (np.abs(high) >= BOUND_INFINITY)
            if np.any(low_infinite) or np.any(high_infinite):
                low = np.where(low_infinite, min_value, low)
                high = np.where(high_infinite, max_value, high)
                self.clip = (
                    np.where(low_infinite, min_value, -np.inf).astype(np.float32),
                    np.where(high_infinite, max_value, np.inf).astype(np.float32),
                )
        self.drop = None
        if drop_indices is not None:
            if len(shape) == 0:
                raise ArgumentError.invalid(
                    "drop_states_indices", "a Box state space with at least one axis",
                    drop_indices, where="GymnasiumEnvironment",
                )
            size = shape[-1]
            try:
                indices = sorted({int(i) + size if int(i) < 0 else int(i) for i in drop_indices})
            except (TypeError, ValueError):
                indices = [-1]
            if any(i < 0 or i >= size for i in indices) or len(indices) >= size:
                raise ArgumentError.invalid(
                    "drop_states_indices", f"indices in [0, {size}) keeping at least one",
                    drop_indices, where="GymnasiumEnvironment",
                )
            self.drop = np.array([i for i in range(size) if i not in indices], dtype=np.int64)
            if self.clip is not None:
                self.clip = (self.clip[0][..., self.drop], self.clip[1][..., self.drop])
            low = low[..., self.drop]
            high = high[..., self.drop]
            shape = shape[:-1] + (len(self.drop),)
        if self.bool:
            self.spec = {"type": "bool", "shape": shape}
        else:
            self.spec = {"type": "float", "shape": shape}
            for key, bound in (("min_value", _bound(low)), ("max_value", _bound(high))):
                if bound is not None:
                    self.spec[key] = bound

    def to_value(self, observation: Any) -> np.ndarray:
        if self.bool:
            return np.array(observation, dtype=np.bool_)
        array = np.array(observation, dtype=np.float32)
        if self.drop is not None:
            array = array[..., self.drop]
        if self.clip is not None:
            np.clip(array, self.clip[0], self.clip[1], out=array)
        return array

    def to_gym(self, value: Any, batched: bool) -> np.ndarray:
        return np.asarray(value).astype(self.dtype, copy=False)


class _DictAdapter(SpaceAdapter):
    def __init__(self, children: dict[str, SpaceAdapter], gym_tuple: bool = False):
        self.children = children
        self.gym_tuple = gym_tuple
        self.spec = {name: child.spec for name, child in children.items()}

    def to_value(self, observation: Any) -> dict:
        if self.gym_tuple:
            return {
                name: child.to_value(observation[i])
                for i, (name, child) in enumerate(self.children.items())
            }
        return {name: child.to_value(observation[name]) for name, child in self.children.items()}

    def to_gym(self, value: Any, batched: bool) -> Any:
        converted = {
            name: child.to_gym(value[name], batched) for name, child in self.children.items()
        }
        if self.gym_tuple:
            return tuple(converted.values())
        return converted


def space_adapter(
    space: Any,
    min_value: float | None = None,
    max_value: float | None = None,
    drop_indices: list[int] | None = None,
    is_state: bool = True,
    where: str = "space",
) -> SpaceAdapter:
    """Builds the adapter (spec + converters) of a gymnasium space.

    Args:
        space: A `gymnasium.spaces.Space`.
        min_value: Replaces infinite lower Box bounds of states (and clips).
        max_value: Replaces infinite upper Box bounds of states (and clips).
        drop_indices: Indices of the last axis of a top-level Box state to drop.
        is_state: Whether the space is an observation space.
        where: Name used in error messages.

    Returns:
        A `SpaceAdapter`.

    Raises:
        ArgumentError: for an unsupported space.
    """
    spaces = _gym().spaces
    if drop_indices is not None and not isinstance(space, spaces.Box):
        raise ArgumentError.invalid(
            "drop_states_indices", "a Box observation space", space, where="GymnasiumEnvironment"
        )
    if isinstance(space, spaces.Discrete):
        return _DiscreteAdapter(space)
    if isinstance(space, spaces.MultiDiscrete):
        return _MultiDiscreteAdapter(space)
    if isinstance(space, spaces.MultiBinary):
        return _MultiBinaryAdapter(space)
    if isinstance(space, spaces.Box):
        return _BoxAdapter(space, min_value, max_value, drop_indices, is_state)
    if isinstance(space, spaces.Dict):
        children = {}
        for name, child in space.spaces.items():
            if not isinstance(name, str) or not name or "/" in name or name.endswith("_mask"):
                raise ArgumentError.invalid(
                    f"{where} key", "a non-empty string without '/' not ending in '_mask'", name
                )
            children[name] = space_adapter(
                child, min_value, max_value, None, is_state, f"{where}['{name}']"
            )
        if not children:
            raise ArgumentError.invalid(where, "a non-empty Dict space", space)
        return _DictAdapter(children)
    if isinstance(space, spaces.Tuple):
        children = {
            f"gymtpl{i}": space_adapter(
                child, min_value, max_value, None, is_state, f"{where}[{i}]"
            )
            for i, child in enumerate(space.spaces)
        }
        if not children:
            raise ArgumentError.invalid(where, "a non-empty Tuple space", space)
        return _DictAdapter(children, gym_tuple=True)
    raise ArgumentError.invalid(
        where, "a Discrete, MultiDiscrete, MultiBinary, Box, Dict or Tuple space", space,
        where="GymnasiumEnvironment",
    )


def _check_bounds_options(min_value: Any, max_value: Any, where: str) -> None:
    if (min_value is None) != (max_value is None):
        raise ArgumentError.invalid(
            "min_value/max_value", "both given or both None", (min_value, max_value), where=where
        )
    if min_value is not None:
        for key, value in (("min_value", min_value), ("max_value", max_value)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
                    not np.isfinite(value):
                raise ArgumentError.invalid(key, "a finite number", value, where=where)
        if min_value >= max_value:
            raise ArgumentError.invalid(
                "max_value", f"a number > min_value ({min_value})", max_value, where=where
            )


def normalize_actions(adapter: SpaceAdapter, actions: Any) -> Any:
    """Accepts nested or `/`-flattened action dicts for dict action spaces."""
    if adapter.is_leaf or not isinstance(actions, Mapping):
        return actions
    if any("/" in name for name in actions):
        return unflatten(flatten(actions))
    return actions


def time_limit_of(env: Any) -> int | None:
    """Returns the `max_episode_steps` of a gymnasium env's TimeLimit, if any."""
    gym = _gym()
    current = env
    steps = None
    while current is not None:
        if isinstance(current, gym.wrappers.TimeLimit):
            steps = current._max_episode_steps
            break
        current = getattr(current, "env", None) if isinstance(current, gym.Wrapper) else None
    else:
        steps = getattr(getattr(env, "spec", None), "max_episode_steps", None)
    return int(steps) if steps is not None and steps > 0 else None


# ---------------------------------------------------------------------- environment
def _record_video(gym: Any, environment: Any, directory: Any) -> Any:
    """`environment` wrapped in gymnasium's `RecordVideo` (every episode into `directory`)."""
    try:
        return gym.wrappers.RecordVideo(environment, video_folder=os.fspath(directory),
                                        episode_trigger=lambda episode: True,
                                        disable_logger=True)
    except gym.error.DependencyNotInstalled:
        environment.close()
        raise ArgumentError.invalid(
            "visualize_directory", "moviepy installed to record videos (pip install moviepy)",
            directory, where="GymnasiumEnvironment") from None
    except gym.error.Error as exc:
        environment.close()
        raise ArgumentError.invalid(
            "visualize_directory", f"an environment rendering rgb_array frames ({exc})",
            directory, where="GymnasiumEnvironment") from None


def render_options(visualize: bool, visualize_directory: Any, where: str) -> dict:
    """The `gymnasium.make` render arguments for `visualize` / `visualize_directory`.

    Returns:
        `{'render_mode': 'human'}` to show a window, `{'render_mode':
        'rgb_array'}` to record videos, or `{}`.

    Raises:
        ArgumentError: both given, or a directory that is not a path.
    """
    if visualize_directory is not None:
        if visualize:
            raise ArgumentError.invalid("visualize_directory",
                                        "None with visualize=True (one render mode)",
                                        visualize_directory, where=where)
        if not isinstance(visualize_directory, (str, os.PathLike)):
            raise ArgumentError.invalid("visualize_directory", "a directory path",
                                        visualize_directory, where=where)
        return {"render_mode": "rgb_array"}
    return {"render_mode": "human"} if visualize else {}


class GymnasiumEnvironment(Environment):
    """A gymnasium environment as a kerasrl `Environment`.

    Registry keys: `'gym'`, `'gymnasium'`, `'openai_gym'`, `'default'`.
    `terminated` gives terminal 1 (plus `terminal_reward`), `truncated` gives
    terminal 2. The TimeLimit's `max_episode_steps` becomes
    `max_episode_timesteps()`.

    Args:
        level: A gymnasium id (`'CartPole-v1'`; versionless `'CartPole'`
            means the latest version), a `gymnasium.Env` instance, or a
            `gymnasium.Env` class (instantiated with `gym_kwargs`).
        visualize: Render with `render_mode='human'`.
        min_value: Replaces infinite lower bounds of Box states and clips
            them (given together with `max_value`).
        max_value: Replaces infinite upper bounds of Box states and clips
            them.
        terminal_reward: Added to the reward of a `terminated` step.
        reward_threshold: Reward threshold (defaults to the registered one;
            kept as the attribute `reward_threshold`).
        drop_states_indices: Indices (last axis) of a Box state to drop.
        seed: Seed of the first reset (later resets continue the RNG).
        import_modules: A module name or a list of them, imported before
            `gymnasium.make` (modules that register their environments, e.g.
            `'ale_py'`); refused when read from a file in safe mode.
        visualize_directory: Record every episode as a video in this
            directory (gymnasium's `RecordVideo`, `render_mode='rgb_array'`;
            needs `moviepy`).
        **gym_kwargs: Arguments of `gymnasium.make` (e.g.
            `max_episode_steps`) or of the env class.

    Raises:
        ArgumentError: for invalid arguments.
        UnknownTypeError: for an unknown gymnasium id.

    Example:

    >>> env = GymnasiumEnvironment('CartPole-v1')
    >>> env.states()
    {'type': 'float', 'shape': (4,)}
    """

    def __init__(
        self,
        level: Any,
        visualize: bool = False,
        min_value: float | None = None,
        max_value: float | None = None,
        terminal_reward: float = 0.0,
        reward_threshold: float | None = None,
        drop_states_indices: list[int] | None = None,
        seed: int | None = None,
        import_modules: str | list[str] | None = None,
        visualize_directory: str | None = None,
        **gym_kwargs: Any,
    ):
        super().__init__()
        gym = _gym()
        where = "GymnasiumEnvironment"
        if import_modules is not None:
            modules = [import_modules] if isinstance(import_modules, str) else import_modules
            if not isinstance(modules, (list, tuple)):
                raise ArgumentError.invalid("import_modules", "a module name or a list of them",
                                            import_modules, where=where)
            for module in modules:
                registry.import_module(module, "import_modules")
        render_kwargs = render_options(visualize, visualize_directory, where)
        _check_bounds_options(min_value, max_value, where)
        if isinstance(drop_states_indices, int):
            drop_states_indices = [drop_states_indices]
        self.level = level
        self.visualize = bool(visualize)
        self.min_value = min_value
        self.max_value = max_value
        self.terminal_reward = float(terminal_reward)
        self.drop_states_indices = drop_states_indices
        self._seed = seed
        self._gym_kwargs = dict(gym_kwargs)
        if isinstance(level, str):
            level_id = gymnasium_id(level)
            if level_id is None:
                raise UnknownTypeError.invalid(
                    "level", "a registered gymnasium id", level, where=where
                )
            try:
                self.environment = gym.make(level_id, **render_kwargs, **gym_kwargs)
            except TypeError as exc:
                raise ArgumentError(
                    f"Invalid arguments for gymnasium environment {level_id!r}: {exc}."
                ) from None
            except gym.error.Error as exc:
                raise ArgumentError.invalid(
                    "level", "a valid gymnasium id", f"{level}: {exc}"
                ) from None
            self.level_id = level_id
        elif isinstance(level, gym.Env):
            if gym_kwargs or visualize:
                raise ArgumentError.invalid(
                    "gym_kwargs", "no arguments for a gymnasium.Env instance",
                    sorted(gym_kwargs) + (["visualize"] if visualize else []), where=where,
                )
            self.environment = level
            self.level_id = None
        elif isinstance(level, type) and issubclass(level, gym.Env):
            kwargs = dict(gym_kwargs)
            max_steps = kwargs.pop("max_episode_steps", None)
            try:
                env = level(**render_kwargs, **kwargs)
            except TypeError as exc:
                raise ArgumentError(
                    f"Invalid arguments for gymnasium environment {level.__name__}: {exc}."
                ) from None
            if max_steps is not None:
                env = gym.wrappers.TimeLimit(env, max_episode_steps=int(max_steps))
            self.environment = env
            self.level_id = None
        else:
            raise ArgumentError.invalid(
                "level", "a gymnasium id, gymnasium.Env instance or class", level, where=where
            )
        if visualize_directory is not None:
            self.environment = _record_video(gym, self.environment, visualize_directory)
        spec = getattr(self.environment, "spec", None)
        if reward_threshold is None:
            reward_threshold = getattr(spec, "reward_threshold", None)
        self.reward_threshold = reward_threshold
        self._max_episode_steps = time_limit_of(self.environment)
        self.states_adapter = space_adapter(
            self.environment.observation_space, min_value, max_value, drop_states_indices,
            is_state=True, where="observation_space",
        )
        self.actions_adapter = space_adapter(
            self.environment.action_space, is_state=False, where="action_space"
        )

    def __str__(self) -> str:
        if self.level_id is not None:
            return f"GymnasiumEnvironment({self.level_id})"
        return f"GymnasiumEnvironment({type(self.environment.unwrapped).__name__})"

    def states(self) -> dict:
        return self.states_adapter.spec

    def actions(self) -> dict:
        return self.actions_adapter.spec

    def max_episode_timesteps(self) -> int | None:
        return self._max_episode_steps

    def close(self) -> None:
        if self.environment is not None:
            self.environment.close()

    def reset(self, seed: int | None = None) -> Any:
        """Resets the gymnasium env (`seed` given to `env.reset`)."""
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        observation, _ = self.environment.reset(seed=seed)
        return self.states_adapter.to_value(observation)

    def execute(self, actions: Any) -> tuple[Any, int, float]:
        """Steps the gymnasium env; terminated → 1, truncated → 2."""
        action = self.actions_adapter.to_gym(
            normalize_actions(self.actions_adapter, actions), batched=False
        )
        observation, reward, terminated, truncated, _ = self.environment.step(action)
        if terminated:
            terminal = 1
            reward = float(reward) + self.terminal_reward
        else:
            terminal = 2 if truncated else 0
            reward = float(reward)
        return self.states_adapter.to_value(observation), terminal, reward

    def get_config(self) -> dict:
        config: dict[str, Any] = {"environment": "gymnasium"}
        if isinstance(self.level, str):
            config["level"] = self.level
        else:
            level = self.level if isinstance(self.level, type) else type(self.level)
            config["level"] = f"{level.__module__}.{level.__qualname__}"
        for key, default in (
            ("visualize", False), ("min_value", None), ("max_value", None),
            ("terminal_reward", 0.0), ("drop_states_indices", None),
        ):
            value = getattr(self, key)
            if value != default:
                config[key] = value
        config.update(self._gym_kwargs)
        return config


__all__ = ["GymnasiumEnvironment", "SpaceAdapter", "space_adapter", "time_limit_of"]
