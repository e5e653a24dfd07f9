"""Off-policy agents: a replay memory, n-step returns, target networks.

The flow of one timestep (SB3's `OffPolicyAlgorithm`, Tensorforce's
arguments):

1. `act` runs the compiled act function (one call for the whole batch of
   parallel environments; exploration inside). The states, masks and
   actions go into the slot's `NStepWindow`; the step `horizon` steps
   earlier becomes a complete transition, which is written to the
   `ReplayMemory` (a preallocated NumPy ring buffer).
2. `observe` stores the rewards; an episode end flushes the slot's window
   (true terminals without bootstrap, aborted episodes bootstrapped from
   their last state). Then, when the update schedule fires, updates run.
3. An update samples `multi_step` minibatches of `batch_size` transitions
   with the agent's NumPy generator (a `recent` memory instead gives each
   of them the newest `batch_size` transitions), plus any noise the
   algorithm needs, also drawn on the host (so a seeded update is
   identical on every backend), sends them to the device at once, and runs all the gradient
   steps, with the target-network updates, in one compiled call.

Update schedule (Tensorforce's `update=dict(unit='timesteps', batch_size,
frequency, start)`): updates are due once `start` timesteps were observed
(default: `batch_size`), then every `frequency` timesteps; due updates are
skipped while the memory is still empty. With several parallel
environments, timesteps advance by the number of environments per step, and
as many updates run as `frequency` boundaries were passed.

Target networks: built from the same network spec with a fresh
`NetworkBuilder` (so they hold copies, never shared layers), initialized to
the online weights, and updated inside the compiled update, on variable
values: `target ← w·online + (1-w)·target` (`w = 1` copies) on the gradient
steps whose 1-based index is a multiple of the sync frequency.

Subclasses take their constructor's arguments with `_constructor_arguments`,
check the Tensorforce arguments they do not support with `_check_unsupported`,
pass the replay arguments on with `_base_arguments`, build their models and
optimizers, then call `_finish_init()`, and implement `_act_program` and
`_train_step`.

From `kerasrl.agents.on_policy`: `parse_update` and the reward `clipping`
processing. The full-mask cache and the exploration values live in `Agent`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasrl import backend as kbackend
from kerasrl import parameters
from kerasrl.agents.agent import Agent
from kerasrl.agents.on_policy import clipping, parse_update
from kerasrl.errors import ArgumentError
from kerasrl.networks import functional_model
from kerasrl.optimizers import OptimizerSpec, optimizer_config
from kerasrl.replay import NStepWindow, ReplayMemory
from kerasrl.validation import check_float, check_int, is_number


def l2_penalty(variables) -> Any:
    """Sum of squares of the kernels (variables of rank >= 2) among `variables`."""
    total = 0.0
    for variable in variables:
        if len(variable.shape) >= 2:
            total = total + ops.sum(ops.square(variable))
    return total


def parse_memory(memory: Any, agent: str) -> int:
    """The capacity from `memory` (an int, or `dict(type='replay'|'recent', capacity=N)`)."""
    if memory is None:
        raise ArgumentError(
            f"Missing argument 'memory' of agent '{agent}': expected the replay capacity "
            "(a positive int, e.g. memory=100_000)."
        )
    capacity = memory
    if isinstance(memory, Mapping):
        unknown = set(memory) - {"type", "capacity", "device"}
        if unknown:
            raise ArgumentError.invalid(
                f"memory key(s) {sorted(unknown)}", "keys among type, capacity", memory
            )
        if memory.get("type", "replay") not in ("replay", "recent"):
            raise ArgumentError.invalid(
                "memory['type']", f"'replay' or 'recent' for the off-policy agent '{agent}'",
                memory.get("type"),
            )
        capacity = memory.get("capacity")
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
        raise ArgumentError.invalid(
            "memory", "a positive int replay capacity (or dict(type='replay', capacity=N))",
            memory, where=f"agent '{agent}'",
        )
    return int(capacity)


def network_of_policy(network: Any, policy: Any, policy_type: str) -> Any:
    """Resolves the `policy` alias of `network` (also Tensorforce's `dict(type=policy_type,
    network=...)` form); raises if both are given."""
    if policy is None:
        return network
    if network != "auto":
        raise ArgumentError(
            "Arguments 'network' and 'policy' are aliases; give only one "
            f"(received network={network!r}, policy={policy!r})."
        )
    if isinstance(policy, Mapping) and policy.get("type") == policy_type:
        options = dict(policy)
        options.pop("type")
        network = options.pop("network", "auto")
        if options.pop("single_output", True) is not True:
            raise ArgumentError.invalid(
                "policy['single_output']", "True (multi-output policies are not available yet)",
                False,
            )
        options.pop("state_value_mode", None)  # the agent type decides (dueling or not)
        options.pop("temperature", None)
        if options:
            raise ArgumentError.invalid(
                f"policy key(s) {sorted(options)}", "network, single_output", policy
            )
        return network
    return policy


#: Constructor arguments of the agents that `get_config()` does not list among
#: the agent's own arguments (`Agent._store_spec` adds those it needs).
_NOT_STORED = ("self", "states", "actions", "max_episode_timesteps", "kwargs",
               "parallel_interactions", "config", "__class__")

#: Keyword arguments of `OffPolicyAgent.__init__` that the agents pass on.
_BASE_ARGUMENTS = ("memory", "batch_size", "update_frequency", "start_updating", "update",
                   "multi_step", "discount", "horizon", "predict_terminal_values",
                   "reward_processing", "exploration", "variable_noise", "target_update_weight",
                   "target_sync_frequency", "l2_regularization")


class OffPolicyAgent(Agent):
    """Base class of replay-based agents (see module docstring).

    Args:
        states, actions, max_episode_timesteps, parallel_interactions, config:
            See `Agent`.
        memory: Replay capacity in transitions (int or `dict(type='replay',
            capacity=N)`); `dict(type='recent', capacity=N)` updates on the
            newest `batch_size` transitions instead of uniform samples
            (Tensorforce's recent memory; every gradient step of an update
            sees that batch).
        batch_size: Transitions per minibatch.
        update_frequency: Update every this many timesteps (int), or this
            share of `batch_size` (float in (0, 1]), or `'never'`.
        start_updating: Timesteps before the first update (default
            `batch_size`).
        update: Tensorforce's update dict instead of the three above:
            `dict(unit='timesteps', batch_size, frequency, start)`.
        multi_step: Gradient steps per update, each on a freshly sampled
            minibatch (all in one compiled call).
        discount: γ (parameter).
        horizon: n of the n-step returns.
        predict_terminal_values: Bootstrap true terminals too.
        reward_processing: None or `dict(type='clipping', lower, upper)`.
        exploration: Exploration (parameter, or dict per action name/type).
        target_update_weight: `w` of the target updates (1.0 copies; < 1
            Polyak averaging).
        target_sync_frequency: Target update every this many gradient steps.
        l2_regularization: L2 penalty on the kernels of the trained network
            (parameter; its value goes into `_hyper()`).
    """

    #: Names of the metrics `_train_step` returns (averaged over an update).
    metric_names: tuple[str, ...] = ()

    def __init__(
        self,
        states,
        actions,
        max_episode_timesteps=None,
        *,
        memory: Any,
        batch_size: Any,
        update_frequency: Any,
        start_updating: Any,
        update: Any,
        multi_step: Any,
        discount: Any,
        horizon: Any,
        predict_terminal_values: bool,
        reward_processing: Any,
        exploration: Any,
        variable_noise: Any,
        target_update_weight: Any,
        target_sync_frequency: Any,
        l2_regularization: Any,
        parallel_interactions: int = 1,
        config: Any = None,
        **kwargs: Any,
    ):
        super().__init__(states, actions, max_episode_timesteps, parallel_interactions, config,
                         **kwargs)
        name = self.agent_type
        self._check_actions()
        capacity = parse_memory(memory, name)
        self._recent = isinstance(memory, Mapping) and memory.get("type") == "recent"
        if update is None and batch_size is None:
            raise ArgumentError(
                f"Missing argument 'batch_size' of agent '{name}' (transitions per "
                "minibatch), or give update=dict(unit='timesteps', batch_size=...)."
            )
        if update is not None and start_updating is not None:
            raise ArgumentError(
                f"Arguments 'update' and 'start_updating' of agent '{name}' are exclusive; "
                f"received update={update!r} and start_updating={start_updating!r}."
            )
        spec = parse_update(update, batch_size, update_frequency, "timesteps", name)
        if spec["unit"] != "timesteps":
            raise ArgumentError.invalid(
                "update['unit']", f"'timesteps' for the replay-based agent '{name}'", spec["unit"]
            )
        where = f"agent '{name}'"
        if update is None:
            start_updating = check_int(start_updating, "start_updating", minimum=0, where=where,
                                       allow_none=True)
            spec["start"] = spec["batch_size"] if start_updating is None else start_updating
        elif not (isinstance(update, Mapping) and update.get("start") is not None):
            spec["start"] = spec["batch_size"]
        if spec["batch_size"] > capacity:
            raise ArgumentError.invalid(
                "batch_size", f"at most the replay capacity memory={capacity}",
                spec["batch_size"], where=f"agent '{name}'",
            )
        self.update_spec = spec
        self.batch_size = spec["batch_size"]
        self.multi_step = check_int(multi_step, "multi_step", minimum=1, where=where)
        self.discount = parameters.create(discount, "discount", low=0.0, high=1.0, where=where)
        self.horizon = check_int(horizon, "horizon", minimum=1, where=where)
        self.predict_terminal_values = bool(predict_terminal_values)
        self._reward_processing = clipping(reward_processing, "reward_processing")
        self.exploration = self._parse_exploration(exploration)
        self._parse_variable_noise(variable_noise)

        self._mask_names = [n for n, s in self.actions_spec.items()
                            if s.type == "int" and s.num_values is not None]
        step_fields: dict[str, tuple] = {}
        for state_name, state_spec in self.states_spec.items():
            step_fields[f"states/{state_name}"] = (state_spec.shape, state_spec.dtype)
        for action_name in self._mask_names:
            step_fields[f"masks/{action_name}"] = (self.actions_spec[action_name].mask_shape(),
                                                   np.bool_)
        for action_name, action_spec in self.actions_spec.items():
            step_fields[f"actions/{action_name}"] = (action_spec.shape, action_spec.dtype)
        fields = dict(step_fields)
        fields["reward"] = ((), np.float32)
        fields["terminal"] = ((), np.float32)
        fields["discount"] = ((), np.float32)
        for state_name, state_spec in self.states_spec.items():
            fields[f"next_states/{state_name}"] = (state_spec.shape, state_spec.dtype)
        for action_name in self._mask_names:
            fields[f"next_masks/{action_name}"] = (self.actions_spec[action_name].mask_shape(),
                                                   np.bool_)
        self._step_fields = step_fields
        self.memory = ReplayMemory(fields, capacity)
        self._window = NStepWindow(step_fields, self.parallel_interactions, self.horizon)
        frequency = spec["frequency"]
        self._next_update = None if frequency == "never" else spec["start"]
        self._gradient_steps = 0
        self._mask_cache: dict[int, dict] = {}
        self.last_metrics: dict[str, float] = {}
        self.target_update_weight = check_float(target_update_weight, "target_update_weight",
                                                low=0.0, high=1.0, low_open=True, where=where)
        self.target_sync_frequency = check_int(target_sync_frequency, "target_sync_frequency",
                                               minimum=1, where=where)
        self.l2_regularization = parameters.create(l2_regularization, "l2_regularization",
                                                   low=0.0, where=where)

    # ------------------------------------------------------------------ subclass hooks
    def _check_actions(self) -> None:
        """Raises `ArgumentError` for action types the algorithm does not support."""

    def _optimizer_specs(self) -> dict:
        """`{name: OptimizerSpec}` of the agent (learning rates set before each update)."""
        return {}

    def _extra_state_variables(self) -> dict:
        return {}

    def _act_program(self, states, masks, exploration, deterministic: bool):  # pragma: no cover
        raise NotImplementedError

    def _train_step(self, batch, hyper, step):  # pragma: no cover - abstract
        """One gradient step (and target update) on one minibatch; returns metrics."""
        raise NotImplementedError

    def _update_noise(self, num_batches: int, batch_size: int) -> dict:
        """Random inputs of an update drawn on the host (e.g. SAC's Gaussian noise)."""
        return {}

    def _hyper(self) -> dict:
        """Scalar inputs of the compiled update, as host values."""
        return {"step": np.int32(self._gradient_steps),
                "l2_regularization": np.float32(self.l2_regularization.value(self._counters()))}

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _constructor_arguments(local_variables: Mapping) -> dict:
        """The arguments `get_config()` lists, from an agent constructor's `locals()`.

        Args:
            local_variables: `locals()` at the start of the agent's `__init__`.

        Returns:
            The arguments by name, without states, actions and the `Agent` ones.
        """
        return {k: v for k, v in local_variables.items() if k not in _NOT_STORED}

    @staticmethod
    def _base_arguments(arguments: Mapping) -> dict:
        """The keyword arguments of `OffPolicyAgent.__init__` among `arguments`."""
        return {k: arguments[k] for k in _BASE_ARGUMENTS}

    @classmethod
    def _check_unsupported(cls, return_processing: Any = None,
                           entropy_regularization: Any = None) -> None:
        """Checks the Tensorforce arguments the off-policy agents do not support.

        A non-zero `entropy_regularization` only warns (it is ignored).

        Raises:
            ArgumentError: `return_processing` is given.
        """
        name = cls.agent_type
        if return_processing is not None:
            raise ArgumentError.invalid(
                "return_processing", f"None (agent '{name}' has no returns to process)",
                return_processing,
            )
        if entropy_regularization not in (0, 0.0, None):
            warn_ignored("entropy_regularization", entropy_regularization, name, stacklevel=4)

    @staticmethod
    def _optimizer(spec: Any, learning_rate: Any, max_grad_norm: Any, name: str):
        """An `OptimizerSpec` from an optimizer argument (None: Adam, a name, or a dict)."""
        optimizer = OptimizerSpec(optimizer_config(spec, learning_rate, max_grad_norm, name),
                                  name=name)
        if optimizer.multi_step != 1 or optimizer.subsampling_fraction != 1.0:
            raise ArgumentError.invalid(
                name, "no multi_step/subsampling_fraction (use the agent's multi_step)", spec
            )
        return optimizer

    @staticmethod
    def _freeze(models) -> None:
        """Marks every layer of `models` (the target networks) as not trainable."""
        for model in models:
            for layer in model.layers:
                layer.trainable = False

    def _finish_init(self, arguments: dict, act_variables: list) -> None:
        """Last constructor step: compiles the programs and stores the spec.

        The engine gets the variables of `_models()`, of the optimizers of
        `_optimizer_specs()` (built by then) and of `_extra_state_variables()`.

        Args:
            arguments: The agent's `_constructor_arguments` (for `get_config()`).
            act_variables: The variables the act functions read.
        """
        variables = []
        for model in self._models().values():
            variables += list(model.variables)
        for spec in self._optimizer_specs().values():
            variables += list(spec.optimizer.variables)
        variables += list(self._extra_state_variables().values())
        self._compile(variables, act_variables)
        self._store_spec(**{k: parameters.get_config(v) if isinstance(v, parameters.Parameter)
                            else v for k, v in arguments.items()
                            if v is not None or k in ("batch_size", "memory")})

    def _parse_exploration(self, exploration):
        if isinstance(exploration, Mapping) and "type" not in exploration and exploration and all(
            key in self.actions_spec or key in ("bool", "int", "float") for key in exploration
        ):
            return {name: parameters.exploration(
                exploration.get(name, exploration.get(spec.type, 0.0)), spec.type,
                f"exploration['{name}']") for name, spec in self.actions_spec.items()}
        return {name: parameters.exploration(exploration, spec.type, "exploration")
                for name, spec in self.actions_spec.items()}

    def _explores(self, name: str) -> bool:
        parameter = self.exploration[name]
        return not (parameter.is_constant() and parameter.value() == 0.0)

    @staticmethod
    def _target_pairs(target: keras.Model, online: keras.Model, what: str) -> list:
        """Checks that `target` is a separate copy of `online`; returns variable pairs."""
        online_weights, target_weights = online.weights, target.weights
        online_ids = {id(w) for w in online_weights}
        if any(id(w) in online_ids for w in target_weights):
            raise ArgumentError(
                f"The target network of the {what} shares weights with the {what} (a Keras "
                "model or layer instance was given as network): give a keras.Model class "
                "or factory instead, so that the target network gets its own copy."
            )
        if [tuple(w.shape) for w in online_weights] != [tuple(w.shape) for w in target_weights]:
            raise ArgumentError(
                f"The target network of the {what} does not match the {what} (the network "
                "spec built differently twice)."
            )
        for target_weight, online_weight in zip(target_weights, online_weights):
            target_weight.assign(online_weight.value)
        return list(zip(target_weights, online_weights))

    def _compile(self, variables: list, act_variables: list) -> None:
        """Creates the engine and the compiled act and update functions.

        Args:
            variables: Every variable of models, optimizers and extra state.
            act_variables: The subset the act functions read.
        """
        seed = self.config["seed"]
        self._act_seed = keras.random.SeedGenerator(
            seed if seed is not None else int(self._rng.integers(2**31)))
        self.engine = kbackend.Engine(list(variables) + [self._act_seed.state])
        act_variables = list(act_variables) + [self._act_seed.state]
        self._act_sample = self.engine.function(
            lambda s, m, e: self._act_program(s, m, e, False), sync=False,
            variables=act_variables, pack=True,
        )
        self._act_mode = self.engine.function(
            lambda s, m, e: self._act_program(s, m, e, True), sync=False,
            variables=act_variables, pack=True,
        )
        self._update_compiled = self.engine.function(self._update_program, sync=True,
                                                     guard=True)

    def _counters(self) -> dict:
        return {"timesteps": self.timesteps, "episodes": self.episodes, "updates": self.updates}

    # ------------------------------------------------------------------ compiled update
    def _update_program(self, batch, hyper):
        num_steps = int(next(iter(batch.values())).shape[0])

        def body(i, totals):
            minibatch = {k: ops.take(v, i, axis=0) for k, v in batch.items()}
            step = ops.cast(hyper["step"], "int32") + ops.cast(i, "int32") + 1
            metrics = self._train_step(minibatch, hyper, step)
            return {k: totals[k] + ops.cast(metrics[k], "float32") for k in totals}

        init = {k: ops.zeros((), "float32") for k in self.metric_names}
        totals = kbackend.fori_loop(0, num_steps, body, init)
        return {k: v / float(num_steps) for k, v in totals.items()}

    @staticmethod
    def _every(step, frequency):
        """1.0 on gradient steps whose index is a multiple of `frequency`, else 0.0."""
        return ops.cast(ops.equal(ops.mod(step, ops.cast(frequency, "int32")), 0), "float32")

    # ------------------------------------------------------------------ acting
    def _gamma(self) -> float:
        return float(self.discount.value(self._counters()))

    def _act_batch(self, states, masks, slots, independent, deterministic):
        size = next(iter(states.values())).shape[0]
        masks = self._full_masks(masks, size)
        function = self._act_mode if (independent and deterministic) else self._act_sample
        outputs = function(states, {k: masks[k] for k in self._mask_names},
                           self._exploration_values(independent))
        actions = {
            name: np.asarray(outputs[name]).astype(spec.dtype, copy=False)
            for name, spec in self.actions_spec.items()
        }
        if not independent:
            record = {f"states/{k}": v for k, v in states.items()}
            record.update({f"masks/{k}": masks[k] for k in self._mask_names})
            record.update({f"actions/{k}": v for k, v in actions.items()})
            transitions = self._window.push(slots, record, self._gamma())
            if transitions is not None:
                self.memory.add(transitions)
        return actions

    # ------------------------------------------------------------------ observing
    def _observe_batch(self, reward, terminal, slots):
        if self._reward_processing is not None:
            reward = self._reward_processing(reward).astype(np.float32)
        self._window.set_reward(slots, reward)
        ended = terminal > 0
        if ended.any():
            gamma = self._gamma()
            for slot, code in zip(slots[ended], terminal[ended]):
                self._end_window(int(slot), code == 2 or self.predict_terminal_values, gamma)
        return self._maybe_update()

    def _end_window(self, slot: int, bootstrap: bool, gamma: float) -> None:
        """Ends the n-step window of `slot`; its remaining transitions go to memory."""
        transitions = self._window.finish(slot, bool(bootstrap), gamma)
        if transitions is not None:
            self.memory.add(transitions)

    def _abort_episodes(self, slots: np.ndarray) -> None:
        """The n-step windows of `slots` end as at terminal 2 (see `_observe_batch`)."""
        gamma = self._gamma()
        for slot in slots:
            self._end_window(int(slot), True, gamma)

    def _maybe_update(self) -> int:
        if self._next_update is None or self.timesteps < self._next_update:
            return 0
        frequency = self.update_spec["frequency"]
        due = 1 + (self.timesteps - self._next_update) // frequency
        self._next_update += due * frequency
        if self.memory.size == 0:  # nothing to learn from yet: these updates are skipped
            return 0
        for _ in range(due):
            self._run_update()
        return due

    def _run_update(self) -> None:
        if self._recent:
            batch = self.memory.latest(self.batch_size, self.multi_step)
        else:
            batch = self.memory.sample(self._rng, self.batch_size, self.multi_step)
        batch.update(self._update_noise(self.multi_step, self.batch_size))
        counters = self._counters()
        for name, spec in self._optimizer_specs().items():
            self.engine.assign(spec.learning_rate_variable(), self._checked_learning_rate(
                name, spec.learning_rate.value(counters)))
        metrics = self._update_compiled(batch, self._hyper())
        self._gradient_steps += self.multi_step
        self.last_metrics = self._checked_metrics(metrics)
        self.updates += 1
        if self._plugins:
            self._notify("on_update", self.last_metrics)

    def update(self) -> int:
        """Runs one update now (whatever the schedule); returns 1, or 0 with an empty memory."""
        if self.memory.size == 0:
            return 0
        self._run_update()
        return 1

    def _experience(self, states, masks, actions, terminal, reward) -> None:
        size = len(terminal)
        masks = self._full_masks(masks, size)
        if self._reward_processing is not None:
            reward = self._reward_processing(reward).astype(np.float32)
        window = NStepWindow(self._step_fields, 1, self.horizon)
        slot = np.zeros(1, dtype=np.int64)
        gamma = self._gamma()
        for t in range(size):
            record = {f"states/{k}": v[t:t + 1] for k, v in states.items()}
            record.update({f"masks/{k}": masks[k][t:t + 1] for k in self._mask_names})
            record.update({f"actions/{k}": v[t:t + 1] for k, v in actions.items()})
            transitions = window.push(slot, record, gamma)
            if transitions is not None:
                self.memory.add(transitions)
            window.set_reward(slot, reward[t:t + 1])
            if terminal[t] > 0:
                bootstrap = terminal[t] == 2 or self.predict_terminal_values
                transitions = window.finish(0, bool(bootstrap), gamma)
                if transitions is not None:
                    self.memory.add(transitions)

    # ------------------------------------------------------------------ checkpoint state
    def _state_variables(self) -> dict:
        variables = {}
        for name, spec in self._optimizer_specs().items():
            for i, variable in enumerate(spec.optimizer.variables):
                variables[f"{name}/{i}"] = variable
        variables["seed/act"] = self._act_seed.state
        variables.update(self._extra_state_variables())
        return variables

    def _memory_arrays(self) -> dict:
        return self.memory.get_arrays()

    def _set_memory_arrays(self, arrays: dict) -> None:
        self.memory.set_arrays(arrays)

    def _host_state(self) -> dict:
        state = super()._host_state()
        state["next_update"] = self._next_update
        state["gradient_steps"] = self._gradient_steps
        return state

    def _set_host_state(self, state: dict) -> None:
        super()._set_host_state(state)
        self._next_update = self._check_next_update(state, self._next_update)
        self._gradient_steps = check_int(state.get("gradient_steps", 0),
                                         "host_state['gradient_steps']", minimum=0,
                                         where="checkpoint metadata")

    def _reset_buffers(self) -> None:
        self._window.clear()


def warn_ignored(name: str, value: Any, agent: str, stacklevel: int = 3) -> None:
    """Warns that a Tensorforce argument has no effect for this agent."""
    warnings.warn(
        f"Argument '{name}'={value!r} has no effect for agent '{agent}'; it is ignored.",
        stacklevel=stacklevel,
    )


# ---------------------------------------------------------------------- continuous actions
#: Key of the action input of critic models (beside the state names).
ACTION_INPUT = "__action__"


def _constant(array: np.ndarray):
    """A host constant as a tensor of the backend (torch cannot mix numpy and tensors)."""
    return ops.convert_to_tensor(array)


def build_critic(builder, network: Any, states_spec, action_size: int, preprocessing: Any,
                 name: str) -> keras.Model:
    """A Q(s, a) critic: `network` on the states, the action concatenated, a dense layer.

    The model takes `{**states, ACTION_INPUT: (B, action_size)}` (normalized
    actions) and returns `(B,)` Q-values: `embedding = network(states)`,
    `h = relu(dense(concat(embedding, action)))` of the embedding's size,
    `Q = dense(h)` (the DDPG paper's critic, where the action joins at the
    second layer).

    Args:
        builder: The `NetworkBuilder`.
        network: Network spec of the critic (on the states).
        states_spec: The state `Specs`.
        action_size: Size of the flattened, concatenated actions.
        preprocessing: `state_preprocessing`.
        name: Model name and layer-name prefix (e.g. `'critic'`).
    """
    network_model = builder.build(network, states_spec, name=f"{name}_network",
                                  preprocessing=preprocessing)
    embedding = network_model.outputs[0] if isinstance(network_model.outputs, list) else (
        network_model.outputs)
    action_input = keras.Input((action_size,), dtype="float32", name=f"{name}_action")
    hidden = keras.layers.Concatenate(name=f"{name}_concat")([embedding, action_input])
    hidden = keras.layers.Dense(int(embedding.shape[-1]), activation="relu",
                                name=f"{name}_hidden")(hidden)
    value = keras.layers.Dense(1, name=f"{name}_value")(hidden)
    value = keras.layers.Reshape((), name=f"{name}_squeeze")(value)
    # The action input is keyed ACTION_INPUT but named after the critic (unique names).
    return functional_model({**network_model.input, ACTION_INPUT: action_input}, value, name)


class ContinuousActorCritic(OffPolicyAgent):
    """Shared parts of DDPG, TD3 and SAC: float actions, critics, normalization.

    Actions are handled in a **normalized** space inside the networks: for an
    action with both bounds, `y ∈ [-1, 1]` with `a = c + h·y` (`c` the
    center, `h` the half range); for other float actions `y = a`. Actors
    output `y` (`tanh` of their mean for bounded actions), critics take the
    concatenation of all flattened `y`, exploration noise is added to `y`
    (so its standard deviation is relative to the action range).
    """

    def _check_actions(self) -> None:
        for action_name, spec in self.actions_spec.items():
            if spec.type != "float":
                raise ArgumentError.invalid(
                    "actions", "float actions (use 'dqn' or 'ppo' for int/bool actions)",
                    spec.get_config(), where=f"agent '{self.agent_type}', action '{action_name}'",
                )

    def _init_actor_critic(self, optimizer: Any, critic_optimizer: Any, learning_rate: Any,
                           max_grad_norm: Any) -> None:
        """Sets the action layout, `optimizer_spec` (actor) and `critic_optimizer_spec`."""
        self._init_action_layout()
        self.optimizer_spec = self._optimizer(optimizer, learning_rate, max_grad_norm, "optimizer")
        self.critic_optimizer_spec = self._critic_optimizer(critic_optimizer, learning_rate,
                                                            max_grad_norm)

    def _build_optimizers(self, critics: list) -> None:
        """Builds the actor and critic optimizers on the policy's and `critics`' weights.

        Sets `_actor_variables` and `_critic_variables` (the trainable
        variables of `policy_model` and of every model of `critics`).
        """
        self._actor_variables = list(self.policy_model.trainable_variables)
        self._critic_variables = []
        for critic in critics:
            self._critic_variables += list(critic.trainable_variables)
        self.optimizer_spec.optimizer.build(self._actor_variables)
        self.critic_optimizer_spec.optimizer.build(self._critic_variables)

    def _init_action_layout(self) -> None:
        from kerasrl.distributions import _flat_bounds

        self._layout = []
        offset = 0
        for action_name, spec in self.actions_spec.items():
            low, high = _flat_bounds(spec)
            bounded = low is not None and high is not None
            entry = {"name": action_name, "shape": spec.shape, "size": spec.size,
                     "offset": offset, "bounded": bounded, "low": low, "high": high}
            if bounded:
                entry["center"] = ((high + low) / 2.0).reshape(-1).astype(np.float32)
                entry["half"] = np.maximum((high - low) / 2.0, 1e-6).reshape(-1).astype(
                    np.float32)
            self._layout.append(entry)
            offset += spec.size
        self.action_size = offset

    # ------------------------------------------------------------------ normalization
    def _normalize(self, actions: dict):
        """Env actions `{name: (B, *shape)}` → normalized `(B, D)`."""
        parts = []
        for entry in self._layout:
            value = ops.reshape(ops.cast(actions[entry["name"]], "float32"), (-1, entry["size"]))
            if entry["bounded"]:
                center, half = _constant(entry["center"]), _constant(entry["half"])
                value = ops.clip((value - center) / half, -1.0, 1.0)
            parts.append(value)
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def _denormalize(self, y) -> dict:
        """Normalized `(B, D)` → env actions `{name: (B, *shape)}` (clipped to bounds)."""
        actions = {}
        for entry in self._layout:
            part = y[:, entry["offset"]:entry["offset"] + entry["size"]]
            if entry["bounded"]:
                center, half = _constant(entry["center"]), _constant(entry["half"])
                part = center + half * ops.clip(part, -1.0, 1.0)
            else:
                if entry["low"] is not None:
                    part = ops.maximum(part, _constant(entry["low"].reshape(-1)))
                if entry["high"] is not None:
                    part = ops.minimum(part, _constant(entry["high"].reshape(-1)))
            actions[entry["name"]] = ops.reshape(part, (-1,) + tuple(entry["shape"]))
        return actions

    def _flat_params(self, params: dict, key: str):
        """A distribution parameter of every action, flattened and concatenated `(B, D)`."""
        parts = [ops.reshape(params[entry["name"]][key], (-1, entry["size"]))
                 for entry in self._layout]
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def _squash(self, u):
        """Pre-squash values `(B, D)` → normalized actions (`tanh` where bounded)."""
        if all(entry["bounded"] for entry in self._layout):
            return ops.tanh(u)
        parts = []
        for entry in self._layout:
            part = u[:, entry["offset"]:entry["offset"] + entry["size"]]
            parts.append(ops.tanh(part) if entry["bounded"] else part)
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def _bounded_mask(self) -> np.ndarray:
        """`(D,)` float mask: 1.0 for elements of bounded actions."""
        mask = np.zeros(self.action_size, np.float32)
        for entry in self._layout:
            if entry["bounded"]:
                mask[entry["offset"]:entry["offset"] + entry["size"]] = 1.0
        return mask

    def _clip_normalized(self, y):
        """Clips the bounded elements of normalized actions to [-1, 1]."""
        if all(entry["bounded"] for entry in self._layout):
            return ops.clip(y, -1.0, 1.0)
        bounded = _constant(self._bounded_mask() > 0)
        return ops.where(bounded, ops.clip(y, -1.0, 1.0), y)

    def _exploration_noise(self, y, exploration):
        """Adds `N(0, σ²)` to normalized actions, `σ` per action (exploration values)."""
        noise = keras.random.normal(ops.shape(y), seed=self._act_seed)
        parts = []
        for entry in self._layout:
            parts.append(ops.ones((entry["size"],), "float32") * exploration[entry["name"]])
        sigma = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
        return self._clip_normalized(y + noise * sigma)

    # ------------------------------------------------------------------ critics
    def _critic_inputs(self, states: dict, y) -> dict:
        return {**states, ACTION_INPUT: y}

    def _batch_states(self, batch: dict, prefix: str = "states") -> dict:
        return {n: batch[f"{prefix}/{n}"] for n in self.states_spec}

    @classmethod
    def _critic_optimizer(cls, critic_optimizer: Any, learning_rate: Any, max_grad_norm: Any):
        """Tensorforce's `critic_optimizer`: a float scales the learning rate, or a spec."""
        if is_number(critic_optimizer) or isinstance(critic_optimizer, bool):
            critic_optimizer = check_float(critic_optimizer, "critic_optimizer", low=0.0,
                                           low_open=True, where=f"agent '{cls.agent_type}'")
            rate = parameters.create(learning_rate, "learning_rate")
            if critic_optimizer != 1.0:
                if not rate.is_constant():
                    raise ArgumentError.invalid(
                        "critic_optimizer", "1.0 or an optimizer spec with a scheduled "
                        "learning_rate", critic_optimizer)
                rate = parameters.create(rate.value() * float(critic_optimizer))
            return cls._optimizer(None, parameters.get_config(rate), max_grad_norm,
                                  "critic_optimizer")
        return cls._optimizer(critic_optimizer, learning_rate, max_grad_norm, "critic_optimizer")

    @staticmethod
    def _masked_step(flag, variables, run):
        """Runs `run()` (which updates `variables`) and keeps the changes only where `flag > 0`."""
        snapshot = [ops.copy(v.value) for v in variables]
        result = run()
        keep = flag > 0
        for variable, old in zip(variables, snapshot):
            variable.assign(ops.where(keep, variable.value, old))
        return result
