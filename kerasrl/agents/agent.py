"""The `Agent` base class: creation, act/observe bookkeeping, fit/evaluate.

Subclasses implement `_act_batch` (compute actions for a batch of states) and
`_observe_batch` (store the outcome, maybe update). Everything a user touches
(argument checking, batching, parallel slots, counters, Keras-style `fit`)
lives here, once.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from kerasrl import parameters, registry
from kerasrl.agents.io import StateParser, format_actions
from kerasrl.errors import (
    ArgumentError,
    CallOrderError,
    InputError,
    NonFiniteError,
    UnknownTypeError,
)
from kerasrl.specs import Specs, check_action_specs_bounds
from kerasrl.validation import check_int

logger = logging.getLogger("kerasrl")

#: The key of the variable-noise value among an act program's exploration values
#: (not a valid Tensorforce name, so no action can be called so).
VARIABLE_NOISE = "<variable_noise>"

# Agent registry: filled lazily to avoid importing every algorithm up front.
AGENTS: dict[str, str] = {
    "ppo": "kerasrl.agents.ppo.PPO",
    "proximal_policy_optimization": "kerasrl.agents.ppo.PPO",
    "vpg": "kerasrl.agents.vpg.VPG",
    "reinforce": "kerasrl.agents.vpg.VPG",
    "ac": "kerasrl.agents.ac.AC",
    "a2c": "kerasrl.agents.ac.A2C",
    "trpo": "kerasrl.agents.trpo.TRPO",
    "random": "kerasrl.agents.simple.RandomAgent",
    "constant": "kerasrl.agents.simple.ConstantAgent",
    "function": "kerasrl.agents.simple.FunctionAgent",
    "recorder": "kerasrl.agents.simple.FunctionAgent",
    "dqn": "kerasrl.agents.dqn.DQN",
    "double_dqn": "kerasrl.agents.dqn.DoubleDQN",
    "ddqn": "kerasrl.agents.dqn.DoubleDQN",
    "dueling_dqn": "kerasrl.agents.dqn.DuelingDQN",
    "dpg": "kerasrl.agents.ddpg.DDPG",
    "ddpg": "kerasrl.agents.ddpg.DDPG",
    "td3": "kerasrl.agents.td3.TD3",
    "sac": "kerasrl.agents.sac.SAC",
}
#: Keys of the generic agent (`kerasrl.agents.generic`), composed from parts.
GENERIC_AGENTS = ("tensorforce", "default")

CONFIG_KEYS = {
    "name": "agent",
    "seed": None,
    "device": None,
    "buffer_observe": None,
    "enable_int_action_masking": True,
    "create_tf_assertions": None,
    "create_debug_assertions": None,
    "eager_mode": None,
    "tf_log_level": None,
    "nonfinite": "raise",
}
#: What an update with a non-finite loss or gradient does (`config['nonfinite']`).
NONFINITE_MODES = ("raise", "skip")
IGNORED_CONFIG_KEYS = (
    "device", "buffer_observe", "create_tf_assertions", "create_debug_assertions",
    "eager_mode", "tf_log_level",
)
#: Features attached to an agent through its arguments (Tensorforce's saver,
#: summarizer and recorder). Each maps to a factory `factory(agent, spec) ->
#: plugin`, or to the import path of one (imported on first use); a plugin
#: implements any of the hooks `on_act`, `on_observe`, `on_episode_end`,
#: `on_update` and `close` (see `Agent._notify`). The recorder belongs to the
#: execution package, which registers it with `register_plugin` when
#: `kerasrl` is imported.
PLUGINS: dict[str, str | Callable[..., Any]] = {
    "saver": "kerasrl.saving.create_saver",
    "summarizer": "kerasrl.summaries.create_summarizer",
    "tracking": "kerasrl.tracking.create_tracking",
}
#: The agent arguments that attach a plugin (the keys `PLUGINS` may have).
PLUGIN_ARGUMENTS = ("saver", "summarizer", "recorder", "tracking")

#: The functions behind `Agent.fit`, `Agent.evaluate` and `Agent.pretrain`,
#: by method name. Agents do not depend on the loops that drive them: the
#: execution package registers its runner-based implementations here with
#: `register_driver` when `kerasrl` is imported.
DRIVERS: dict[str, Callable[..., Any]] = {}
DRIVER_NAMES = ("fit", "evaluate", "pretrain")


def register_driver(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Registers the function that `Agent.fit`, `Agent.evaluate` or `Agent.pretrain` calls.

    The agent method checks its arguments, then calls
    `function(agent, *arguments, **keywords)` with the agent first and the
    method's (checked) arguments, and returns its result. A later
    registration replaces an earlier one.

    Args:
        name: The method: `'fit'`, `'evaluate'` or `'pretrain'`.
        function: The implementation, e.g. `kerasrl.execution.drivers.fit`.

    Returns:
        `function`, unchanged.

    Raises:
        ArgumentError: `name` is not one of the three methods, or `function`
            is not callable.
    """
    if name not in DRIVER_NAMES:
        raise ArgumentError.invalid("name", f"one of {DRIVER_NAMES}", name, "register_driver")
    if not callable(function):
        raise ArgumentError.invalid("function", "a callable", function, "register_driver")
    DRIVERS[name] = function
    return function


def register_plugin(key: str, factory: Callable[..., Any]) -> Callable[..., Any]:
    """Registers the factory of the plugin that an agent argument attaches.

    An agent created with `<key>=spec` calls `factory(agent, spec)` once it
    is built and notifies the returned plugin (see `PLUGINS`). A later
    registration replaces an earlier one.

    Args:
        key: The agent argument: `'saver'`, `'summarizer'`, `'recorder'` or
            `'tracking'`.
        factory: `factory(agent, spec) -> plugin`.

    Returns:
        `factory`, unchanged.

    Raises:
        ArgumentError: `key` is not one of the plugin arguments, or `factory`
            is not callable.
    """
    if key not in PLUGIN_ARGUMENTS:
        raise ArgumentError.invalid("key", f"one of {PLUGIN_ARGUMENTS}", key, "register_plugin")
    if not callable(factory):
        raise ArgumentError.invalid("factory", "a callable", factory, "register_plugin")
    PLUGINS[key] = factory
    return factory


def _driver(name: str) -> Callable[..., Any]:
    """The registered function behind `Agent.<name>` (see `register_driver`)."""
    function = DRIVERS.get(name)
    if function is None:
        raise UnknownTypeError(
            f"Agent.{name} has no implementation: no function is registered for '{name}'. "
            "Importing kerasrl registers the built-in ones; a custom one is registered with "
            "kerasrl.agents.agent.register_driver."
        )
    return function


def _loss_term(metric: str) -> str:
    """The loss term a metric belongs to, for `NonFiniteError` messages."""
    for word, term in (("baseline", "baseline (value) loss"), ("value", "baseline (value) loss"),
                       ("critic", "critic loss"), ("actor", "actor loss"),
                       ("alpha", "temperature (alpha) loss")):
        if word in metric:
            return term
    return "policy loss"


def _non_finite_input(argument: str, values: np.ndarray, unit: str) -> InputError:
    """The error for NaN/inf (or float32 overflow) in `values`, naming the first bad index."""
    index = int(np.flatnonzero(~np.isfinite(values))[0])
    return InputError.invalid(
        argument, f"finite float32 values (no NaN/inf); {unit} {index} is not finite",
        float(values.reshape(-1)[index]))


def _agent_class(key: str) -> type:
    return registry.import_internal(AGENTS[key])


def _jsonable(value: Any) -> Any:
    """Best-effort conversion of a spec value to JSON-compatible data."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "get_config"):
        try:
            return _jsonable(value.get_config())
        except Exception:  # noqa: BLE001 - best effort only
            return repr(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _check_no_internals(internals: Any, argument: str) -> None:
    """`internals` must be `{}` (or, for a batch or a sequence, a list of `{}`)."""
    values = internals if isinstance(internals, (list, tuple)) else [internals]
    if not all(isinstance(value, Mapping) and not value for value in values):
        raise ArgumentError.invalid(
            argument, "{} or a list of {} (this agent's policy is not recurrent; "
            "start from agent.initial_internals())", internals)


def parse_internals(internals: Any, shapes: Mapping[str, tuple], size: int,
                    argument: str) -> dict[str, np.ndarray]:
    """Checks internal states given to `act` or `experience`; returns `(size, *shape)` arrays.

    Args:
        internals: A dict `{name: value}` with the names of `shapes` (values of
            shape `shape`, repeated for every row, or `(size, *shape)`), or a
            list of `size` such dicts.
        shapes: The internal states' shapes by name.
        size: The number of rows (the batch or the number of timesteps).
        argument: The argument name for messages.

    Returns:
        `{name: float32 array (size, *shape)}`.
    """
    if not shapes:
        _check_no_internals(internals, argument)
        return {}
    expected = f"a dict with the keys {sorted(shapes)} (from agent.initial_internals())"
    if isinstance(internals, (list, tuple)):
        if len(internals) != size or not all(
                isinstance(item, Mapping) and set(item) == set(shapes) for item in internals):
            raise ArgumentError.invalid(
                argument, f"{size} dicts (one per row) with the keys {sorted(shapes)}, or "
                f"{expected}", internals)
        try:
            internals = {name: np.stack([np.asarray(item[name]) for item in internals])
                         for name in shapes}
        except ValueError as exc:
            raise InputError.invalid(argument, "rows of equal shapes", str(exc)) from None
    if not isinstance(internals, Mapping) or set(internals) != set(shapes):
        raise ArgumentError.invalid(argument, expected, internals)
    parsed = {}
    for name, shape in shapes.items():
        value = np.asarray(internals[name])
        if value.dtype.kind not in "fiu":
            raise InputError.invalid(f"{argument}['{name}']", "float values", value.dtype)
        value = value.astype(np.float32)
        if value.shape == tuple(shape):
            value = np.broadcast_to(value, (size, *shape))
        elif value.shape != (size, *shape):
            raise InputError.invalid(f"{argument}['{name}']",
                                     f"shape {tuple(shape)} or {(size, *shape)}", value.shape)
        if not np.all(np.isfinite(value)):
            raise _non_finite_input(f"{argument}['{name}']", value, "row")
        parsed[name] = np.array(value, np.float32)  # a writable copy
    return parsed


class Agent:
    """Base class of all agents.

    Create agents with `Agent.create(...)` rather than with the constructors.

    Args:
        states: State spec (a spec dict, or a dict of named specs).
        actions: Action spec (same forms).
        max_episode_timesteps: Maximum episode length, if known.
        parallel_interactions: Number of parallel act/observe slots
            (environments acting concurrently).
        config: Dict with `name` (default `'agent'`), `seed` (seeds Python,
            NumPy, Keras and the agent's sampling RNG) and
            `enable_int_action_masking`. TensorFlow-graph-only keys of
            Tensorforce (`device`, `eager_mode`, `buffer_observe`, ...) are
            accepted and ignored with a warning.
        saver: Periodic checkpoints (`kerasrl.saving.Saver`).
        summarizer: TensorBoard summaries (`kerasrl.summaries`); `summaries`
            is a synonym.
        recorder: Trace recording (`kerasrl.execution.recorder`).
        tracking: `'all'` or a list of labels: the latest losses, entropies,
            KL, norms, episode returns and scheduled parameters, read with
            `tracked_tensors()` (`kerasrl.tracking`).
    """

    #: Registry key of the agent type.
    agent_type = "agent"

    def __init__(
        self,
        states: Any,
        actions: Any,
        max_episode_timesteps: int | None = None,
        parallel_interactions: int = 1,
        config: Mapping | None = None,
        saver: Any = None,
        summarizer: Any = None,
        summaries: Any = None,
        recorder: Any = None,
        tracking: Any = None,
    ):
        self.states_spec = Specs(states, "states")
        self.actions_spec = Specs(actions, "actions")
        check_action_specs_bounds(self.actions_spec)
        if max_episode_timesteps is not None:
            if isinstance(max_episode_timesteps, bool) or not isinstance(
                max_episode_timesteps, (int, np.integer)
            ) or max_episode_timesteps <= 0:
                raise ArgumentError.invalid(
                    "max_episode_timesteps", "a positive int or None", max_episode_timesteps
                )
            max_episode_timesteps = int(max_episode_timesteps)
        self.max_episode_timesteps = max_episode_timesteps
        if (
            isinstance(parallel_interactions, bool)
            or not isinstance(parallel_interactions, (int, np.integer))
            or parallel_interactions < 1
        ):
            raise ArgumentError.invalid(
                "parallel_interactions", "a positive int", parallel_interactions
            )
        self.parallel_interactions = int(parallel_interactions)
        self.config = self._parse_config(config)
        if summaries is not None and summarizer is None:
            summarizer = summaries
        self._plugin_specs = {
            key: value for key, value in (
                ("saver", saver), ("summarizer", summarizer), ("recorder", recorder),
                ("tracking", tracking),
            ) if value is not None
        }
        self._plugins: list = []
        self.spec: dict[str, Any] = {}
        self._parser = StateParser(self.states_spec, self.actions_spec)
        seed = self.config["seed"]
        if seed is not None:
            from kerasrl import backend

            backend.set_random_seed(int(seed))
        self._rng = np.random.default_rng(seed)
        self.timesteps = 0
        self.episodes = 0
        self.updates = 0
        #: Updates with non-finite gradient steps (skipped) under `config=dict(nonfinite='skip')`.
        self.nonfinite_updates = 0
        self._awaiting_observe = np.zeros(self.parallel_interactions, dtype=bool)
        self._all_slots = np.arange(self.parallel_interactions)
        self._all_slots.flags.writeable = False  # returned by _parallel_indices, shared
        self._episode_timesteps = np.zeros(self.parallel_interactions, dtype=np.int64)
        self._episode_return = np.zeros(self.parallel_interactions, dtype=np.float64)

    # ------------------------------------------------------------------ creation
    @staticmethod
    def _parse_config(config: Mapping | None) -> dict:
        config = dict(config or {})
        unknown = set(config) - set(CONFIG_KEYS)
        if unknown:
            raise ArgumentError.invalid(
                f"config key(s) {sorted(unknown)}", f"keys among {sorted(CONFIG_KEYS)}", config
            )
        for key in IGNORED_CONFIG_KEYS:
            if config.get(key) is not None:
                warnings.warn(
                    f"config['{key}'] only made sense for Tensorforce's TensorFlow graphs; "
                    "it is ignored by kerasrl.",
                    stacklevel=4,
                )
        check_int(config.get("seed"), "config['seed']", minimum=0, maximum=2**32 - 1,
                  allow_none=True)
        if config.get("nonfinite", "raise") not in NONFINITE_MODES:
            raise ArgumentError.invalid("config['nonfinite']", f"one of {NONFINITE_MODES}",
                                        config["nonfinite"])
        return {**CONFIG_KEYS, **config}

    @classmethod
    def create(cls, agent: Any = "tensorforce", environment: Any = None, *,
               safe_mode: bool | None = None, custom_objects: Mapping[str, Any] | None = None,
               **kwargs: Any) -> Agent:
        """Creates an agent from a spec, Tensorforce style.

        Args:
            agent: A registry key (`'ppo'`, `'random'`, ...; the default
                `'tensorforce'` is the generic agent composed from parts, see
                `kerasrl.agents.generic`), a dict with an `agent` (or `type`)
                key and arguments (without one: the generic agent), a JSON
                file path, an `Agent` subclass or instance, or an import path.
            environment: An environment (or environment spec) from which
                `states`, `actions` and `max_episode_timesteps` are taken
                unless given explicitly.
            safe_mode: None (default): import paths read from files (a JSON
                spec, a network JSON) are refused, those written in Python
                are allowed; True: refused everywhere; False: the files are
                trusted. Whatever a path names must be a subclass of what is
                expected at that place (see `docs/security.md`).
            custom_objects: `{name: class}` that specs may name (also in
                safe mode), like Keras' `custom_objects`.
            **kwargs: Agent arguments.

        Returns:
            The agent.

        Raises:
            UnknownTypeError: unknown agent type.
            ArgumentError: unknown or invalid arguments.
            UnsafeSpecError: an import path refused by safe mode, or one that
                does not name an `Agent` subclass.

        Example:

        ```python
        agent = Agent.create(agent='ppo', environment='CartPole-v1', batch_size=10)
        ```
        """
        with registry.safe_mode_scope(safe_mode), registry.custom_object_scope(custom_objects):
            return cls._create(agent, environment, **kwargs)

    @classmethod
    def _create(cls, agent: Any, environment: Any, **kwargs: Any) -> Agent:
        if isinstance(agent, Agent):
            for key, value in kwargs.items():
                if key == "parallel_interactions":
                    if agent.parallel_interactions < value:
                        raise ArgumentError.invalid(
                            "parallel_interactions", f"<= {agent.parallel_interactions}", value
                        )
                    continue
                if key in ("states", "actions"):
                    own = agent.states_spec if key == "states" else agent.actions_spec
                    if Specs(value, key) != own:
                        raise ArgumentError.invalid(
                            key, f"the agent's own spec {own.get_config()!r}", value
                        )
                    continue
                if key == "max_episode_timesteps":
                    own = agent.max_episode_timesteps
                elif key in agent.spec:
                    own = agent.spec[key]
                elif value is None:
                    continue
                else:
                    raise ArgumentError.invalid(
                        key, f"no such argument for the existing '{agent.agent_type}' agent",
                        value,
                    )
                if _jsonable(own) != _jsonable(value):
                    raise ArgumentError.invalid(key, f"the agent's own value {own!r}", value)
            return agent
        if isinstance(agent, type) and issubclass(agent, Agent):
            kwargs = cls._environment_arguments(environment, kwargs, agent.agent_type)
            try:
                return agent(**kwargs)
            except TypeError as exc:
                raise ArgumentError(
                    f"Invalid arguments for agent '{agent.agent_type}': {exc}."
                ) from None
        if isinstance(agent, Mapping):
            spec = dict(agent)
            spec.update(kwargs)
            type_ = spec.pop("agent", None) or spec.pop("type", None) or "tensorforce"
            return cls._create(type_, environment, **spec)
        if isinstance(agent, str):
            if registry.is_json_path(agent):
                with registry.reading_file():
                    return cls._create(registry.load_json(agent, "agent"), environment, **kwargs)
            key = agent.lower()
            if key in AGENTS:
                return cls._create(_agent_class(key), environment, **kwargs)
            if key in GENERIC_AGENTS:
                return cls._create_generic(environment, **kwargs)
            obj = registry.import_object(agent, Agent, "agent")
            if obj is not None:
                return cls._create(obj, environment, **kwargs)
            raise UnknownTypeError.invalid(
                "agent", f"one of {sorted([*AGENTS, *GENERIC_AGENTS])}, a JSON file, or an "
                "Agent class", agent
            )
        if callable(agent):
            # A plain policy `fn(states) -> actions` (Tensorforce's recorded
            # function): see `kerasrl.agents.simple.FunctionAgent`.
            return cls._create(_agent_class("function"), environment, function=agent, **kwargs)
        raise ArgumentError.invalid("agent", "an agent spec (str, dict, class or instance)", agent)

    @staticmethod
    def _environment_arguments(environment: Any, kwargs: dict, agent_type: str) -> dict:
        """`kwargs` with `states`, `actions` and `max_episode_timesteps` taken from
        `environment` unless given; raises if states or actions are still missing."""
        kwargs = dict(kwargs)
        if environment is not None:
            from kerasrl.environments.environment import Environment

            created = not isinstance(environment, Environment)
            env = Environment.create(environment) if created else environment
            try:
                kwargs.setdefault("states", env.states())
                kwargs.setdefault("actions", env.actions())
                if "max_episode_timesteps" not in kwargs:
                    value = env.max_episode_timesteps()
                    if value is not None:
                        kwargs["max_episode_timesteps"] = value
            finally:
                if created:
                    env.close()
        for key in ("states", "actions"):
            if key not in kwargs:
                raise ArgumentError(
                    f"Missing argument '{key}' of agent '{agent_type}': give it, "
                    "or pass environment=... to take it from the environment."
                )
        return kwargs

    @classmethod
    def _create_generic(cls, environment: Any, **kwargs: Any) -> Agent:
        """The generic agent: its parts are checked and built on the agent that
        implements their composition (`kerasrl.agents.generic.lower`); its
        `spec` is the normalized generic spec, so it saves and loads as one."""
        from kerasrl.agents import generic

        kwargs = cls._environment_arguments(environment, kwargs, "tensorforce")
        key, arguments, spec = generic.lower(**kwargs)
        agent = cls._create(_agent_class(key), None, **arguments)
        spec.update(states=agent.states_spec.get_config(),
                    actions=agent.actions_spec.get_config())
        agent.spec = spec
        return agent

    def get_config(self) -> dict:
        """The agent spec as a JSON-compatible dict (`Agent.create(**config)` recreates it)."""
        return _jsonable(self.spec)

    def get_specification(self) -> dict:
        """Tensorforce name of `get_config()`."""
        return self.get_config()

    @property
    def model(self) -> Agent:
        """Tensorforce's `agent.model`: here the agent itself (it is its own model).

        Tensorforce code that calls `agent.model.get_architecture()` works;
        Tensorforce's model internals (`agent.model.policy.network...`) do not
        exist in kerasrl.
        """
        return self

    def get_architecture(self) -> str:
        """A text listing of the agent's networks: each model's layers, shapes and parameters.

        Returns:
            One Keras `summary()` per network (policy, baseline, critics,
            targets), or a line saying the agent has none.

        Example:

        >>> agent = Agent.create(agent='ppo', environment='CartPole-v1', batch_size=1)
        >>> 'policy' in agent.get_architecture()
        True
        """
        models = self._models()
        if not models:
            return f"Agent '{self.agent_type}' has no networks."
        parts = []
        for role, model in models.items():
            lines: list[str] = []
            model.summary(print_fn=lambda line, *args, lines=lines, **kwargs: lines.append(line))
            parts.append(f"{role}:\n" + "\n".join(lines))
        return "\n\n".join(parts)

    def current_learning_rate(self) -> float | None:
        """The main optimizer's learning rate at the current counters (schedules applied).

        Returns:
            A float, or None for agents without an optimizer.
        """
        spec = getattr(self, "optimizer_spec", None)
        if spec is None:
            return None
        counters = {"timesteps": self.timesteps, "episodes": self.episodes,
                    "updates": self.updates}
        return float(spec.learning_rate.value(counters))

    def summary(self, print_fn: Callable[[str], Any] | None = None) -> None:
        """Prints the agent as Keras prints a model: spaces, hyper-parameters, networks.

        Args:
            print_fn: Called with each block of text (default `print`).

        Example:

        >>> agent = Agent.create(agent='ppo', environment='CartPole-v1', batch_size=4)
        >>> lines = []
        >>> agent.summary(print_fn=lines.append)
        >>> lines[0]
        "Agent 'ppo'"
        >>> 'Trainable parameters' in lines[-1]
        True
        """
        import keras

        from kerasrl import backend as kbackend

        print_fn = print_fn or print
        print_fn(f"Agent '{self.agent_type}'")
        spec = self.get_config()
        print_fn(f"Backend: {kbackend.name()} (Keras {keras.__version__})")
        for kind, specs in (("States", self.states_spec), ("Actions", self.actions_spec)):
            rows = [f"  {name}: {spec.get_config()}" for name, spec in specs.items()]
            print_fn(f"{kind}:\n" + "\n".join(rows))
        scalar = {key: value for key, value in spec.items()
                  if key not in ("agent", "states", "actions") and value is not None
                  and not isinstance(value, (dict, list))}
        nested = sorted(key for key, value in spec.items()
                        if key not in ("states", "actions") and isinstance(value, (dict, list)))
        print_fn("Hyper-parameters:\n" + "\n".join(
            [f"  {key} = {value!r}" for key, value in sorted(scalar.items())]
            + [f"  {key} = {spec[key]!r}" for key in nested]))
        print_fn(self.get_architecture())
        models = self._models()
        weights = {id(w): w for model in models.values() for w in model.weights}
        trainable = {id(w) for model in models.values() for w in model.trainable_weights}
        counts = [int(np.prod(w.shape)) for w in weights.values()]
        total = sum(counts)
        trained = sum(int(np.prod(w.shape)) for key, w in weights.items() if key in trainable)
        print_fn(f"Total parameters: {total:,}  Trainable parameters: {trained:,}")

    def predict(self, observations: Any, deterministic: bool = True, action_masks: Any = None,
                internals: Any = None) -> Any:
        """Actions for a batch of observations, nothing recorded (Keras' and SB3's `predict`).

        One compiled act for the whole batch, as `act(..., independent=True)`.

        Args:
            observations: A batch of states (an array with a leading batch
                axis, or a dict of such arrays for named states); an unbatched
                state gives an unbatched action, as `act` does.
            deterministic: The mode (argmax/mean) if True, else a sample.
            action_masks: Allowed values of int actions: a bool array
                `(batch, *shape, num_values)` for a single action, or
                `{action_name: array}`.
            internals: Recurrent policies: the internal state (see `act`);
                then `(actions, internals)` is returned.

        Returns:
            The actions (numpy arrays, a dict for named actions).

        Raises:
            InputError: malformed observations or masks.

        Example:

        >>> import numpy as np
        >>> agent = Agent.create(agent='ppo', environment='CartPole-v1', batch_size=4)
        >>> agent.predict(np.zeros((3, 4), np.float32)).shape
        (3,)
        >>> agent.predict(np.zeros((2, 4)), action_masks=np.array([[True, False]] * 2)).tolist()
        [0, 0]
        """
        states = dict(observations) if isinstance(observations, Mapping) else {
            self.states_spec.singleton_name: observations} if self.states_spec.singleton else (
            observations)
        if action_masks is not None:
            if not isinstance(action_masks, Mapping):
                if not self.actions_spec.singleton:
                    raise InputError.invalid(
                        "action_masks", f"a dict {{action: mask}} for the actions "
                        f"{list(self.actions_spec)}", action_masks, "predict")
                action_masks = {self.actions_spec.singleton_name: action_masks}
            if not isinstance(states, Mapping):
                raise InputError.invalid("observations", "a dict of named states when "
                                         "action_masks are given", observations, "predict")
            for name, mask in action_masks.items():
                states[f"{name}_mask"] = mask
        return self.act(states, internals=internals, independent=True,
                        deterministic=deterministic)

    @staticmethod
    def get_available_summaries() -> list[str]:
        """The labels that `summarizer=dict(..., labels=[...])` accepts."""
        from kerasrl.summaries import LABELS

        return list(LABELS)

    def tracked_tensors(self) -> dict[str, float]:
        """The latest value of each quantity tracked by the `tracking` argument.

        Returns:
            `{tag: value}` (TensorBoard summary tags, see `kerasrl.tracking`);
            `{}` without `tracking`.

        Example:

        >>> agent = Agent.create(agent='ppo', environment='CartPole-v1', batch_size=1,
        ...                      tracking=['loss', 'reward'])
        >>> agent.tracked_tensors()
        {}
        """
        tracked: dict[str, float] = {}
        for plugin in self._plugins:
            if callable(getattr(plugin, "tracked_values", None)):
                tracked.update(plugin.tracked_values())
        return tracked

    def _store_spec(self, **arguments: Any) -> None:
        spec = {"agent": self.agent_type,
                "states": self.states_spec.get_config(),
                "actions": self.actions_spec.get_config()}
        if self.max_episode_timesteps is not None:
            spec["max_episode_timesteps"] = self.max_episode_timesteps
        if self.parallel_interactions != 1:
            spec["parallel_interactions"] = self.parallel_interactions
        config = {k: v for k, v in self.config.items() if v is not None and CONFIG_KEYS[k] != v}
        if config:
            spec["config"] = config
        spec.update(arguments)
        spec.update(self._plugin_specs)
        self.spec = spec
        if not self._plugins and self._plugin_specs:
            self._attach_plugins()

    # ------------------------------------------------------------------ plugins
    def _attach_plugins(self) -> None:
        """Creates the saver/summarizer/recorder plugins (once the agent is built)."""
        for key, value in self._plugin_specs.items():
            factory = PLUGINS.get(key)
            if isinstance(factory, str):
                factory = registry.import_internal(factory)
            if factory is None:
                raise ArgumentError(
                    f"Argument '{key}' is not available in this version of kerasrl yet; "
                    f"received {value!r}."
                )
            self._plugins.append(factory(self, value))

    def _checked_metrics(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """Host values of an update's metrics; handles non-finite losses and gradients.

        The compiled gradient step never applies a step whose loss or gradient
        norm is not finite (see `kerasrl.backend`), so those steps left the
        weights and optimizer state as they were; their loss and norm metrics
        are not finite. With `config['nonfinite'] == 'raise'` (default) this
        raises `NonFiniteError` naming the terms and the update number; with
        `'skip'` it counts the update in `nonfinite_updates` (also reported
        as the metric `nonfinite_updates`).
        """
        values = {key: float(value) for key, value in metrics.items()}
        bad = sorted(key for key, value in values.items() if not np.isfinite(value))
        if not bad:
            if self.nonfinite_updates:
                values["nonfinite_updates"] = float(self.nonfinite_updates)
            return values
        if self.config["nonfinite"] == "skip":
            self.nonfinite_updates += 1
            values["nonfinite_updates"] = float(self.nonfinite_updates)
            return values
        terms = sorted({_loss_term(key) for key in bad})
        raise NonFiniteError(
            f"Update {self.updates + 1} of agent '{self.agent_type}' had a non-finite "
            f"{' and '.join(terms)} (metrics {', '.join(f'{k}={values[k]}' for k in bad)}). "
            "Its non-finite gradient steps were not applied: they left the weights and the "
            "optimizer state as they were. Usual causes: rewards too large (scale or clip them, "
            "e.g. reward_processing), a learning rate too high, extreme inputs. Pass "
            "config=dict(nonfinite='skip') to skip such steps and count them instead "
            "(agent.nonfinite_updates, TensorBoard tag metrics/nonfinite_updates)."
        )

    def _checked_learning_rate(self, name: str, value: float) -> float:
        """A learning rate from its schedule, refused when it is not finite."""
        if not np.isfinite(value):
            raise NonFiniteError(
                f"The learning rate of '{name}' of agent '{self.agent_type}' is {value} at "
                f"timestep {self.timesteps} (update {self.updates + 1}); its schedule must stay "
                "finite. The update was not run.")
        return value

    def _notify(self, hook: str, *args: Any) -> None:
        """Calls `plugin.<hook>(agent, *args)` on every plugin that has the hook.

        Hooks: `on_act(agent, states, masks, actions, slots)` (training acts;
        flat dicts of batched arrays), `on_observe(agent, reward, terminal,
        slots)`, `on_episode_end(agent, slot, episode_return, episode_length)`,
        `on_update(agent, metrics)`, `close(agent)`.
        """
        for plugin in self._plugins:
            method = getattr(plugin, hook, None)
            if method is not None:
                method(self, *args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({json.dumps(self.get_config())[:300]})"

    # ------------------------------------------------------------------ interaction
    def _parallel_indices(self, parallel: Any, size: int, batched: bool, argument: str) -> np.ndarray:
        if parallel is None or (batched and np.ndim(parallel) == 0 and parallel == 0 and size > 1):
            if batched and size == self.parallel_interactions:
                return self._all_slots
            if not batched:
                return np.zeros(1, dtype=np.int64)
            raise InputError.invalid(
                argument, f"a list of {size} slot indices for a batch of {size}", parallel
            )
        indices = np.atleast_1d(np.asarray(parallel))
        if indices.dtype.kind not in "iu" or indices.ndim != 1 or len(indices) != size:
            raise InputError.invalid(argument, f"{size} int slot indices", parallel)
        if size == self.parallel_interactions and (indices == self._all_slots).all():
            return self._all_slots  # a Runner's batch of every slot: no reductions
        if size == 1:  # the common one-environment case
            if not 0 <= int(indices[0]) < self.parallel_interactions:
                raise InputError.invalid(
                    argument, f"slot indices in [0, {self.parallel_interactions})", parallel)
            return indices.astype(np.int64, copy=False)
        if indices.min() < 0 or indices.max() >= self.parallel_interactions:
            raise InputError.invalid(
                argument, f"slot indices in [0, {self.parallel_interactions})", parallel
            )
        if len(np.unique(indices)) != len(indices):
            raise InputError.invalid(argument, "distinct slot indices", parallel)
        return indices.astype(np.int64, copy=False)

    def act(
        self,
        states: Any,
        internals: Any = None,
        parallel: Any = 0,
        independent: bool = False,
        deterministic: bool = True,
    ) -> Any:
        """Returns actions for the given states.

        Args:
            states: State values (see `kerasrl.agents.io` for the accepted forms),
                optionally with `'<action>_mask'` entries.
            internals: With `independent=True`, the policy's internal state
                (from `initial_internals()`, then as returned): `{}` for the
                non-recurrent policies of this version (a list of `{}` for a
                list of states); the call then returns `(actions, internals)`.
            parallel: Slot index (or one index per batch item) for training.
            independent: Act without recording anything (evaluation). Only then
                does `deterministic` matter.
            deterministic: With `independent=True`, pick the mode (argmax/mean)
                without exploration; else sample (with final exploration).

        Returns:
            Actions in the form matching `states` (Python scalar for an
            unbatched scalar action, numpy arrays otherwise, dicts for named
            actions); `(actions, internals)` when `internals` was given.

        Raises:
            InputError: malformed states or masks.
            ArgumentError: `internals` in training mode, or not empty.
            CallOrderError: `act` twice on a slot without `observe`.
        """
        shapes = self.internal_shapes()
        if internals is not None:
            if not independent:
                raise ArgumentError.invalid(
                    "internals", "None unless independent=True (training acts keep the "
                    "internal state themselves)", internals)
            if not shapes:
                _check_no_internals(internals, "internals")
        elif independent and shapes:
            raise ArgumentError.invalid(
                "internals", "the recurrent policy's internal state with independent=True "
                "(start from agent.initial_internals(), then pass back what act returns)", None)
        parsed = self._parser.parse(states)
        if not self.config["enable_int_action_masking"]:
            parsed.masks = {}
        if independent:
            if not (np.ndim(parallel) == 0 and parallel in (0, None)):
                raise ArgumentError.invalid("parallel", "0 with independent=True", parallel)
            if not shapes:
                actions = self._act_batch(parsed.states, parsed.masks, None, True,
                                          bool(deterministic))
                actions = format_actions(actions, self.actions_spec, parsed)
                return actions if internals is None else (actions, internals)
            values = parse_internals(internals, shapes, parsed.size, "internals")
            actions, values = self._act_recurrent(parsed.states, parsed.masks,
                                                  bool(deterministic), values)
            actions = format_actions(actions, self.actions_spec, parsed)
            if isinstance(internals, (list, tuple)):
                return actions, [{k: v[i] for k, v in values.items()} for i in range(parsed.size)]
            if not parsed.batched:
                values = {k: v[0] for k, v in values.items()}
            return actions, values
        slots = self._parallel_indices(parallel, parsed.size, parsed.batched, "parallel")
        waiting = self._awaiting_observe[slots]
        if waiting.any():
            raise CallOrderError(
                f"Calling agent.act twice on parallel slot {int(slots[waiting][0])} without "
                "agent.observe in between; for evaluation, pass independent=True."
            )
        if self.max_episode_timesteps is not None:
            # Checked before acting, so that a failed call leaves the agent unchanged.
            too_long = self._episode_timesteps[slots] >= self.max_episode_timesteps
            if too_long.any():
                raise InputError(
                    f"Episode longer than max_episode_timesteps={self.max_episode_timesteps} "
                    f"on parallel slot {int(slots[too_long][0])}: observe a terminal "
                    "(1, or 2 for a time limit) at the latest on that step."
                )
        actions = self._act_batch(parsed.states, parsed.masks, slots, False, False)
        if self._plugins:
            self._notify("on_act", parsed.states, parsed.masks, actions, slots)
        self._awaiting_observe[slots] = True
        self.timesteps += parsed.size
        self._episode_timesteps[slots] += 1
        return format_actions(actions, self.actions_spec, parsed)

    def observe(self, reward: Any = 0.0, terminal: Any = False, parallel: Any = None) -> int:
        """Records the outcome of the last action of each given slot.

        Args:
            reward: A float, or one per slot.
            terminal: False/0 (continue), True/1 (terminal), 2 (aborted, e.g.
                time limit: bootstrapped from the value estimate). One per slot
                when batched.
            parallel: Slot index or indices (default: 0, or all slots for a
                batch of `parallel_interactions` values).

        Returns:
            The number of updates performed.

        Raises:
            InputError: invalid reward or terminal.
            CallOrderError: observe without a preceding act.
        """
        reward_array = np.atleast_1d(np.asarray(reward))
        terminal_array = np.atleast_1d(np.asarray(terminal))
        batched = np.ndim(reward) > 0 or np.ndim(terminal) > 0
        size = max(len(reward_array), len(terminal_array))
        if parallel is None and not batched:
            parallel = 0
        slots = self._parallel_indices(parallel, size, batched, "parallel")
        if len(reward_array) == 1 and size > 1:
            reward_array = np.repeat(reward_array, size)
        if len(terminal_array) == 1 and size > 1:
            terminal_array = np.repeat(terminal_array, size)
        if reward_array.shape != (size,) or reward_array.dtype.kind not in "biuf":
            raise InputError.invalid("reward", f"{size} number(s)", reward)
        reward_array = reward_array.astype(np.float32)
        if not np.all(np.isfinite(reward_array)):
            raise _non_finite_input("reward", reward_array, "parallel slot")
        if terminal_array.shape != (size,) or terminal_array.dtype.kind not in "biu":
            raise InputError.invalid("terminal", f"{size} bool/int value(s) in {{0, 1, 2}}", terminal)
        terminal_array = terminal_array.astype(np.int64)
        if terminal_array.min() < 0 or terminal_array.max() > 2:
            raise InputError.invalid("terminal", "values in {0, 1, 2}", terminal)
        missing = ~self._awaiting_observe[slots]
        if missing.any():
            raise CallOrderError(
                f"Calling agent.observe on parallel slot {int(slots[missing][0])} must be "
                "preceded by agent.act on that slot."
            )
        self._awaiting_observe[slots] = False
        done = terminal_array > 0
        self._episode_return[slots] += reward_array
        finished = slots[done]
        lengths = self._episode_timesteps[finished].copy()
        returns = self._episode_return[finished].copy()
        self._episode_timesteps[finished] = 0
        self._episode_return[finished] = 0.0
        self.episodes += int(done.sum())
        updates = int(self._observe_batch(reward_array, terminal_array, slots))
        if self._plugins:
            self._notify("on_observe", reward_array, terminal_array, slots)
            for slot, episode_return, length in zip(finished, returns, lengths):
                self._notify("on_episode_end", int(slot), float(episode_return), int(length))
        return updates

    def internal_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shapes of the policy's internal states by name (`{}`: not recurrent)."""
        return {}

    def initial_internals(self) -> dict:
        """The policy's initial internal state, for `act(..., internals=..., independent=True)`.

        Returns:
            `{layer name: zeros(shape)}`, one entry per recurrent layer of the
            policy (see `docs/recurrent.md`): `(2, size)` for an LSTM, `(size,)`
            for a GRU. `{}` for a policy without recurrent layers.

        Example:

        >>> agent = Agent.create(agent='random', states=dict(type='float', shape=(2,)),
        ...                      actions=dict(type='int', num_values=3))
        >>> internals = agent.initial_internals()
        >>> actions, internals = agent.act([0.0, 1.0], internals=internals, independent=True)
        >>> internals
        {}
        """
        return {name: np.zeros(shape, np.float32) for name, shape in self.internal_shapes().items()}

    def reset(self) -> None:
        """Forgets unfinished episodes in every slot (e.g. after an interrupted run)."""
        self._awaiting_observe[:] = False
        self._episode_timesteps[:] = 0
        self._episode_return[:] = 0.0
        self._reset_buffers()

    def close(self) -> None:
        """Closes the plugins (the saver writes a final checkpoint, summaries are flushed)."""
        self._notify("close")

    # ------------------------------------------------------------------ subclass API
    def _act_recurrent(self, states: dict, masks: dict, deterministic: bool,
                       internals: dict) -> tuple[dict, dict]:
        """Independent act of a recurrent policy: `(actions, next internals)`."""
        raise NotImplementedError

    def _act_batch(
        self, states: dict, masks: dict, slots: np.ndarray | None, independent: bool,
        deterministic: bool,
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _observe_batch(self, reward: np.ndarray, terminal: np.ndarray, slots: np.ndarray) -> int:
        return 0

    # Helpers of the agents with networks; they set `_mask_names` (the int
    # actions with masks), `_mask_cache` (a dict), `exploration` (a parameter
    # per action) and define `_counters()`.
    def _full_masks(self, masks: dict, size: int) -> dict:
        """`masks` completed with all-true masks (cached per batch size) for missing actions."""
        if len(masks) == len(self._mask_names):
            return masks
        cache = self._mask_cache.get(size)
        if cache is None:
            cache = {
                name: np.ones((size,) + self.actions_spec[name].mask_shape(), np.bool_)
                for name in self._mask_names
            }
            self._mask_cache[size] = cache
        return {**cache, **masks}

    def _exploration_values(self, independent: bool) -> dict:
        """The exploration value per action: now, or the final one for independent acting.

        With variable noise, its value is under the key `VARIABLE_NOISE` too.
        """
        schedules = self.exploration
        if self.variable_noise is not None:
            schedules = {**schedules, VARIABLE_NOISE: self.variable_noise}
        if independent:
            return {k: np.float32(p.final_value()) for k, p in schedules.items()}
        counters = self._counters()
        return {k: np.float32(p.value(counters)) for k, p in schedules.items()}

    def _parse_variable_noise(self, spec: Any) -> None:
        """Sets `variable_noise`: a parameter (stddev >= 0), or None when it is constantly 0."""
        parameter = parameters.create(0.0 if spec is None else spec, "variable_noise", low=0.0,
                                      where=f"agent '{self.agent_type}'")
        self.variable_noise = (
            None if parameter.is_constant() and parameter.value() == 0.0 else parameter)

    def _call_policy(self, model: Any, states: Any, exploration: dict,
                     deterministic: bool) -> Any:
        """`model(states)` inside an act program, with Tensorforce's variable noise.

        When sampling (not `deterministic`) with `variable_noise` σ, every
        trainable weight `w` of `model` is read as `w + σ·ε`, `ε ~ N(0, I)`,
        drawn from the act seed generator `_act_seed` once per act call
        (shared by the batch) and never assigned: the weights themselves stay
        as they are (Tensorforce adds the noise before acting and subtracts it
        afterwards).
        """
        from kerasrl import backend as kbackend

        if deterministic or self.variable_noise is None:
            return kbackend.call_model(model, states)
        import keras

        stddev = exploration[VARIABLE_NOISE]
        mapping = []
        for variable in model.variables:
            value = variable.value
            if variable.trainable:
                noise = keras.random.normal(tuple(variable.shape), dtype=variable.dtype,
                                            seed=self._act_seed)
                value = value + noise * keras.ops.cast(stddev, variable.dtype)
            mapping.append((variable, value))
        with keras.StatelessScope(state_mapping=mapping, initialize_variables=False):
            return kbackend.call_model(model, states)

    def _reset_buffers(self) -> None:
        pass

    def _finish_run(self, states: Any, slots: np.ndarray) -> int:
        """Called by the `Runner` when a training run ends; returns updates performed.

        The episodes of `slots` still running end at their last observed
        timestep as if it had been observed with terminal 2 (aborted,
        bootstrapped), as Tensorforce's Runner ends them with terminal 2: the
        agent then holds no unfinished episode, so `experience`, `update` and
        `save` work right after a run, and a later run starts clean.

        Args:
            states: The environments' current states, batched over `slots`
                (what the next `act` would have received).
            slots: The parallel slots of the run.

        The cut episodes are not reported to the plugins (summaries, traces),
        as the Runner does not count them in its statistics.
        """
        updates = self._end_run(states, slots)
        running = slots[(self._episode_timesteps[slots] > 0) & ~self._awaiting_observe[slots]]
        if len(running) == 0:
            return updates
        self._abort_episodes(running)
        self._episode_timesteps[running] = 0
        self._episode_return[running] = 0.0
        self.episodes += len(running)
        return updates

    def _end_run(self, states: Any, slots: np.ndarray) -> int:
        """Subclass hook of `_finish_run`: runs a deferred update; returns updates performed."""
        return 0

    def _abort_episodes(self, slots: np.ndarray) -> None:
        """Subclass hook: ends the episodes of `slots` at their last observed
        timestep as an observe with terminal 2 would have."""

    def update(self) -> int:
        """Performs one update now, whatever the update frequency. Returns 1 if done."""
        return 0

    def experience(
        self, states: Any, actions: Any, terminal: Any, reward: Any, internals: Any = None
    ) -> None:
        """Feeds recorded experience (full episodes) into memory; no update.

        Args:
            states: Per-timestep states: a list of per-timestep values/dicts
                (as collected from `act(independent=True)`), or a batched
                array / dict of arrays with time as the first axis. Masks may
                be included as `'<action>_mask'` entries.
            actions: Actions in the same form.
            terminal: Terminal codes per timestep (0, 1, 2); the last must be
                1 or 2 (full episodes only).
            reward: Rewards per timestep.
            internals: Per-timestep internal states as returned by
                `act(independent=True)` (a list of dicts, or a dict of arrays
                with time first; `{}` each for a policy without recurrent
                layers), or None: a recurrent agent then recomputes them by
                running its policy over each episode from the initial state.

        Raises:
            InputError: malformed values, or an unfinished last episode.
            CallOrderError: called while an act/observe episode is running.
        """
        from kerasrl.agents.io import parse_actions

        if internals is not None and not self.internal_shapes():
            _check_no_internals(internals, "internals")
        if self._awaiting_observe.any() or self._episode_timesteps.any():
            raise CallOrderError(
                "agent.experience() is not allowed in the middle of an act/observe episode."
            )
        parsed = self._parser.parse(states, "states")
        if not parsed.batched:
            raise InputError.invalid("states", "a sequence of timesteps (time axis first)", states)
        size = parsed.size
        flat_actions = parse_actions(actions, self.actions_spec, size, "actions")
        terminal = np.asarray(terminal)
        reward = np.asarray(reward, dtype=np.float64)
        if terminal.shape != (size,) or terminal.dtype.kind not in "biu":
            raise InputError.invalid("terminal", f"{size} int values in {{0, 1, 2}}", terminal)
        terminal = terminal.astype(np.int64)
        if terminal.min() < 0 or terminal.max() > 2:
            raise InputError.invalid("terminal", "values in {0, 1, 2}", terminal)
        if terminal[-1] == 0:
            raise InputError.invalid(
                "terminal", "full episodes (the last terminal must be 1 or 2)", terminal
            )
        if reward.shape != (size,):
            raise InputError.invalid("reward", f"{size} finite numbers", reward)
        if not np.all(np.isfinite(reward.astype(np.float32))):
            raise _non_finite_input("reward", reward.astype(np.float32), "timestep")
        if self.internal_shapes():
            values = None if internals is None else parse_internals(
                internals, self.internal_shapes(), size, "internals")
            self._experience(parsed.states, parsed.masks, flat_actions, terminal,
                             reward.astype(np.float32), values)
            return
        self._experience(parsed.states, parsed.masks, flat_actions, terminal,
                         reward.astype(np.float32))

    def pretrain(
        self, directory: str, num_iterations: int, num_traces: int = 1, num_updates: int = 1,
        extension: str = ".npz", objective: str = "experience", **kwargs: Any,
    ) -> dict:
        """Pretrains on recorded traces (see `kerasrl.execution.pretrain`).

        Args:
            directory: Folder of `trace-*.npz` files (Tensorforce's format).
            num_iterations: Number of iterations.
            num_traces: Trace files loaded per iteration (None: all).
            num_updates: Updates (or cloning gradient steps) per iteration.
            extension: File extension of the traces.
            objective: `'experience'` (Tensorforce: `experience()` then
                `update()`) or `'behavior_cloning'` (maximum likelihood of the
                recorded actions).
            **kwargs: Further options of `kerasrl.execution.pretrain.pretrain`
                (e.g. `batch_size` for behaviour cloning).

        Returns:
            A dict of metrics.
        """
        return _driver("pretrain")(
            self, directory, num_iterations, num_traces=num_traces, num_updates=num_updates,
            extension=extension, objective=objective, **kwargs)

    def _experience(self, states, masks, actions, terminal, reward) -> None:
        raise ArgumentError(f"Agent '{self.agent_type}' does not learn; experience() is not supported.")

    # ------------------------------------------------------------------ saving
    def save(self, directory: str, filename: str | None = None, format: str = "keras",
             append: str | None = None, overwrite: bool = True) -> str:
        """Saves the agent (see `kerasrl.saving`); returns the checkpoint path.

        Args:
            directory: Target directory (created if needed), or a path ending
                in `.keras` (`agent.save('agent.keras')`, as Keras): the full
                archive is then that one zip file.
            filename: Base name (default `config['name']`, i.e. `'agent'`).
            format: `'keras'` (full checkpoint, resumes training exactly),
                `'checkpoint'` (the same, under Tensorforce's file names
                `<filename>-<N>.index`/`.data-00000-of-00001` and a
                `checkpoint` index; returns the prefix `<filename>-<N>`),
                `'h5'`/`'hdf5'` or `'numpy'` (weights only, plus the spec JSON),
                or `'saved-model'` (TensorFlow backend: Tensorforce's act-only
                SavedModel for `tf.saved_model.load`, not loadable as an agent;
                returns its directory).
            append: `'timesteps'`, `'episodes'` or `'updates'`: add `-<counter>`.
            overwrite: False refuses to replace an existing file.
        """
        from kerasrl import saving

        return saving.save(self, directory, filename=filename, format=format, append=append,
                           overwrite=overwrite)

    def save_weights(self, filepath: str, overwrite: bool = True) -> str:
        """Writes the network weights to one `.weights.h5` file (Keras' `save_weights`)."""
        from kerasrl import saving

        return saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str) -> None:
        """Reads weights written by `save_weights` (shapes and finiteness checked)."""
        from kerasrl import saving

        saving.load_weights(self, filepath)

    def get_weights(self) -> list[np.ndarray]:
        """The network weights as numpy arrays, in `kerasrl.saving.named_weights` order."""
        from kerasrl.saving import weight_arrays

        self._sync_weights()
        return list(weight_arrays(self).values())

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets the network weights from a list like `get_weights()` returns.

        Raises:
            ArgumentError: wrong number of arrays, a wrong shape, or non-finite values.
        """
        from kerasrl.saving import named_weights

        variables = named_weights(self)
        if not isinstance(weights, Sequence) or len(weights) != len(variables):
            raise ArgumentError.invalid("weights", f"a list of {len(variables)} arrays "
                                        "(as get_weights() returns)", weights, "set_weights")
        arrays = []
        for (name, variable), value in zip(variables.items(), weights, strict=True):
            array = np.asarray(value)
            if array.shape != tuple(variable.shape):
                raise ArgumentError.invalid(f"weights['{name}']",
                                            f"an array of shape {tuple(variable.shape)}",
                                            f"shape {array.shape}", "set_weights")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ArgumentError.invalid(f"weights['{name}']", "finite values",
                                            "NaN or inf", "set_weights")
            arrays.append(array)
        for variable, array in zip(variables.values(), arrays, strict=True):
            variable.assign(array.astype(variable.dtype))
        self._weights_loaded()

    @classmethod
    def load(cls, directory: str | None = None, filename: str | None = None,
             format: str | None = None, environment: Any = None, *, safe_mode: bool = True,
             custom_objects: Mapping[str, Any] | None = None, **kwargs: Any) -> Agent:
        """Loads an agent saved with `save` (newest checkpoint by default).

        Also reads Tensorforce 0.6.5 numpy/HDF5 checkpoints (spec JSON beside
        them). Saved saver/summarizer/recorder settings are not re-attached;
        pass them as keyword arguments. With `safe_mode=True` (default) the
        saved spec may not name code by import path unless it is registered
        or in `custom_objects`. See `kerasrl.saving.load`.
        """
        from kerasrl import saving

        return saving.load(directory, filename=filename, format=format,
                           environment=environment, safe_mode=safe_mode,
                           custom_objects=custom_objects, **kwargs)

    def export(self, path: str) -> str:
        """Writes a `.keras` inference model: states (and masks) → deterministic actions.

        The model loads with `keras.saving.load_model(path)` in a process that
        imported `kerasrl` (its custom layers are registered), on any backend.
        """
        from kerasrl.export import export

        return export(self, path)

    # State for checkpoints; agents with networks override these.
    def _models(self) -> dict:
        return {}

    def _state_variables(self) -> dict:
        return {}

    def _memory_arrays(self) -> dict:
        return {}

    def _set_memory_arrays(self, arrays: dict) -> None:
        pass

    def _host_state(self) -> dict:
        return {"timesteps": self.timesteps, "episodes": self.episodes, "updates": self.updates,
                "rng": self._rng.bit_generator.state}

    def _set_host_state(self, state: dict) -> None:
        """Restores the counters and the host RNG from a checkpoint's metadata (checked)."""
        where = "checkpoint metadata"
        if not isinstance(state, Mapping):
            raise ArgumentError.invalid("host_state", "a dict", state, where)
        counters = {key: check_int(state.get(key, 0), f"host_state['{key}']", minimum=0,
                                   where=where) for key in ("timesteps", "episodes", "updates")}
        if "rng" in state:
            current = self._rng.bit_generator.state
            rng = state["rng"]
            if not isinstance(rng, Mapping) or set(rng) != set(current) or \
                    rng.get("bit_generator") != current["bit_generator"]:
                raise ArgumentError.invalid(
                    "host_state['rng']", f"a {current['bit_generator']} state with the keys "
                    f"{sorted(current)}", rng, where)
            try:
                self._rng.bit_generator.state = dict(rng)
            except (TypeError, ValueError, KeyError, OverflowError) as exc:
                raise ArgumentError.invalid(
                    "host_state['rng']", f"a valid {current['bit_generator']} state ({exc})",
                    rng, where) from None
        self.timesteps, self.episodes, self.updates = (
            counters["timesteps"], counters["episodes"], counters["updates"])
        self.reset()

    @staticmethod
    def _check_next_update(state: Mapping, default: int | None) -> int | None:
        """The `next_update` entry of a checkpoint's host state (None: no update scheduled)."""
        if "next_update" not in state:
            return default
        value = state["next_update"]
        return None if value is None else check_int(
            value, "host_state['next_update']", minimum=0, where="checkpoint metadata")

    def _sync_weights(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.sync()

    def _weights_loaded(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.reload()

    # ------------------------------------------------------------------ Keras-style loop
    def fit(
        self,
        environment: Any,
        episodes: int | None = None,
        timesteps: int | None = None,
        num_parallel: int | None = None,
        callbacks: Any = None,
        verbose: Any = "auto",
        max_episode_timesteps: int | None = None,
        seed: int | None = None,
    ):
        """Trains on an environment, Keras style.

        Args:
            environment: Environment spec or instance (`'CartPole-v1'`, ...).
            episodes: Stop after this many episodes (over all environments).
            timesteps: Stop after this many timesteps (over all environments).
            num_parallel: Number of environment copies stepped as one batch
                (default: the agent's `parallel_interactions`).
            callbacks: `kerasrl.callbacks.Callback` instances.
            verbose: `'auto'`/1 shows a progress bar, 0 is silent.
            max_episode_timesteps: Passed to the environments.
            seed: Seed of the environments (environment i gets seed + i).

        Returns:
            A `kerasrl.callbacks.History` with per-episode `episode_return`
            and `episode_length` lists.
        """
        episodes = check_int(episodes, "episodes", minimum=1, where="fit", allow_none=True)
        timesteps = check_int(timesteps, "timesteps", minimum=1, where="fit", allow_none=True)
        if episodes is None and timesteps is None:
            raise ArgumentError("Agent.fit needs a limit: give episodes=... or timesteps=... "
                                "(positive ints).")
        num_parallel = check_int(num_parallel, "num_parallel", minimum=1, where="fit",
                                 allow_none=True)
        return _driver("fit")(
            self, environment, episodes=episodes, timesteps=timesteps,
            num_parallel=num_parallel or self.parallel_interactions, callbacks=callbacks,
            verbose=verbose, max_episode_timesteps=max_episode_timesteps, seed=seed)

    def evaluate(
        self,
        environment: Any,
        episodes: int = 10,
        deterministic: bool = True,
        num_parallel: int | None = None,
        max_episode_timesteps: int | None = None,
        seed: int | None = None,
        verbose: Any = 0,
    ) -> dict:
        """Runs evaluation episodes with independent acting; nothing is learned.

        Args:
            environment: Environment spec or instance.
            episodes: Number of episodes.
            deterministic: Act with the mode (no sampling, no exploration).
            num_parallel: Environment copies stepped as one batch (default:
                `min(episodes, 8)`).
            max_episode_timesteps: Passed to the environments.
            seed: Seed of the environments.
            verbose: Show a progress bar when truthy.

        Returns:
            Dict with `mean_return`, `std_return`, `min_return`, `max_return`,
            `mean_length`, `episodes` and the list `returns`.
        """
        episodes = check_int(episodes, "episodes", minimum=1, where="evaluate")
        num_parallel = check_int(num_parallel, "num_parallel", minimum=1, where="evaluate",
                                 allow_none=True)
        return _driver("evaluate")(
            self, environment, episodes=episodes, deterministic=deterministic,
            num_parallel=num_parallel or min(episodes, 8),
            max_episode_timesteps=max_episode_timesteps, seed=seed, verbose=verbose)
