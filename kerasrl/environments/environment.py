"""Environment interface, `Environment.create` and the validating wrapper.

Every environment that kerasrl steps is an `EnvironmentWrapper` around either
a custom `Environment` subclass or a gymnasium environment (through
`kerasrl.environments.gymnasium.GymnasiumEnvironment`). The wrapper validates
what the environment returns and the actions it is given, counts timesteps,
enforces `max_episode_timesteps` (terminal `2`, "aborted") and applies reward
shaping, as in Tensorforce 0.6.

Remote execution (`remote='multiprocessing' | 'socket-client' |
'socket-server'`) is implemented in `kerasrl.environments.remote`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import random
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import kerasrl.registry as registry
from kerasrl.errors import (
    ArgumentError,
    CallOrderError,
    EnvironmentFailure,
    InputError,
    KerasRLError,
    NotSupportedError,
    SpecError,
    UnknownTypeError,
    _short,
)
from kerasrl.expressions import compile_restricted, evaluate
from kerasrl.registry import is_json_path, load_json
from kerasrl.specs import Specs, ValueSpec, flatten, unflatten

#: Registry keys of the gymnasium adapter (Tensorforce's `'gym'`/`'openai_gym'`/`'default'`).
GYMNASIUM_KEYS = ("gym", "gymnasium", "openai_gym", "default")
#: Registry of environment type keys; values are import paths (loaded lazily).
ENVIRONMENTS: dict[str, str] = {
    **{key: "kerasrl.environments.gymnasium.GymnasiumEnvironment" for key in GYMNASIUM_KEYS},
    "custom_cartpole": "kerasrl.environments.cartpole.CartPole",
    "atari": "kerasrl.environments.atari.AtariEnvironment",
}
#: Tensorforce's adapters that kerasrl does not provide: registry keys and
#: class names, each with the reason and what to use instead.
UNSUPPORTED_ENVIRONMENTS: dict[tuple[str, ...], str] = {
    ("ale", "arcade_learning_environment", "ArcadeLearningEnvironment"): (
        "Atari games are gymnasium environments through ale-py: `pip install "
        "'kerasrl[atari]'`, then Environment.create('atari', level='ALE/Breakout-v5') "
        "(preprocessed and frame-stacked, see kerasrl.environments.atari) or "
        "Environment.create('ALE/Breakout-v5') (raw frames)"),
    ("retro", "openai_retro", "OpenAIRetro"): (
        "gym-retro is unmaintained and needs Python <= 3.8 and gym < 0.26; stable-retro's "
        "environments are gymnasium envs: pass one (or its id) to Environment.create"),
    ("osim", "open_sim", "OpenSim"): (
        "osim-rl needs the OpenSim conda package and gym < 0.26; wrap its environment in a "
        "gymnasium.Env or an Environment subclass"),
    ("ple", "pygame_learning_environment", "PyGameLearningEnvironment"): (
        "the PyGame Learning Environment is unmaintained; wrap a game in a gymnasium.Env or "
        "an Environment subclass"),
    ("vizdoom", "ViZDoom"): (
        "ViZDoom ships gymnasium environments: `import vizdoom.gymnasium_wrapper`, then "
        "Environment.create('VizdoomBasic-v0')"),
    ("carla", "carla_environment", "CARLAEnvironment"): (
        "Tensorforce's CARLA adapter was itself unfinished; CARLA's gymnasium wrappers can be "
        "passed to Environment.create"),
}


def unsupported_environment(name: str) -> NotSupportedError | None:
    """The error for a Tensorforce adapter kerasrl does not provide, or None.

    Args:
        name: A registry key (`'ale'`) or a class name (`'OpenAIRetro'`).

    Returns:
        A `NotSupportedError` naming the reason, or None when `name` is not one
        of them.
    """
    for names, reason in UNSUPPORTED_ENVIRONMENTS.items():
        if name in names or name.lower() in names:
            return NotSupportedError(
                f"Environment {name!r} (Tensorforce's {names[-1]}) is not provided by "
                f"kerasrl: {reason}."
            )
    return None


#: Remote modes (see `kerasrl.environments.remote`).
REMOTE_MODES = ("multiprocessing", "socket-client", "socket-server")


class EnvironmentOutputError(EnvironmentFailure, InputError):
    """An environment returned an invalid state, terminal or reward.

    It is both an `EnvironmentFailure` and an `InputError`, so either can be
    caught.
    """


def _import_path(path: str) -> Any:
    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def _name_of(environment: Any) -> str:
    try:
        return str(environment)
    except Exception:  # pragma: no cover - a broken __str__
        return type(environment).__name__


class Environment:
    """Base class of kerasrl environments, and the factory `Environment.create`.

    A custom environment subclasses `Environment` and implements `states()`,
    `actions()`, `reset()` and `execute(actions)`; `max_episode_timesteps()`,
    `close()` and `episode_return()` are optional. Create it (and every other
    environment) with `Environment.create(...)`, which wraps it in an
    `EnvironmentWrapper` that validates its outputs.

    `reset()` returns the initial states: an array for a singleton state spec,
    else a (nested) dict, which may also hold boolean `'<action>_mask'`
    entries (shape `action.shape + (num_values,)`, True = allowed) for int
    actions. `execute(actions)` returns `(states, terminal, reward)` where
    `terminal` is a bool or an int: 0 (continue), 1 (terminal) or 2 (aborted,
    e.g. a time limit: the agent bootstraps).

    kerasrl extension: `reset(seed=None)` may accept a `seed` keyword, used
    when a seed is given to `EnvironmentWrapper.reset` or to a vectorized
    environment.

    Example:

    >>> class Corridor(Environment):
    ...     def states(self):
    ...         return dict(type='float', shape=(1,))
    ...     def actions(self):
    ...         return dict(type='int', num_values=2)
    ...     def reset(self):
    ...         self.position = 0
    ...         return np.zeros(1, dtype=np.float32)
    ...     def execute(self, actions):
    ...         self.position += 1 if actions == 1 else -1
    ...         terminal = abs(self.position) >= 3
    ...         return np.array([self.position], np.float32), terminal, float(terminal)
    >>> env = Environment.create(Corridor, max_episode_timesteps=10)
    """

    def __init__(self):
        pass

    # ------------------------------------------------------------------ factory
    @staticmethod
    def create(
        environment: Any = None,
        max_episode_timesteps: int | None = None,
        reward_shaping: Callable | str | None = None,
        remote: str | None = None,
        blocking: bool = False,
        host: str | None = None,
        port: int | None = None,
        safe_mode: bool | None = None,
        **kwargs: Any,
    ) -> EnvironmentWrapper:
        """Creates a (wrapped) environment from a specification.

        Args:
            environment: A gymnasium id (`'CartPole-v1'`, or versionless
                `'CartPole'` for the latest version), a registry key
                (`'gym'`, `'gymnasium'`, `'openai_gym'`, `'default'`, with
                `level=...`; `'custom_cartpole'`, see
                `kerasrl.environments.cartpole`), a `gymnasium.Env` instance
                or class, an
                `Environment` subclass (instantiated with `kwargs`) or
                instance, a dict (`environment`/`type` key plus arguments,
                `max_episode_timesteps`, `reward_shaping`), a JSON file path
                holding such a dict, an import path of an `Environment` or
                `gymnasium.Env` class (or of a module defining one), or an
                `EnvironmentWrapper` (returned as is).
            max_episode_timesteps: Maximum number of timesteps per episode;
                an episode that reaches it ends with terminal 2. Overrides the
                environment's own `None`; it must not exceed the environment's
                own value (for gymnasium ids it sets the `TimeLimit`).
            reward_shaping: A callable `(states, actions, terminal, reward,
                next_states) -> reward` or `-> (reward, terminal)`, or a string
                expression over these names and `math`, `np`, `random`, e.g.
                `"-1.0 if terminal == 1 else reward"`.
            remote: None, `'multiprocessing'` (a child process),
                `'socket-client'` (connect to a server; `environment` must be
                None) or `'socket-server'` (serve the environment; as in
                Tensorforce it returns None once its client has closed;
                `max_clients=n` serves n clients, `max_clients=None` until
                stopped). Remote options in `kwargs`: `timeout`,
                `max_frame_bytes`, `connect_timeout`, `auth_key`,
                `max_clients`.
            blocking: Remote modes: `receive_execute()` waits for the reply.
            host: Socket modes: server address (servers bind 127.0.0.1 by
                default).
            port: Socket modes: server port.
            safe_mode: None (default): import paths and module names read
                from a JSON file are refused, those written in Python are
                allowed; True: refused everywhere; False: the file is trusted
                (see `docs/security.md`).
            **kwargs: Arguments of the environment (e.g. `level=`, `seed=`,
                `min_value=` for gymnasium, or the custom class' arguments).

        Returns:
            An `EnvironmentWrapper`.

        Raises:
            ArgumentError: for invalid arguments or remote modes.
            UnknownTypeError: for an unknown environment string.

        Example:

        >>> env = Environment.create('CartPole-v1')
        >>> env.max_episode_timesteps()
        500
        """
        _check_remote_arguments(remote, blocking, host, port)
        with registry.safe_mode_scope(safe_mode):
            if remote is not None:
                return _create_remote(
                    environment, max_episode_timesteps, reward_shaping, remote, blocking,
                    host, port, kwargs,
                )
            resolved = resolve_environment(environment, max_episode_timesteps, reward_shaping,
                                           kwargs)
            return resolved.build()

    # ------------------------------------------------------------------ interface
    def states(self) -> dict:
        """Returns the state specification (a spec dict or a dict of named specs).

        Returns:
            The states spec, e.g. `dict(type='float', shape=(4,))`.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement states().")

    def actions(self) -> dict:
        """Returns the action specification (a spec dict or a dict of named specs).

        Returns:
            The actions spec, e.g. `dict(type='int', num_values=2)`.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement actions().")

    def max_episode_timesteps(self) -> int | None:
        """Returns the natural maximum episode length, or None (the default)."""
        return None

    def is_vectorizable(self) -> bool:
        """Whether the environment steps N episodes itself (default False).

        A vectorizable environment implements `reset(num_parallel=N)`
        returning `(indices, states_batch)` and, after such a reset,
        `execute(actions_batch)` returning `(indices, states_batch,
        terminal_batch, reward_batch)`; called as `reset()` it behaves as an
        ordinary environment. `Runner(num_parallel=N)` uses it vectorized
        (see `kerasrl.environments.indexed`).
        """
        return False

    def num_actors(self) -> int:
        """Number of actors sharing one episode (default 1).

        With K > 1, `reset()` returns `(indices, states_batch)` and
        `execute(actions_batch)` returns `(indices, states_batch,
        terminal_batch, reward_batch)`; the `Runner` treats each actor as a
        parallel interaction (see `kerasrl.environments.indexed`).
        """
        return 1

    def episode_return(self) -> float | None:
        """The true return of the current episode if it differs from the sum of rewards."""
        return None

    def close(self) -> None:
        """Releases the environment's resources."""

    def reset(self, seed: int | None = None) -> Any:
        """Starts a new episode.

        Args:
            seed: Optional seed of the environment's randomness (kerasrl
                extension; custom environments may omit this argument).

        Returns:
            The initial states: an array, or a (nested) dict of arrays which
            may include `'<action>_mask'` entries.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement reset().")

    def execute(self, actions: Any) -> tuple[Any, bool | int, float]:
        """Executes actions and advances the environment by one step.

        Args:
            actions: The actions: a value for a singleton action spec, else a
                (nested) dict of values.

        Returns:
            `(states, terminal, reward)`; `terminal` is a bool or 0/1/2.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement execute().")

    # Two-phase interface (the shape remote environments will share); local
    # environments simply run the call when the result is requested.
    def start_reset(self, seed: int | None = None) -> None:
        """Starts a reset; its result is returned by `receive_execute()`."""
        if getattr(self, "_pending_call", None) is not None:
            raise CallOrderError(
                f"start_reset() of {_name_of(self)} called while a previous call is pending."
            )
        self._pending_call = ("reset", seed)

    def start_execute(self, actions: Any) -> None:
        """Starts an execute; its result is returned by `receive_execute()`."""
        if getattr(self, "_pending_call", None) is not None:
            raise CallOrderError(
                f"start_execute() of {_name_of(self)} called while a previous call is pending."
            )
        self._pending_call = ("execute", actions)

    def receive_execute(self) -> tuple[Any, int, float | None] | None:
        """Returns the result of the pending call.

        Returns:
            `(states, terminal, reward)`; after `start_reset` terminal is -1
            and reward None. A remote environment may return None while the
            call is still running.
        """
        pending = getattr(self, "_pending_call", None)
        if pending is None:
            raise CallOrderError(
                f"receive_execute() of {_name_of(self)} called without start_reset/start_execute."
            )
        self._pending_call = None
        kind, argument = pending
        if kind == "reset":
            states = self.reset() if argument is None else self.reset(seed=argument)
            return states, -1, None
        states, terminal, reward = self.execute(argument)
        return states, int(terminal), reward

    def get_config(self) -> dict:
        """Returns a spec that recreates the environment (its class import path)."""
        cls = type(self)
        return {"environment": f"{cls.__module__}.{cls.__qualname__}"}

    def __str__(self) -> str:
        return type(self).__name__


# ---------------------------------------------------------------------- create helpers
def _check_remote_arguments(remote: Any, blocking: Any, host: Any, port: Any) -> None:
    if remote is not None and remote not in REMOTE_MODES:
        raise ArgumentError.invalid(
            "remote", f"None or one of {list(REMOTE_MODES)}", remote, where="Environment.create"
        )
    if blocking and remote not in ("multiprocessing", "socket-client"):
        raise ArgumentError.invalid(
            "blocking", "False unless remote is 'multiprocessing' or 'socket-client'",
            blocking, where="Environment.create",
        )
    if remote not in ("socket-client", "socket-server"):
        if host is not None:
            raise ArgumentError.invalid(
                "host", "None unless remote is a socket mode", host, where="Environment.create"
            )
        if port is not None:
            raise ArgumentError.invalid(
                "port", "None unless remote is a socket mode", port, where="Environment.create"
            )


def _create_remote(
    environment: Any,
    max_episode_timesteps: Any,
    reward_shaping: Any,
    remote: str,
    blocking: bool,
    host: Any,
    port: Any,
    kwargs: dict,
) -> Any:
    """Dispatch point of the remote modes (see `kerasrl.environments.remote`)."""
    from kerasrl.environments.remote import create_remote

    return create_remote(
        environment, max_episode_timesteps, reward_shaping, remote, blocking, host, port,
        dict(kwargs),
    )


def _environment_specs(environment: Any, name: str) -> tuple[Specs, Specs, dict]:
    """The states and actions specs of a custom environment, and its mask specs.

    Returns `(states_spec, actions_spec, mask_specs)` where `mask_specs` has a
    bool `'<action>_mask'` spec per int action with `num_values`. Raises
    `SpecError` naming the environment for an invalid spec.
    """
    try:
        states = Specs(environment.states(), "states")
        actions = Specs(environment.actions(), "actions")
    except SpecError as exc:
        raise SpecError(f"Invalid spec of environment {name}: {exc}") from None
    masks = {
        f"{action}_mask": ValueSpec(type="bool", shape=spec.mask_shape(), name=f"{action}_mask")
        for action, spec in actions.items()
        if spec.type == "int" and spec.num_values is not None
    }
    return states, actions, masks


def _check_max_episode_timesteps(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        if isinstance(value, float) and value.is_integer() and value > 0:
            return int(value)
        raise ArgumentError.invalid(
            "max_episode_timesteps", "None or a positive int", value, where="Environment.create"
        )
    return int(value)


def _gymnasium():
    import gymnasium

    return gymnasium


def _is_gymnasium_env(value: Any) -> bool:
    gym = _gymnasium()
    return isinstance(value, gym.Env) or (isinstance(value, type) and issubclass(value, gym.Env))


def gymnasium_id(level: str) -> str | None:
    """Returns the registered gymnasium id for `level`, or None.

    A versionless id (`'CartPole'`) resolves to the highest registered
    version (`'CartPole-v1'`). Ids of the form `'module:Env-v0'` are returned
    unchanged (gymnasium imports the module).

    Args:
        level: A gymnasium environment id.

    Returns:
        The id to give to `gymnasium.make`, or None if it is not registered.
    """
    if not isinstance(level, str) or not level:
        return None
    if ":" in level:
        return level
    from gymnasium.envs.registration import (
        find_highest_version,
        get_env_id,
        parse_env_id,
        registry,
    )

    import kerasrl.environments.partial  # noqa: F401 - registers CartPoleNoVelocity-v1

    if level in registry:
        return level
    try:
        namespace, name, version = parse_env_id(level)
    except Exception:
        return None
    if version is None:
        highest = find_highest_version(namespace, name)
        if highest is not None:
            return get_env_id(namespace, name, highest)
    return None


def _module_environment_class(module: types.ModuleType) -> Any:
    """Finds the one Environment (or else gymnasium.Env) subclass defined in a module."""
    for base in (Environment, None):
        candidates = []
        for value in vars(module).values():
            if not isinstance(value, type) or value.__module__ != module.__name__:
                continue
            if base is Environment:
                if issubclass(value, Environment) and not issubclass(value, EnvironmentWrapper):
                    candidates.append(value)
            elif _is_gymnasium_env(value):
                candidates.append(value)
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise ArgumentError.invalid(
                "environment", "a module defining exactly one environment class",
                f"{module.__name__} defines {[c.__name__ for c in candidates]}",
            )
    return None


def _check_entry_point(level: Any, from_file: bool) -> None:
    """Refuses, in safe mode, a gymnasium id `'module:Env-v0'` (gymnasium imports `module`)."""
    if isinstance(level, str) and ":" in level and (
            registry.in_safe_mode() or (from_file and not registry.trusts_files())):
        raise registry.unsafe_path("level", level)


def _check_import_modules(modules: Any, from_file: bool) -> None:
    """Refuses, in safe mode, gymnasium's `import_modules` (module names to import)."""
    if modules is not None and (
            registry.in_safe_mode() or (from_file and not registry.trusts_files())):
        raise registry.unsafe_path("import_modules", str(modules))


def _import_environment(path: str, from_file: bool) -> Any:
    """Imports `'package.module.Class'` or `'package.module'`; None if not importable.

    A registered class (`kerasrl.register`, `custom_objects=`) is found first.
    Nothing is imported for a name read from a file (unless the caller trusts
    files) or in safe mode: that raises `UnsafeSpecError`.
    """
    if ":" in path or "/" in path or not path.replace(".", "").replace("_", "").isalnum():
        return None
    registered = registry.lookup(path)
    if registered is not None:
        return registered
    if registry.in_safe_mode() or (from_file and not registry.trusts_files()):
        if path.split(".")[0] not in sys.modules and importlib.util.find_spec(
                path.split(".")[0]) is None:
            return None  # not a module name at all (e.g. an unregistered gymnasium id)
        raise registry.unsafe_path("environment", path)
    try:
        module = importlib.import_module(path)
    except ImportError:
        module = None
    if module is not None:
        return _module_environment_class(module)
    if "." not in path:
        return None
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, attribute, None)


@dataclass
class ResolvedEnvironment:
    """An environment spec resolved to what must be built (used by the vectorized envs).

    Attributes:
        kind: `'wrapper'` (an `EnvironmentWrapper`, used as is), `'instance'`
            (an `Environment` instance to wrap), `'class'` (an `Environment`
            subclass to instantiate with `kwargs`) or `'gymnasium'` (a
            `GymnasiumEnvironment` built from `kwargs`, which hold `level`).
        value: The wrapper, instance or class (None for `'gymnasium'`).
        max_episode_timesteps: The checked `max_episode_timesteps`.
        reward_shaping: The reward shaping callable or string.
        kwargs: The environment's arguments.
    """

    kind: str
    value: Any
    max_episode_timesteps: int | None
    reward_shaping: Any
    kwargs: dict = field(default_factory=dict)

    def build(self) -> EnvironmentWrapper:
        """Creates the wrapped environment."""
        if self.kind == "wrapper":
            return self.value
        if self.kind == "gymnasium":
            from kerasrl.environments.gymnasium import GymnasiumEnvironment

            kwargs = dict(self.kwargs)
            if (
                self.max_episode_timesteps is not None
                and isinstance(kwargs.get("level"), str)
                and "max_episode_steps" not in kwargs
            ):
                # As Tensorforce re-registers the gym level: the TimeLimit follows.
                kwargs["max_episode_steps"] = self.max_episode_timesteps
            instance = _call(GymnasiumEnvironment, "environment 'gymnasium'", kwargs)
        elif self.kind == "class":
            instance = _call(self.value, f"environment {self.value.__name__}", self.kwargs)
            if not isinstance(instance, Environment):  # pragma: no cover - defensive
                raise ArgumentError.invalid(
                    "environment", "a class whose instances are Environments", self.value
                )
        else:
            instance = self.value
        return EnvironmentWrapper(
            instance,
            max_episode_timesteps=self.max_episode_timesteps,
            reward_shaping=self.reward_shaping,
        )


def _call(factory: Callable, what: str, kwargs: dict) -> Any:
    try:
        return factory(**kwargs)
    except TypeError as exc:
        message = str(exc)
        if "argument" in message:
            raise ArgumentError(f"Invalid arguments for {what}: {message}.") from None
        raise


def _merge_spec_dict(
    spec: Mapping, max_episode_timesteps: Any, reward_shaping: Any, kwargs: dict
) -> tuple[Any, Any, Any, dict]:
    spec = dict(spec)
    if "environment" in spec and "type" in spec:
        raise ArgumentError.invalid(
            "environment", "a dict with either an 'environment' or a 'type' key", spec
        )
    environment = spec.pop("environment", spec.pop("type", "default"))
    for key, current in (
        ("max_episode_timesteps", max_episode_timesteps),
        ("reward_shaping", reward_shaping),
    ):
        value = spec.pop(key, None)
        if value is None:
            continue
        if current is not None and current != value:
            raise ArgumentError.invalid(
                key, f"the same value as given to create ({current!r})", value,
                where="the environment spec",
            )
        if key == "max_episode_timesteps":
            max_episode_timesteps = value
        else:
            reward_shaping = value
    merged = {**spec, **kwargs}
    return environment, max_episode_timesteps, reward_shaping, merged


def resolve_environment(
    environment: Any,
    max_episode_timesteps: Any = None,
    reward_shaping: Any = None,
    kwargs: dict | None = None,
) -> ResolvedEnvironment:
    """Resolves an environment spec (see `Environment.create`) without building it.

    Args:
        environment: The environment spec.
        max_episode_timesteps: Maximum episode length, or None.
        reward_shaping: Reward shaping, or None.
        kwargs: Environment arguments.

    Returns:
        A `ResolvedEnvironment`.

    Raises:
        ArgumentError: for an invalid spec.
        UnknownTypeError: for an unknown environment string.
    """
    kwargs = dict(kwargs or {})
    max_episode_timesteps = _check_max_episode_timesteps(max_episode_timesteps)
    _check_reward_shaping(reward_shaping)
    from_file = False  # whether the spec came from a JSON file (safe mode applies)
    for _ in range(16):  # bounded: specs may refer to specs (JSON -> dict -> key)
        if isinstance(environment, EnvironmentWrapper):
            own = environment.max_episode_timesteps()
            if max_episode_timesteps is not None and max_episode_timesteps != own:
                raise ArgumentError.invalid(
                    "max_episode_timesteps",
                    f"None or the wrapped environment's value {own}",
                    max_episode_timesteps, where="Environment.create",
                )
            if kwargs or reward_shaping is not None:
                given = sorted(kwargs) + (["reward_shaping"] if reward_shaping else [])
                raise ArgumentError.invalid(
                    "kwargs", "no further arguments for an already created environment",
                    given, where="Environment.create",
                )
            return ResolvedEnvironment("wrapper", environment, max_episode_timesteps, None)
        if isinstance(environment, Environment):
            if kwargs:
                raise ArgumentError.invalid(
                    "kwargs", "no arguments for an environment instance", sorted(kwargs),
                    where="Environment.create",
                )
            return ResolvedEnvironment(
                "instance", environment, max_episode_timesteps, reward_shaping
            )
        if isinstance(environment, type) and issubclass(environment, EnvironmentWrapper):
            raise ArgumentError.invalid(
                "environment", "an environment spec (not the EnvironmentWrapper class)",
                environment, where="Environment.create",
            )
        if isinstance(environment, type) and issubclass(environment, Environment):
            return ResolvedEnvironment(
                "class", environment, max_episode_timesteps, reward_shaping, kwargs
            )
        if isinstance(environment, Mapping):
            environment, max_episode_timesteps, reward_shaping, kwargs = _merge_spec_dict(
                environment, max_episode_timesteps, reward_shaping, kwargs
            )
            max_episode_timesteps = _check_max_episode_timesteps(max_episode_timesteps)
            _check_reward_shaping(reward_shaping)
            continue
        if isinstance(environment, str):
            if is_json_path(environment):
                environment = load_json(environment, "environment")
                from_file = True
                continue
            if environment.endswith(".json"):
                raise ArgumentError.invalid(
                    "environment", "an existing JSON file", environment,
                    where="Environment.create",
                )
            key = environment.lower()
            if key in ENVIRONMENTS:
                target = _import_path(ENVIRONMENTS[key])
                from kerasrl.environments.gymnasium import GymnasiumEnvironment

                if target is GymnasiumEnvironment:
                    if "level" not in kwargs:
                        raise ArgumentError.invalid(
                            "level", f"a gymnasium id or env for environment {environment!r}",
                            None, where="Environment.create",
                        )
                    _check_entry_point(kwargs["level"], from_file)
                    _check_import_modules(kwargs.get("import_modules"), from_file)
                    return ResolvedEnvironment(
                        "gymnasium", None, max_episode_timesteps, reward_shaping, kwargs
                    )
                environment = target
                continue
            unsupported = unsupported_environment(environment)
            if unsupported is not None:
                raise unsupported
            imported = _import_environment(environment, from_file) if "." in environment \
                else None
            if imported is not None:
                environment = imported
                continue
            level = gymnasium_id(environment)
            if level is None and "." not in environment:
                imported = _import_environment(environment, from_file)  # a top-level module
                if imported is not None:
                    environment = imported
                    continue
            if level is not None:
                _check_entry_point(level, from_file)
                if "level" in kwargs:
                    raise ArgumentError.invalid(
                        "level", "no level when the environment is a gymnasium id",
                        kwargs["level"], where="Environment.create",
                    )
                kwargs["level"] = level
                return ResolvedEnvironment(
                    "gymnasium", None, max_episode_timesteps, reward_shaping, kwargs
                )
            raise UnknownTypeError.invalid(
                "environment",
                f"a registered gymnasium id, one of {sorted(ENVIRONMENTS)}, a JSON file, "
                "or an import path of an Environment / gymnasium.Env class",
                environment, where="Environment.create",
            )
        if environment is not None and _is_gymnasium_env(environment):
            if "level" in kwargs:
                raise ArgumentError.invalid(
                    "level", "no level when the environment is a gymnasium.Env",
                    kwargs["level"], where="Environment.create",
                )
            kwargs["level"] = environment
            return ResolvedEnvironment(
                "gymnasium", None, max_episode_timesteps, reward_shaping, kwargs
            )
        raise ArgumentError.invalid(
            "environment",
            "a gymnasium id, a registry key, a dict, a JSON file, an import path, "
            "an Environment or gymnasium.Env class or instance",
            environment, where="Environment.create",
        )
    raise ArgumentError.invalid(  # pragma: no cover - cyclic specs
        "environment", "a spec that does not refer to itself", environment
    )


def invalid_state(environment: Any, name: str, function: str,
                  error: Exception) -> EnvironmentOutputError:
    """The error for an invalid state `name` returned by `environment.<function>()`."""
    return EnvironmentOutputError(
        f"Environment {environment} returned an invalid state '{name}' from "
        f"{function}(): {error}"
    )


# ---------------------------------------------------------------------- reward shaping
def _check_reward_shaping(reward_shaping: Any) -> None:
    if reward_shaping is None or callable(reward_shaping):
        return
    if isinstance(reward_shaping, str):
        _compile_reward_shaping(reward_shaping)
        return
    raise ArgumentError.invalid(
        "reward_shaping", "None, a callable or a string expression", reward_shaping,
        where="Environment.create",
    )


#: What a `reward_shaping` expression may use besides its variables (see
#: `kerasrl.expressions`: no builtins beyond these, no private attributes).
REWARD_SHAPING_NAMESPACE = {
    "math": math, "np": np, "random": random, "abs": abs, "min": min, "max": max,
    "float": float, "int": int, "bool": bool, "round": round, "sum": sum, "len": len,
}
_REWARD_SHAPING_VARIABLES = ("states", "actions", "terminal", "reward", "next_states")


def _compile_reward_shaping(expression: str) -> types.CodeType:
    return compile_restricted(expression, REWARD_SHAPING_NAMESPACE, _REWARD_SHAPING_VARIABLES,
                              "reward_shaping", where="Environment.create")


# ---------------------------------------------------------------------- wrapper
_FULL_CHECKS = 3  # number of reset/execute calls that get the full validation


class EnvironmentWrapper(Environment):
    """Wraps an environment: validates its outputs and actions, enforces the time limit.

    Every environment created by `Environment.create` is wrapped. On every
    call the wrapper converts states to their spec dtypes (`np.float32`,
    `np.int64`, `np.bool_`) and checks shapes and NaN/inf; on the first calls
    it also checks value ranges and mask shapes. Actions given to `execute`
    are checked against the action spec. Attribute access is forwarded to the
    wrapped environment.

    Args:
        environment: The `Environment` to wrap.
        max_episode_timesteps: Maximum episode length; overrides the
            environment's own None and must not exceed its own value.
        reward_shaping: Callable or string expression (see
            `Environment.create`).

    Raises:
        ArgumentError: for invalid arguments.
        SpecError: for invalid state or action specs.

    Example:

    >>> from kerasrl import Environment
    >>> inner = Environment.create('CartPole-v1').environment  # create() wraps
    >>> env = EnvironmentWrapper(inner, max_episode_timesteps=100)
    >>> env.max_episode_timesteps()
    100
    >>> tuple(env.reset().shape)
    (4,)
    >>> env.close()
    """

    _OWN_ATTRIBUTES = frozenset(
        {
            "_environment",
            "_max_episode_timesteps",
            "_reward_shaping",
            "_reward_shaping_code",
            "_timestep",
            "_previous_states",
            "_states_specs",
            "_actions_specs",
            "_mask_specs",
            "_full_checks",
            "_seedable",
            "_pending_call",
            "_fast_action",
        }
    )

    def __init__(
        self,
        environment: Environment,
        max_episode_timesteps: int | None = None,
        reward_shaping: Callable | str | None = None,
    ):
        super().__init__()
        if isinstance(environment, EnvironmentWrapper):
            raise ArgumentError.invalid(
                "environment", "an unwrapped Environment", environment, where="EnvironmentWrapper"
            )
        if not isinstance(environment, Environment):
            raise ArgumentError.invalid(
                "environment", "an Environment instance", environment, where="EnvironmentWrapper"
            )
        self._environment = environment
        name = _name_of(environment)
        if environment.num_actors() != 1:
            raise ArgumentError.invalid(
                "environment", "a single-actor environment (a multi-actor environment runs "
                "through Runner(environment=...) or kerasrl.environments.IndexedEnvironment)",
                name, where="EnvironmentWrapper",
            )
        max_episode_timesteps = _check_max_episode_timesteps(max_episode_timesteps)
        own = environment.max_episode_timesteps()
        if own is not None:
            own = _check_max_episode_timesteps(own)
        if max_episode_timesteps is None:
            self._max_episode_timesteps = own
        else:
            if own is not None and max_episode_timesteps > own:
                raise ArgumentError.invalid(
                    "max_episode_timesteps",
                    f"at most the environment's own max_episode_timesteps ({own})",
                    max_episode_timesteps, where=f"environment {name}",
                )
            self._max_episode_timesteps = max_episode_timesteps
        _check_reward_shaping(reward_shaping)
        self._reward_shaping = reward_shaping
        self._reward_shaping_code = (
            _compile_reward_shaping(reward_shaping) if isinstance(reward_shaping, str) else None
        )
        self._states_specs, self._actions_specs, self._mask_specs = _environment_specs(
            environment, name)
        single = self._actions_specs.singleton and self._actions_specs["action"]
        self._fast_action = (
            single.num_values if single and single.type == "int" and single.shape == () else None
        )
        self._timestep = None
        self._previous_states = None
        self._full_checks = {"reset": _FULL_CHECKS, "execute": _FULL_CHECKS}
        self._seedable = None
        self._indexed = None  # the vectorized protocol, after reset(num_parallel=N)
        self._pending_call = None

    # attribute forwarding ------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in EnvironmentWrapper._OWN_ATTRIBUTES:
            raise AttributeError(name)
        environment = self.__dict__.get("_environment")
        if environment is None:
            raise AttributeError(name)
        return getattr(environment, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in EnvironmentWrapper._OWN_ATTRIBUTES or "_environment" not in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            setattr(self._environment, name, value)

    # interface -------------------------------------------------------------------
    @property
    def environment(self) -> Environment:
        """The wrapped environment."""
        return self._environment

    @property
    def states_spec(self) -> Specs:
        """The validated state specs (`kerasrl.specs.Specs`)."""
        return self._states_specs

    @property
    def actions_spec(self) -> Specs:
        """The validated action specs (`kerasrl.specs.Specs`)."""
        return self._actions_specs

    def __str__(self) -> str:
        return _name_of(self._environment)

    def states(self) -> dict:
        return self._environment.states()

    def actions(self) -> dict:
        return self._environment.actions()

    def max_episode_timesteps(self) -> int | None:
        return self._max_episode_timesteps

    def is_vectorizable(self) -> bool:
        return bool(self._environment.is_vectorizable())

    def num_actors(self) -> int:
        return self._environment.num_actors()

    def episode_return(self) -> float | None:
        return self._environment.episode_return()

    def close(self) -> None:
        self._timestep = None
        self._environment.close()

    def get_config(self) -> dict:
        """Returns a spec that recreates the wrapped environment."""
        config = dict(self._environment.get_config())
        if self._max_episode_timesteps is not None:
            config["max_episode_timesteps"] = self._max_episode_timesteps
        if isinstance(self._reward_shaping, str):
            config["reward_shaping"] = self._reward_shaping
        return config

    def supports_seed(self) -> bool:
        """Whether the wrapped environment's `reset` accepts a `seed` keyword."""
        if self._seedable is None:
            try:
                parameters = inspect.signature(self._environment.reset).parameters.values()
            except (TypeError, ValueError):  # pragma: no cover - builtins
                parameters = ()
            self._seedable = any(
                p.name == "seed" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
            )
        return self._seedable

    def reset(self, seed: int | None = None, num_parallel: int | None = None) -> Any:
        """Starts a new episode.

        Args:
            seed: Optional seed given to the environment's `reset`.
            num_parallel: A vectorizable environment (`is_vectorizable()`):
                start this many episodes side by side. `reset` then returns
                `(indices, states_batch)` and `execute(actions_batch)`
                returns `(indices, states_batch, terminal_batch,
                reward_batch)`, validated and with `max_episode_timesteps`
                enforced (see `kerasrl.environments.indexed`), until the next
                `reset` without `num_parallel`.

        Returns:
            The validated initial states (an array for a singleton spec without
            masks, else a dict), or `(indices, states_batch)` (see
            `num_parallel`).

        Raises:
            ArgumentError: a seed for an environment whose reset takes none, or
                `num_parallel` for an environment that is not vectorizable.
            EnvironmentOutputError: invalid states.
        """
        self._timestep = None
        if num_parallel is not None:
            return self._reset_indexed(seed, num_parallel)
        self._indexed = None
        if seed is None:
            states = self._environment.reset()
        else:
            if not self.supports_seed():
                raise ArgumentError.invalid(
                    "seed", "None: the reset() of this environment takes no seed", seed,
                    where=f"environment {self}",
                )
            states = self._environment.reset(seed=seed)
        states = self._process_states(states, "reset")
        self._timestep = 0
        if self._reward_shaping is not None:
            self._previous_states = states
        return states

    def execute(self, actions: Any) -> tuple[Any, int, float]:
        """Executes actions for one timestep.

        Args:
            actions: A value for a singleton action spec, else a (nested or
                `/`-flattened) dict of values.

        Returns:
            `(states, terminal, reward)` with terminal an int in {0, 1, 2}
            and reward a float.

        Raises:
            CallOrderError: execute before reset or after the episode ended.
            InputError: an action outside the spec.
            EnvironmentOutputError: invalid states, terminal or reward.
        """
        if self._indexed is not None:
            indices, states, terminal, reward = self._indexed.execute(actions)
            return indices, self._batch_form(states), terminal, reward
        if self._timestep is None:
            raise CallOrderError(
                f"Environment {self}: execute() called before reset() (or after the episode "
                "ended); call reset() to start an episode."
            )
        self._check_actions(actions)
        states, terminal, reward = self._environment.execute(actions)
        states = self._process_states(states, "execute")
        terminal = self._check_terminal(terminal, "execute")
        reward = self._check_reward(reward, "execute")
        if self._reward_shaping is not None:
            reward, terminal = self._shape_reward(actions, terminal, reward, states)
            self._previous_states = states
        self._timestep += 1
        if (
            terminal == 0
            and self._max_episode_timesteps is not None
            and self._timestep >= self._max_episode_timesteps
        ):
            terminal = 2
        if terminal > 0:
            self._timestep = None
        return states, terminal, reward

    @property
    def timestep(self) -> int | None:
        """Timesteps of the current episode (None outside an episode)."""
        return self._timestep

    def _reset_indexed(self, seed: int | None, num_parallel: int) -> tuple:
        from kerasrl.environments.indexed import IndexedEnvironment

        if not self._environment.is_vectorizable():
            raise ArgumentError.invalid(
                "num_parallel", "None: the environment is not vectorizable", num_parallel,
                where=f"environment {self}",
            )
        if self._indexed is None or self._indexed.num_parallel != num_parallel:
            self._indexed = IndexedEnvironment(self._environment, num_parallel=num_parallel,
                                               max_episode_timesteps=self._max_episode_timesteps,
                                               reward_shaping=self._reward_shaping)
        indices, states = self._indexed.reset(seed=seed)
        return indices, self._batch_form(states)

    def _batch_form(self, states: dict) -> Any:
        """Batched states as `reset` gives single ones: an array for a singleton spec
        without masks, else a dict (nested like the spec)."""
        if self._states_specs.singleton and list(states) == ["state"]:
            return states["state"]
        return unflatten(states) if any("/" in name for name in states) else states

    # validation ------------------------------------------------------------------
    def _fail(self, function: str, what: str, expected: str, received: Any) -> KerasRLError:
        return EnvironmentOutputError.invalid(
            what, expected, received, where=f"environment {self} ({function})"
        )

    def _process_states(self, states: Any, function: str) -> Any:
        full = self._full_checks[function] > 0
        if full:
            self._full_checks[function] -= 1
        specs = self._states_specs
        if specs.singleton and not isinstance(states, Mapping):
            return self._convert_state(specs["state"], states, "state", function, full)
        if not isinstance(states, Mapping):
            raise self._fail(
                function, "states",
                "a dict of states" if not specs.singleton else "an array (or a dict)", states,
            )
        nested = any(isinstance(value, Mapping) for value in states.values())
        flat = flatten(states) if nested else states
        if len(flat) != len(specs) or any(name not in flat for name in specs):
            self._check_state_names(flat, function)
        converted = {}
        for name, value in flat.items():
            spec = specs._specs.get(name)
            if spec is None:
                spec = self._mask_specs.get(name)
                if spec is None:
                    self._check_state_names(flat, function)
                    continue  # pragma: no cover - _check_state_names raised
            converted[name] = self._convert_state(spec, value, name, function, full)
        if specs.singleton or all("/" not in name for name in converted):
            return converted
        return unflatten(converted)

    def _check_state_names(self, flat: Mapping, function: str) -> None:
        specs = self._states_specs
        for name in flat:
            if name not in specs._specs and name not in self._mask_specs:
                if name.endswith("_mask"):
                    expected = (
                        f"masks only for int actions {sorted(self._mask_specs)}"
                    )
                else:
                    expected = f"state names among {list(specs)} (and '<action>_mask')"
                raise self._fail(function, f"state '{name}'", expected, flat[name])
        missing = [name for name in specs if name not in flat]
        if missing:
            raise self._fail(
                function, "states", f"values for all states {list(specs)} (missing {missing})",
                sorted(flat),
            )

    def _convert_state(
        self, spec: ValueSpec, value: Any, name: str, function: str, full: bool
    ) -> np.ndarray:
        array = value if type(value) is np.ndarray else np.asarray(value)
        if full or array.dtype != spec.dtype or array.shape != spec.shape:
            try:
                array = spec.check_batch(array, argument=name, num_batch_dims=0)
            except InputError as exc:
                raise invalid_state(self, name, function, exc) from None
            return array
        if spec.type == "float" and not np.isfinite(array).all():
            raise EnvironmentOutputError(
                f"Environment {self} returned an invalid state '{name}' from {function}(): "
                f"expected finite values (no NaN/inf), received {_short(array)}."
            )
        return array

    def _check_terminal(self, terminal: Any, function: str) -> int:
        if terminal is True or terminal is False:
            return int(terminal)
        value = terminal
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        elif isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int) and 0 <= value <= 2:
            return value
        raise self._fail(function, "terminal", "a bool or an int in {0, 1, 2}", terminal)

    def _check_reward(self, reward: Any, function: str) -> float:
        value = reward
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        elif isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(function, "reward", "a float or an int", reward)
        value = float(value)
        if not math.isfinite(value):
            raise self._fail(function, "reward", "a finite number (no NaN/inf)", reward)
        return value

    def _check_actions(self, actions: Any) -> None:
        if self._fast_action is not None and isinstance(actions, (int, np.integer)):
            if not isinstance(actions, (bool, np.bool_)) and 0 <= actions < self._fast_action:
                return
        specs = self._actions_specs
        if specs.singleton and not isinstance(actions, Mapping):
            self._check_action(specs["action"], actions, "action")
            return
        if not isinstance(actions, Mapping):
            raise InputError(
                f"Invalid action: an action outside the spec returned to an environment ({self}): expected a "
                f"dict of actions {list(specs)}, received {actions!r}."
            )
        flat = flatten(actions)
        unknown = [name for name in flat if name not in specs._specs]
        missing = [name for name in specs if name not in flat]
        if unknown or missing:
            raise InputError(
                f"Invalid action: an action outside the spec returned to an environment ({self}): expected "
                f"actions {list(specs)}, received {sorted(flat)} (unknown {unknown}, "
                f"missing {missing})."
            )
        for name, value in flat.items():
            self._check_action(specs[name], value, name)

    def _check_action(self, spec: ValueSpec, value: Any, name: str) -> None:
        try:
            spec.check_action(value, argument=name, num_batch_dims=0)
        except InputError as exc:
            raise InputError(
                f"Invalid action: an action outside the spec returned to an environment ({self}): {exc}"
            ) from None

    def _shape_reward(
        self, actions: Any, terminal: int, reward: float, states: Any
    ) -> tuple[float, int]:
        arguments = {
            "states": self._previous_states,
            "actions": actions,
            "terminal": terminal,
            "reward": reward,
            "next_states": states,
        }
        try:
            if self._reward_shaping_code is not None:
                result = evaluate(self._reward_shaping_code, REWARD_SHAPING_NAMESPACE, arguments)
            else:
                result = self._reward_shaping(
                    self._previous_states, actions, terminal, reward, states
                )
        except KerasRLError:
            raise
        except Exception as exc:
            raise ArgumentError(
                f"Invalid argument 'reward_shaping' of environment {self}: "
                f"{self._reward_shaping!r} raised {type(exc).__name__}: {exc}."
            ) from None
        if isinstance(result, tuple):
            if len(result) != 2:
                raise ArgumentError.invalid(
                    "reward_shaping", "a reward or a (reward, terminal) pair as result",
                    result, where=f"environment {self}",
                )
            new_reward, new_terminal = result
            new_terminal = self._check_terminal(new_terminal, "reward_shaping")
        else:
            new_reward, new_terminal = result, terminal
        return self._check_reward(new_reward, "reward_shaping"), new_terminal


__all__ = [
    "Environment",
    "EnvironmentWrapper",
    "EnvironmentOutputError",
    "ResolvedEnvironment",
    "resolve_environment",
    "gymnasium_id",
    "ENVIRONMENTS",
    "GYMNASIUM_KEYS",
]
