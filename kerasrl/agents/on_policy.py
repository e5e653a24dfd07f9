"""On-policy agents: a stochastic policy network, an optional baseline, and
updates on the most recent experience (SB3's `OnPolicyAlgorithm`).

The flow of one timestep:

1. `act` runs the compiled act function of the policy (one call for the whole
   batch of parallel environments): it samples actions (masks honoured,
   exploration applied) and returns their log-probabilities and the
   baseline's value estimates, which are written into the per-slot
   `TrajectoryBuffer`.
2. `observe` writes rewards. A finished episode is turned into advantages and
   returns (`kerasrl.returns.gae`) and moved to the `RecentMemory`.
3. When the update schedule fires, the newest batch is padded to a power of
   two, sent to the device once, and the compiled update runs all of its
   gradient steps (`multi_step`, random subsamples) in one call.

With `update=dict(unit='timesteps', ...)` the rollout is cut mid-episode; the
value of the state after the cut is only known at the next `act`, which
computes it anyway (the baseline's value of the state it acts on). That `act`
closes the cut segments with it and marks the update as due; the update runs
at the start of the following `observe` (which returns 1), before that
observe writes anything. `act` never updates. The actions of that `act` were
sampled by the policy before the update either way, so this gives the same
updates as updating right after the cut with the next state's value, as SB3
does, without asking the environment for the next state twice.

With recurrent layers in the policy or the baseline (`rnn`, `lstm`, `gru`)
the internal state of every parallel slot lives in a device variable that
the compiled training act reads and writes (zeroed at each slot's episode
start); the state before each step is stored with the experience, and
updates unroll the networks over sequences of at most `horizon` steps
(`kerasrl.agents.sequences`).

Subclasses implement `policy_objective(...)`: the loss of one gradient step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasrl import backend as kbackend
from kerasrl import distributions as kdistributions
from kerasrl import parameters
from kerasrl.agents import sequences
from kerasrl.agents.agent import Agent
from kerasrl.errors import ArgumentError
from kerasrl.memories import (
    PaddedSizes,
    RecentMemory,
    TrajectoryBuffer,
    check_saved_fields,
    pad_batch,
)
from kerasrl.networks import (
    NetworkBuilder,
    functional_model,
    network_horizon,
    network_internals,
)
from kerasrl.optimizers import OptimizerSpec
from kerasrl.returns import gae, n_step_returns
from kerasrl.validation import check_float, check_int, in_range, is_number

UPDATE_UNITS = ("timesteps", "episodes")
ADVANTAGE_NORMALIZATION = ("normalize", "batch_normalization", "instance_normalization",
                           "standardize")


def parse_update(
    update: Any, batch_size: Any, update_frequency: Any, unit: str, agent: str
) -> dict:
    """Normalizes Tensorforce's update arguments into one dict.

    Args:
        update: None, an int (timesteps batch size) or
            `dict(unit, batch_size, frequency=batch_size, start=0)`.
        batch_size: The agent's `batch_size` argument (used when `update` is None).
        update_frequency: The agent's `update_frequency` argument.
        unit: Default unit of `batch_size` for this agent.
        agent: Agent name for error messages.

    Returns:
        `dict(unit, batch_size, frequency, start)` with ints (frequency may be
        `'never'`).
    """
    if update is not None and batch_size is not None:
        raise ArgumentError(
            f"Arguments 'update' and 'batch_size' of agent '{agent}' are exclusive; "
            f"received update={update!r} and batch_size={batch_size!r}."
        )
    if update is None:
        if batch_size is None:
            raise ArgumentError(
                f"Missing argument 'batch_size' of agent '{agent}' (in {unit}), "
                "or give update=dict(unit=..., batch_size=...)."
            )
        update = {"unit": unit, "batch_size": batch_size, "frequency": update_frequency}
    elif isinstance(update, (int, np.integer)) and not isinstance(update, bool):
        update = {"unit": "timesteps", "batch_size": int(update)}
    elif not isinstance(update, Mapping):
        raise ArgumentError.invalid("update", "an int or dict(unit=..., batch_size=...)", update)
    update = dict(update)
    unknown = set(update) - {"unit", "batch_size", "frequency", "start"}
    if unknown:
        raise ArgumentError.invalid(
            f"update key(s) {sorted(unknown)}", "keys among unit, batch_size, frequency, start",
            update,
        )
    if update.get("unit") not in UPDATE_UNITS:
        raise ArgumentError.invalid("update['unit']", f"one of {UPDATE_UNITS}", update.get("unit"))
    where = f"agent '{agent}'"
    size = check_int(update.get("batch_size"), "batch_size", minimum=1, where=where)
    frequency = update.get("frequency")
    if frequency is None:
        frequency = size
    elif isinstance(frequency, (float, np.floating)):
        if not in_range(float(frequency), 0.0, 1.0, low_open=True):
            raise ArgumentError.invalid(
                "update_frequency", "a positive int, or a float in (0, 1] relative to "
                "batch_size", frequency, where=where)
        frequency = max(1, int(float(frequency) * size))
    elif not (isinstance(frequency, str) and frequency == "never"):
        if not isinstance(frequency, (int, np.integer)) or isinstance(frequency, bool) or \
                frequency < 1:
            raise ArgumentError.invalid(
                "update_frequency", "a positive int, a float in (0, 1], or 'never'", frequency,
                where=where)
        frequency = int(frequency)
    start = check_int(update.get("start", 0), "update['start']", minimum=0, where=where,
                      allow_none=True) or 0
    return {"unit": update["unit"], "batch_size": size, "frequency": frequency, "start": start}


class Clipping:
    """`clip(x, lower, upper)` (a None bound: unbounded), on the host or in a compiled program."""

    def __init__(self, lower: float | None, upper: float | None):
        self.lower, self.upper = lower, upper

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.lower, self.upper)

    def ops(self, x):
        """The same clipping with `keras.ops`, for a tensor."""
        lower = -np.inf if self.lower is None else self.lower
        upper = np.inf if self.upper is None else self.upper
        return ops.clip(x, lower, upper)


def clipping(spec: Any, argument: str) -> Clipping | None:
    """Reward/return processing: None or `dict(type='clipping', lower, upper)`.

    Args:
        spec: None, or the clipping dict; `lower`/`upper` are numbers (None or
            an infinite bound: unbounded on that side) with `lower < upper`.
        argument: Argument name for error messages.

    Returns:
        None, or the `Clipping`.

    Raises:
        ArgumentError: for another spec, a NaN or non-number bound, or
            `lower >= upper`.
    """
    if spec is None:
        return None
    if isinstance(spec, Mapping) and spec.get("type") == "clipping":
        lower = check_float(spec.get("lower"), f"{argument}['lower']", low=-np.inf,
                            high=np.inf, allow_none=True)
        upper = check_float(spec.get("upper"), f"{argument}['upper']", low=-np.inf,
                            high=np.inf, allow_none=True)
        if lower is not None and upper is not None and not lower < upper:
            raise ArgumentError.invalid(f"{argument}['upper']", f"> lower={lower:g}", upper)
        return Clipping(lower, upper)
    raise ArgumentError.invalid(
        argument, "None or dict(type='clipping', lower=..., upper=...)", spec
    )


class BatchNormalization:
    """Tensorforce's `batch_normalization` of returns, over the valid rows of an update batch.

    `x̂ = (x - mean(x)) / sqrt(max(var(x), min_variance))`, or `x - mean(x)`
    with `only_mean`.
    """

    def __init__(self, only_mean: bool = False, min_variance: float = 1e-4):
        self.only_mean, self.min_variance = only_mean, min_variance

    def ops(self, x, valid):
        mean = _weighted_mean(x, valid)
        if self.only_mean:
            return x - mean
        variance = _weighted_mean(ops.square(x - mean), valid)
        return (x - mean) / ops.sqrt(ops.maximum(variance, self.min_variance))


def parse_return_processing(spec: Any) -> tuple[Clipping | None, BatchNormalization | None]:
    """`return_processing`: None, a clipping dict, `'batch_normalization'`, or both in a list.

    Args:
        spec: None; `dict(type='clipping', lower, upper)`; `'batch_normalization'`
            or `dict(type='batch_normalization', only_mean=False,
            min_variance=1e-4)`; or a list `[clipping, batch_normalization]`
            (clipping first, as the layers apply in order).

    Returns:
        `(clipping, normalization)`, each None when absent. Clipping applies
        to each return when it is formed, normalization per update batch.

    Raises:
        ArgumentError: for another spec.
    """
    if spec is None:
        return None, None
    layers = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    expected = ("None, dict(type='clipping', ...), 'batch_normalization' (or its dict), or "
                "[clipping, batch_normalization]")
    clip, normalization = None, None
    for layer in layers:
        kind = layer.get("type") if isinstance(layer, Mapping) else layer
        if kind == "batch_normalization" and normalization is None:
            options = dict(layer) if isinstance(layer, Mapping) else {}
            options.pop("type", None)
            unknown = set(options) - {"only_mean", "min_variance", "axes"}
            if unknown or options.get("axes") not in (None, 0, (0,), [0]):
                raise ArgumentError.invalid("return_processing", expected, spec)
            only_mean = options.get("only_mean", False)
            if not isinstance(only_mean, bool):
                raise ArgumentError.invalid("return_processing['only_mean']", "a bool",
                                            only_mean)
            min_variance = check_float(options.get("min_variance", 1e-4),
                                       "return_processing['min_variance']", low=0.0,
                                       low_open=True)
            normalization = BatchNormalization(only_mean, min_variance)
        elif kind == "clipping" and clip is None and normalization is None:
            clip = clipping(layer, "return_processing")
        else:
            raise ArgumentError.invalid("return_processing", expected, spec)
    return clip, normalization


def _weighted_mean(x, weights):
    return ops.sum(x * weights) / ops.maximum(ops.sum(weights), 1.0)


def _approx_kl(log_ratio, weights):
    """The `E[(ρ-1) - log ρ]` estimate of KL(π_old ‖ π) from `log ρ = log π - log π_old`."""
    return _weighted_mean((ops.exp(log_ratio) - 1.0) - log_ratio, weights)


def _snapshot(variables) -> list:
    """Copies of the variables' current values (inside a compiled update)."""
    return [ops.copy(variable.value) for variable in variables]


def change_norm(variables, before):
    """`‖θ − θ_before‖`, the global norm of the variables' change since `_snapshot`."""
    change = sum(ops.sum(ops.square(ops.cast(variable.value, "float32")
                                    - ops.cast(value, "float32")))
                 for variable, value in zip(variables, before))
    return ops.stop_gradient(ops.sqrt(change))


class OnPolicyAgent(Agent):
    """Base class of policy-gradient agents (see module docstring).

    Args:
        states, actions, max_episode_timesteps, parallel_interactions, config:
            See `Agent`.
        update: Normalized update dict (see `parse_update`).
        network: Policy network spec (`'auto'`, layer list, list of lists,
            Keras model, JSON file, ...). `policy` is an alias.
        optimizer: `OptimizerSpec` of the policy.
        discount: Discount factor γ (parameter).
        gae_decay: GAE λ; 0 (default) means Monte-Carlo returns minus baseline.
        baseline: Baseline (critic) network spec, or None for no baseline.
        baseline_optimizer: None or a float (the baseline loss is added to the
            policy loss with this weight; one optimizer), or an optimizer spec
            (a separate optimizer, run before the policy step).
        use_beta_distribution: Beta distributions for bounded float actions.
        distributions: Distribution config (per action type or name).
        state_preprocessing: See `kerasrl.networks`.
        memory: `'minimum'` or a capacity in timesteps.
        entropy_regularization, l2_regularization: Loss coefficients (parameters).
        exploration: Exploration (parameter, or dict per action name).
        variable_noise: Standard deviation (a parameter) of the Gaussian noise
            added to every trainable policy weight while sampling actions
            (parameter-space exploration; weights are not changed).
        predict_terminal_values: Bootstrap true terminals too.
        advantage_processing: None or `'normalize'` (alias
            `dict(type='batch_normalization')`): standardize advantages per batch.
        reward_processing: None or a clipping dict.
        return_processing: None, a clipping dict, `'batch_normalization'`
            (per update batch), or both in a list (`parse_return_processing`).
        horizon: None (returns to the end of the episode or rollout, or GAE)
            or n for n-step returns (bootstrapped from the baseline, see
            `predict_horizon_values`).
        estimate_advantage: With a baseline, train the policy on
            `return - V(s)` or on the return itself (False, Tensorforce's
            `ac`). `V(s)` is predicted after the baseline's own optimizer step
            (True or `'late'`) or before it (`'early'`); without a separate
            baseline optimizer the two are the same.
        predict_horizon_values: With an int `horizon`, when the bootstrap
            `V(s_{t+n})` of the n-step return is predicted: when the
            experience is stored (`'early'`) or at each update, by the
            baseline as it is then (`'late'`, Tensorforce's default for an int
            horizon), or never (False: `R_t = Σ_{k<n} γ^k r_{t+k}`, also
            without a baseline).
    """

    #: Names of the metrics returned by `policy_objective`.
    policy_metrics: tuple[str, ...] = ("policy_loss", "entropy")
    #: The agent's name of the baseline argument (`'critic'` for AC/A2C), for messages.
    baseline_argument: str = "baseline"

    def __init__(
        self,
        states,
        actions,
        max_episode_timesteps=None,
        *,
        update: dict,
        network: Any = "auto",
        policy: Any = None,
        optimizer: OptimizerSpec,
        discount: Any = 0.99,
        gae_decay: float = 0.0,
        baseline: Any = None,
        baseline_optimizer: Any = None,
        use_beta_distribution: bool = False,
        distributions: Any = None,
        temperature: float = 1.0,
        state_preprocessing: Any = "linear_normalization",
        memory: Any = "minimum",
        entropy_regularization: Any = 0.0,
        l2_regularization: Any = 0.0,
        exploration: Any = 0.0,
        variable_noise: float = 0.0,
        predict_terminal_values: bool = False,
        advantage_processing: Any = None,
        reward_processing: Any = None,
        return_processing: Any = None,
        horizon: Any = None,
        estimate_advantage: bool | str = True,
        predict_horizon_values: bool | str = "early",
        parallel_interactions: int = 1,
        config: Any = None,
        **kwargs: Any,
    ):
        super().__init__(states, actions, max_episode_timesteps, parallel_interactions, config,
                         **kwargs)
        for name, spec in self.actions_spec.items():
            if spec.type == "int" and spec.num_values is None:
                raise ArgumentError.invalid(
                    "num_values", "a positive int for an int action", None,
                    where=f"action '{name}'",
                )
        if policy is not None:
            if network != "auto":
                raise ArgumentError(
                    "Arguments 'network' and 'policy' are aliases; give only one "
                    f"(received network={network!r}, policy={policy!r})."
                )
            network, distributions, temperature = self._unpack_policy(
                policy, distributions, temperature
            )
        if temperature not in (1, 1.0):
            raise ArgumentError.invalid("temperature", "1.0 (not configurable yet)", temperature)
        self.update_spec = update
        self.optimizer_spec = optimizer
        where = f"agent '{self.agent_type}'"
        self.discount = parameters.create(discount, "discount", low=0.0, high=1.0, where=where)
        self.gae_decay = check_float(gae_decay, "gae_decay", low=0.0, high=1.0, where=where)
        self.entropy_regularization = parameters.create(
            entropy_regularization, "entropy_regularization", low=0.0, where=where)
        self.l2_regularization = parameters.create(l2_regularization, "l2_regularization",
                                                   low=0.0, where=where)
        self.predict_terminal_values = bool(predict_terminal_values)
        self.horizon = check_int(horizon, "horizon", minimum=1, where=where, allow_none=True)
        if estimate_advantage not in (False, True, "early", "late"):
            raise ArgumentError.invalid("estimate_advantage", "False, True, 'early' or 'late'",
                                        estimate_advantage, where=where)
        self.estimate_advantage = estimate_advantage is not False
        self.early_advantage = estimate_advantage == "early"
        if predict_horizon_values not in ("early", "late", False):
            raise ArgumentError.invalid("predict_horizon_values", "'early', 'late' or False",
                                        predict_horizon_values, where=where)
        if predict_horizon_values == "late" and self.horizon is None:
            raise ArgumentError.invalid("predict_horizon_values", "'early' or False without "
                                        "an int horizon", predict_horizon_values, where=where)
        self.late_horizon_values = predict_horizon_values == "late"
        #: An int horizon whose n-step returns have no bootstrap.
        self.unbootstrapped_horizon = predict_horizon_values is False and (
            self.horizon is not None)
        if advantage_processing is None:
            self.normalize_advantages = False
        else:
            kind = advantage_processing.get("type") if isinstance(
                advantage_processing, Mapping) else advantage_processing
            if kind not in ADVANTAGE_NORMALIZATION:
                raise ArgumentError.invalid(
                    "advantage_processing", f"None or one of {ADVANTAGE_NORMALIZATION}",
                    advantage_processing,
                )
            self.normalize_advantages = True
        self._reward_processing = clipping(reward_processing, "reward_processing")
        self._return_processing, self._return_normalization = parse_return_processing(
            return_processing)
        self.exploration = self._parse_exploration(exploration)
        self._parse_variable_noise(variable_noise)

        # ---------------------------------------------------------------- networks
        self.network_builder = NetworkBuilder()
        policy_network = self.network_builder.build(
            network, self.states_spec, name="policy_network", preprocessing=state_preprocessing,
            recurrent=True,
        )
        self._policy_internals = network_internals(policy_network)
        embedding = policy_network.outputs[0]
        self.distributions: dict[str, Any] = {}
        outputs = {}
        for name, spec in self.actions_spec.items():
            dist_config = self._distribution_config(distributions, name, spec)
            dist = kdistributions.create(
                spec, dist_config, use_beta_distribution=use_beta_distribution,
                name=name.replace("/", "_"),
            )
            self.distributions[name] = dist
            outputs[name] = dist.build(embedding)
        if self._policy_internals:  # the next internal states are outputs too
            outputs = [outputs, *policy_network.outputs[1:]]
        self.policy_model = functional_model(policy_network.input, outputs, "policy")
        self.has_baseline = baseline is not None
        if self.horizon is not None and not self.has_baseline and (
                not self.unbootstrapped_horizon):
            raise ArgumentError.invalid(
                "predict_horizon_values", f"False with horizon={self.horizon} and no "
                f"{self.baseline_argument} (an n-step return bootstraps from the "
                f"{self.baseline_argument})", predict_horizon_values, where=where)
        self.baseline_model = None
        self._baseline_internals: dict[str, tuple] = {}
        if self.has_baseline:
            baseline_network = self.network_builder.build(
                baseline, self.states_spec, name="baseline_network",
                preprocessing=state_preprocessing, recurrent=True,
            )
            self._baseline_internals = network_internals(baseline_network)
            value = keras.layers.Dense(
                1, kernel_initializer=keras.initializers.Orthogonal(1.0), name="baseline_value"
            )(baseline_network.outputs[0])
            value = keras.layers.Reshape((), name="baseline_squeeze")(value)
            if self._baseline_internals:
                value = [value, *baseline_network.outputs[1:]]
            self.baseline_model = functional_model(baseline_network.input, value, "baseline")
        self._init_recurrence(where)

        # ---------------------------------------------------------------- optimizers
        self.baseline_optimizer_spec = None
        self.baseline_loss_weight = 0.0
        if self.has_baseline:
            if baseline_optimizer is None:
                baseline_optimizer = 1.0
            if is_number(baseline_optimizer) or isinstance(baseline_optimizer, bool):
                self.baseline_loss_weight = check_float(
                    baseline_optimizer, f"{self.baseline_argument}_optimizer", low=0.0,
                    where=where)
            else:
                self.baseline_optimizer_spec = OptimizerSpec(
                    baseline_optimizer, name="baseline_optimizer"
                )
        elif baseline_optimizer is not None:
            raise ArgumentError.invalid(
                "baseline_optimizer", "None when there is no baseline", baseline_optimizer
            )
        policy_variables = list(self.policy_model.trainable_variables)
        baseline_variables = list(self.baseline_model.trainable_variables) if (
            self.has_baseline) else []
        if self.baseline_optimizer_spec is None:
            seen = {id(v) for v in policy_variables}
            self._main_variables = policy_variables + [
                v for v in baseline_variables if id(v) not in seen]
        else:
            self._main_variables = policy_variables
        self._baseline_variables = baseline_variables
        self.optimizer_spec.optimizer.build(self._main_variables)
        all_variables = list(self.policy_model.variables)
        if self.has_baseline:
            all_variables += list(self.baseline_model.variables)
        all_variables += list(self.optimizer_spec.optimizer.variables)
        if self.baseline_optimizer_spec is not None:
            self.baseline_optimizer_spec.optimizer.build(self._baseline_variables)
            all_variables += list(self.baseline_optimizer_spec.optimizer.variables)
        seed = self.config["seed"]
        self._act_seed = keras.random.SeedGenerator(seed if seed is not None else
                                                    int(self._rng.integers(2**31)))
        self._update_seed = keras.random.SeedGenerator(
            (seed + 1) if seed is not None else int(self._rng.integers(2**31)))
        all_variables += [self._act_seed.state, self._update_seed.state]
        all_variables += list(self._internal_state.values())
        self.engine = kbackend.Engine(all_variables)
        # Three act functions (each one compiled call per batch): training
        # (sample, log-prob, value), independent sampling, and the mode.
        policy_variables = list(self.policy_model.variables) + [self._act_seed.state]
        train_variables = policy_variables + (
            list(self.baseline_model.variables) if self.has_baseline else [])
        if self.recurrent:
            self._act_train = self.engine.function(
                self._recurrent_train_act, sync=False, pack=True,
                variables=train_variables + list(self._internal_state.values()),
            )
        else:
            self._act_train = self.engine.function(
                lambda s, m, e: self._act_program(s, m, e, False, True), sync=False,
                variables=train_variables, pack=True, name="act",
            )
        self._act_sample = self.engine.function(
            lambda s, m, e, *i: self._act_program(s, m, e, False, False, *i), sync=False,
            variables=policy_variables, pack=True, name="act (independent)",
        )
        self._act_mode = self.engine.function(
            lambda s, m, e, *i: self._act_program(s, m, e, True, False, *i), sync=False,
            variables=policy_variables, pack=True, name="act (deterministic)",
        )
        self._update_program_compiled = self.engine.function(self._update_program, sync=True,
                                                             guard=True, name="update")

        # ---------------------------------------------------------------- memory
        self._mask_names = [n for n, s in self.actions_spec.items() if s.type == "int"]
        fields: dict[str, tuple] = {}
        for name, spec in self.states_spec.items():
            fields[f"states/{name}"] = (spec.shape, spec.dtype)
        for name in self._mask_names:
            spec = self.actions_spec[name]
            fields[f"masks/{name}"] = (spec.mask_shape(), np.bool_)
        for name, spec in self.actions_spec.items():
            fields[f"actions/{name}"] = (spec.shape, spec.dtype)
        for key, shape in self._internal_shapes_all.items():
            fields[f"internals/{key}"] = (shape, np.float32)
        fields["log_prob"] = ((), np.float32)
        fields["value"] = ((), np.float32)
        fields["reward"] = ((), np.float32)
        self._buffer = TrajectoryBuffer(
            fields, self.parallel_interactions,
            capacity=min(self.max_episode_timesteps or 256, 1024),
        )
        self.memory = self._create_memory(memory)
        #: The padded row counts of update batches (few sizes, few compilations).
        self._padded_sizes = PaddedSizes(self._largest_batch(), kbackend.COMPILE_ROWS)
        self._next_update = max(update["start"], update["frequency"]) if (
            update["frequency"] != "never") else None
        self._pending_slots: set[int] | None = None
        #: The cut segments are closed; the update runs at the next observe.
        self._update_due = False
        self._cut_counters: dict = {}
        self._mask_cache: dict[int, dict] = {}
        self.last_metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ construction helpers
    def _init_recurrence(self, where: str) -> None:
        """The internal states of recurrent networks: shapes, horizon and per-slot variables."""
        #: `{'policy/<layer>' | 'baseline/<layer>': shape}` of every internal state.
        self._internal_shapes_all = {
            **{f"policy/{k}": v for k, v in self._policy_internals.items()},
            **{f"baseline/{k}": v for k, v in self._baseline_internals.items()},
        }
        self.recurrent = bool(self._internal_shapes_all)
        #: The truncated-backpropagation length: the longest recurrent horizon.
        self.sequence_length = max(network_horizon(self.policy_model), network_horizon(
            self.baseline_model) if self.has_baseline else 0)
        if self._baseline_internals and self.late_horizon_values:
            raise ArgumentError.invalid(
                "predict_horizon_values", "'early' or False with a recurrent "
                f"{self.baseline_argument} (a 'late' value of s_(t+n) needs its internal state)",
                "late", where=where)
        self._internal_state = {
            key: keras.Variable(np.zeros((self.parallel_interactions, *shape), np.float32),
                                trainable=False, name=f"internal_state_{i}")
            for i, (key, shape) in enumerate(self._internal_shapes_all.items())}

    def internal_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self._policy_internals)

    @staticmethod
    def _unpack_policy(policy, distributions, temperature):
        if isinstance(policy, Mapping) and policy.get("type") == "parametrized_distributions":
            policy = dict(policy)
            policy.pop("type")
            network = policy.pop("network", "auto")
            distributions = policy.pop("distributions", distributions)
            temperature = policy.pop("temperature", temperature)
            if policy.pop("single_output", True) is not True:
                raise ArgumentError.invalid(
                    "policy['single_output']", "True (multi-output policies are not available yet)",
                    False,
                )
            if policy.pop("use_beta_distribution", False):
                raise ArgumentError(
                    "Give use_beta_distribution=True as an agent argument, not inside 'policy'."
                )
            if policy:
                raise ArgumentError.invalid(
                    f"policy key(s) {sorted(policy)}",
                    "network, distributions, temperature, single_output", policy,
                )
            return network, distributions, temperature
        return policy, distributions, temperature

    @staticmethod
    def _distribution_config(distributions, name, spec):
        if distributions is None:
            return None
        if isinstance(distributions, Mapping) and "type" not in distributions:
            if name in distributions:
                return distributions[name]
            return distributions.get(spec.type)
        return distributions

    def _parse_exploration(self, exploration):
        if isinstance(exploration, Mapping) and "type" not in exploration and all(
            key in self.actions_spec or key in ("bool", "int", "float") for key in exploration
        ):
            return {name: parameters.exploration(
                exploration.get(name, exploration.get(spec.type, 0.0)), spec.type,
                f"exploration['{name}']") for name, spec in self.actions_spec.items()}
        return {name: parameters.exploration(exploration, spec.type, "exploration")
                for name, spec in self.actions_spec.items()}

    def _create_memory(self, memory) -> RecentMemory:
        unit, size = self.update_spec["unit"], self.update_spec["batch_size"]
        if memory in ("minimum", None) or (isinstance(memory, Mapping) and memory.get(
                "type") == "recent" and memory.get("capacity") is None):
            if unit == "timesteps":
                return RecentMemory(capacity=size)
            return RecentMemory(capacity=None, max_episodes=size)
        capacity = memory.get("capacity") if isinstance(memory, Mapping) else memory
        if isinstance(memory, Mapping) and memory.get("type", "recent") != "recent":
            raise ArgumentError.invalid(
                "memory['type']", "'recent' for an on-policy agent", memory.get("type")
            )
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ArgumentError.invalid("memory", "'minimum' or a positive int capacity", memory,
                                        where=f"agent '{self.agent_type}'")
        needed = size if unit == "timesteps" else size * (self.max_episode_timesteps or 1)
        if capacity < needed:
            raise ArgumentError.invalid(
                "memory", f"a capacity >= {needed} timesteps (the update batch)", capacity
            )
        return RecentMemory(capacity=int(capacity), max_episodes=size if unit == "episodes" else None)

    def _largest_batch(self) -> int | None:
        """The most timesteps an update batch can hold (None: unknown)."""
        unit, size = self.update_spec["unit"], self.update_spec["batch_size"]
        if unit == "timesteps":
            return size
        bounds = [self.memory.capacity]
        if self.max_episode_timesteps is not None:
            bounds.append(size * self.max_episode_timesteps)
        bounds = [bound for bound in bounds if bound is not None]
        return min(bounds) if bounds else None

    def _counters(self) -> dict:
        return {"timesteps": self.timesteps, "episodes": self.episodes, "updates": self.updates}

    # ------------------------------------------------------------------ compiled programs
    def _act_program(self, states, masks, exploration, deterministic: bool, with_value: bool,
                     internals=None):
        """Actions (and their log-probabilities and values) of one batch.

        `internals` holds the recurrent networks' states `{'policy/<layer>':
        ..., 'baseline/<layer>': ...}` before this step; the next ones are
        returned under `'internals'`.
        """
        internals = internals or {}

        def call(model, inputs):
            return self._call_policy(model, inputs, exploration, deterministic)

        params, following = sequences.step(
            self.policy_model, states, self._part(internals, "policy"), call=call)
        following = {f"policy/{k}": v for k, v in following.items()}
        actions = {}
        log_prob = None
        for name, dist in self.distributions.items():
            mask = masks.get(name)
            if deterministic:
                action = dist.mode(params[name], mask=mask)
            else:
                action = dist.sample(params[name], self._act_seed, mask=mask)
                parameter = self.exploration[name]
                if not (parameter.is_constant() and parameter.value() == 0.0):
                    action = self._explore(name, action, mask, exploration[name])
            actions[name] = action
            term = dist.log_prob(params[name], action, mask=mask)
            log_prob = term if log_prob is None else log_prob + term
        if not with_value:
            return {"actions": actions, "internals": following} if following else {
                "actions": actions}
        outputs = {"actions": actions, "log_prob": log_prob}
        if self.has_baseline:
            outputs["value"], after = sequences.step(
                self.baseline_model, states, self._part(internals, "baseline"))
            following.update({f"baseline/{k}": v for k, v in after.items()})
        else:
            outputs["value"] = ops.zeros_like(log_prob)
        if following:
            outputs["internals"] = following
        return outputs

    def _internal_names(self, network: str) -> dict[str, tuple]:
        """The internal states of `'policy'` or `'baseline'`, by name, in input order."""
        return self._policy_internals if network == "policy" else self._baseline_internals

    def _part(self, internals: dict, network: str) -> dict:
        """The internal states of one network (`'policy'`, `'baseline'`), in its input order."""
        return {name: internals[f"{network}/{name}"] for name in self._internal_names(network)}

    def _recurrent_train_act(self, states, masks, exploration, slots, starts):
        """The training act of a recurrent agent: the slots' states live on the device.

        Each slot's internal state is read from `_internal_state` (zeros where
        `starts`: the slot's episode begins), and its next state written back.
        The outputs add the states before the step (`'internals'`), which the
        experience stores for the sequence updates.
        """
        keep = 1.0 - ops.cast(starts, "float32")
        internals = {}
        for key, variable in self._internal_state.items():
            value = ops.take(variable, slots, axis=0)
            internals[key] = value * ops.reshape(keep, (-1,) + (1,) * (len(value.shape) - 1))
        outputs = self._act_program(states, masks, exploration, False, True, internals)
        indices = ops.expand_dims(slots, axis=1)
        for key, value in outputs["internals"].items():
            variable = self._internal_state[key]
            variable.assign(ops.scatter_update(variable, indices, value))
        outputs["internals"] = internals
        return outputs

    def _train_act(self, states, masks, slots):
        """Runs the compiled training act on `slots` (with their episode starts if recurrent)."""
        exploration = self._exploration_values(False)
        if not self.recurrent:
            return self._act_train(states, masks, exploration)
        return self._act_train(states, masks, exploration, np.asarray(slots, np.int32),
                               self._episode_timesteps[slots] == 0)

    def _act_recurrent(self, states, masks, deterministic, internals):
        function = self._act_mode if deterministic else self._act_sample
        keyed = {f"policy/{k}": v for k, v in internals.items()}
        outputs = function(states, masks, self._exploration_values(True), keyed)
        actions = {name: np.asarray(outputs["actions"][name]).astype(spec.dtype, copy=False)
                   for name, spec in self.actions_spec.items()}
        following = {name: np.asarray(outputs["internals"][f"policy/{name}"], np.float32)
                     for name in self._policy_internals}
        return actions, following

    def _policy_params(self, batch, training: bool = False):
        """The policy's distribution parameters for every row of an update batch."""
        return self._batch_outputs("policy", batch, training)

    def _baseline_value(self, batch, training: bool = False):
        """The baseline's `V(s)` for every row of an update batch."""
        return self._batch_outputs("baseline", batch, training)

    def _batch_outputs(self, network: str, batch, training: bool):
        """The outputs of the `'policy'` or `'baseline'` model for every row of a batch.

        A recurrent network is unrolled over the batch's sequences from their
        stored internal states (`sequences.unroll`).
        """
        model = self.policy_model if network == "policy" else self.baseline_model
        states = self._batch_states(batch)
        if not self._internal_names(network):
            return kbackend.call_model(model, states, training=training)
        internals = {n: batch[f"internals/{network}/{n}"] for n in self._internal_names(network)}
        return sequences.unroll(model, states, internals, batch["sequence_start"],
                                self.sequence_length, training)

    def _explore(self, name, action, mask, epsilon):
        """Tensorforce exploration: random valid value (int/bool) or Gaussian noise (float)."""
        spec = self.actions_spec[name]
        shape = ops.shape(action)
        if spec.type == "float":
            noisy = action + keras.random.normal(shape, seed=self._act_seed) * epsilon
            if spec.min_value is not None or spec.max_value is not None:
                low = -np.inf if spec.min_value is None else spec.min_value
                high = np.inf if spec.max_value is None else spec.max_value
                noisy = ops.clip(noisy, np.asarray(low, np.float32), np.asarray(high, np.float32))
            return ops.cast(noisy, action.dtype)
        explore = keras.random.uniform(shape, seed=self._act_seed) < epsilon
        if spec.type == "bool":
            random_action = keras.random.uniform(shape, seed=self._act_seed) < 0.5
            return ops.where(explore, random_action, action)
        keys = keras.random.uniform(tuple(shape) + (spec.num_values,), seed=self._act_seed)
        if mask is not None:
            keys = ops.where(mask, keys, -1.0)
        random_action = ops.cast(ops.argmax(keys, axis=-1), action.dtype)
        return ops.where(explore, random_action, action)

    def _subsample_weights(self, valid, num_rows):
        """A random subset of `num_rows` of the valid rows, as float weights."""
        keys = keras.random.uniform(ops.shape(valid), seed=self._update_seed)
        keys = ops.where(valid > 0, keys, 2.0)
        ranks = ops.argsort(ops.argsort(keys))
        return ops.cast(ranks < num_rows, "float32") * valid

    def _batch_states(self, batch):
        return {name: batch[f"states/{name}"] for name in self.states_spec}

    def _batch_masks(self, batch):
        return {name: batch[f"masks/{name}"] for name in self._mask_names}

    def _action_terms(self, params, batch) -> dict:
        """`{action name: (log_prob, entropy)}` of the batch's actions, each `(B,)`."""
        masks = self._batch_masks(batch)
        terms = {}
        for name, dist in self.distributions.items():
            mask = masks.get(name)
            terms[name] = (dist.log_prob(params[name], batch[f"actions/{name}"], mask=mask),
                           dist.entropy(params[name], mask=mask))
        return terms

    @staticmethod
    def _sum_terms(terms: dict):
        """The joint `(log_prob, entropy)`: the sums of the per-action terms."""
        log_prob, entropy = None, None
        for lp, en in terms.values():
            log_prob = lp if log_prob is None else log_prob + lp
            entropy = en if entropy is None else entropy + en
        return log_prob, entropy

    def _log_prob_entropy(self, params, batch):
        return self._sum_terms(self._action_terms(params, batch))

    def _action_metric_names(self, kl: bool) -> tuple[str, ...]:
        """Keys of the per-action metrics (none with a single action).

        Args:
            kl: Whether `approx_kl/<name>` keys are included.

        Returns:
            `entropy/<name>` (and `approx_kl/<name>`) for every action name.
        """
        if len(self.actions_spec) < 2:
            return ()
        names = tuple(f"entropy/{name}" for name in self.actions_spec)
        if kl:
            names += tuple(f"approx_kl/{name}" for name in self.actions_spec)
        return names

    def _action_metrics(self, terms: dict, batch, weights, kl: bool) -> dict:
        """Per-action `entropy/<name>` (and `approx_kl/<name>`) of one step.

        With a single action there are none (the totals say it all). The KL
        estimate compares with the per-action reference log-probabilities
        `log_prob/<name>` that `_update_program` puts into the batch.
        """
        if len(terms) < 2:
            return {}
        metrics = {f"entropy/{name}": _weighted_mean(entropy, weights)
                   for name, (_, entropy) in terms.items()}
        if kl:
            for name, (log_prob, _) in terms.items():
                metrics[f"approx_kl/{name}"] = _approx_kl(
                    log_prob - batch[f"log_prob/{name}"], weights)
        return metrics

    def _kl_after_update(self, batch, weights) -> dict:
        """`approx_kl` (and per action) of the updated policy from the reference one.

        For agents whose objective has no KL metric: one more policy pass on
        the batch after the update, inside the compiled update.
        """
        params = self._policy_params(batch)
        terms = self._action_terms(params, batch)
        log_prob, _ = self._sum_terms(terms)
        metrics = {"approx_kl": _approx_kl(log_prob - batch["log_prob"], weights)}
        for name, (term, _) in terms.items():
            metrics[f"approx_kl/{name}"] = _approx_kl(term - batch[f"log_prob/{name}"], weights)
        return {k: ops.stop_gradient(v) for k, v in metrics.items()}

    def _l2_penalty(self, variables):
        total = 0.0
        for variable in variables:
            if len(variable.shape) >= 2:  # kernels only, as Keras' regularizers
                total = total + ops.sum(ops.square(variable))
        return total

    def value_objective(self, batch, weights, hyper):
        """Baseline loss: mean squared error between V(s) and the returns."""
        value = self._baseline_value(batch, training=True)
        value_loss = _weighted_mean(ops.square(value - batch["return"]), weights)
        return value_loss, {"value_loss": value_loss}

    def policy_objective(self, batch, weights, hyper):  # pragma: no cover - abstract
        raise NotImplementedError

    def _main_objective(self, batch, weights, hyper):
        loss, metrics = self.policy_objective(batch, weights, hyper)
        if self.has_baseline and self.baseline_optimizer_spec is None:
            value_loss, value_metrics = self.value_objective(batch, weights, hyper)
            loss = loss + self.baseline_loss_weight * value_loss
            metrics = {**metrics, **value_metrics}
        l2 = hyper["l2_regularization"]
        loss = loss + l2 * self._l2_penalty(self.policy_model.trainable_variables)
        metrics = {**metrics, "loss": loss}
        return loss, metrics

    def _optimize(self, objective, spec, variables, batch, valid, hyper, steps, rows, names,
                  norm_name="gradient_norm", update_norm_name="update_norm"):
        """Runs `steps` gradient steps of `objective` inside the compiled update.

        Returns the metrics `names` averaged over the steps, plus
        `update_norm_name`: the global norm of the parameter change of the
        whole loop (`‖θ_after − θ_before‖`).
        """
        subsample = not (isinstance(spec.subsampling_fraction, float)
                         and spec.subsampling_fraction >= 1.0)
        before = _snapshot(variables)

        def body(step, totals):
            weights = self._subsample_weights(valid, rows) if subsample else valid
            loss, metrics, norm = kbackend.gradient_step(
                objective, spec.optimizer, variables, batch, weights, hyper,
                clip_norm=spec.clip_norm,
            )
            metrics = {**metrics, norm_name: norm}
            return {k: totals[k] + ops.cast(metrics[k], "float32") for k in totals}

        init = {k: ops.zeros((), "float32") for k in names}
        totals = kbackend.fori_loop(0, steps, body, init)
        metrics = {k: v / ops.cast(steps, "float32") for k, v in totals.items()}
        metrics[update_norm_name] = change_norm(variables, before)
        return metrics

    def _baseline_and_advantage(self, batch, valid, hyper) -> tuple[dict, dict]:
        """The baseline's own optimizer step, then the advantage the policy step uses.

        Returns:
            `(batch, metrics)`: the batch with its final `advantage` (early or
            late, normalized where configured) and the baseline step's metrics.
        """
        metrics = {}
        if self.late_horizon_values:
            batch = self._late_returns(batch)
        if self._return_normalization is not None:
            returns = self._return_normalization.ops(batch["return"], valid)
            batch = {**batch, "return": returns}
            if not (self.has_baseline and self.estimate_advantage):
                batch["advantage"] = returns  # the policy trains on the return itself
        predicted = self.has_baseline and self.gae_decay == 0.0 and self.estimate_advantage
        if predicted and self.early_advantage:
            # Tensorforce's 'early' advantage: the value before the baseline's step.
            batch = self._advantage_from_baseline(batch)
        if self.baseline_optimizer_spec is not None:
            metrics.update(self._optimize(
                self.value_objective, self.baseline_optimizer_spec,
                self._baseline_variables, batch, valid, hyper, hyper["baseline_steps"],
                hyper["baseline_rows"], ("value_loss", "baseline_gradient_norm"),
                norm_name="baseline_gradient_norm", update_norm_name="baseline_update_norm",
            ))
        if predicted and not self.early_advantage:
            # Tensorforce's 'late' advantage (also True): the value after the
            # baseline's step, not the value recorded when acting.
            batch = self._advantage_from_baseline(batch)
        if self.normalize_advantages:
            advantage = batch["advantage"]
            mean = _weighted_mean(advantage, valid)
            std = ops.sqrt(_weighted_mean(ops.square(advantage - mean), valid))
            batch = {**batch, "advantage": (advantage - mean) / (std + 1e-8)}
        return batch, metrics

    def _late_returns(self, batch):
        """Tensorforce's 'late' horizon values: `R_t = G_t + D_t V(s_{t+m})`.

        `G_t` (`horizon_return`), `D_t` (`horizon_discount`) and `s_{t+m}`
        (`horizon_states`) were stored with the segment (`_horizon_fields`);
        `V` is the baseline at the start of this update. Return processing
        follows; without an estimated advantage the policy trains on `R_t`.
        """
        states = {n: batch[f"horizon_states/{n}"] for n in self.states_spec}
        value = ops.stop_gradient(kbackend.call_model(self.baseline_model, states))
        returns = batch["horizon_return"] + batch["horizon_discount"] * value
        if self._return_processing is not None:
            returns = self._return_processing.ops(returns)
        advantage = returns - batch["value"] if self.estimate_advantage else returns
        return {**batch, "return": returns, "advantage": advantage}

    def _advantage_from_baseline(self, batch):
        """The batch with `advantage = return - V(s)`, `V` the baseline as it is now."""
        value = ops.stop_gradient(self._baseline_value(batch))
        return {**batch, "advantage": batch["return"] - value}

    def _update_program(self, batch, valid, hyper):
        # The reference log-probabilities of the importance ratio come from the
        # policy as it is at the start of the update (Tensorforce's semantics):
        # for fresh rollouts this equals the acting policy; for Tensorforce's
        # sliding windows of recent episodes it keeps older episodes usable.
        params = self._policy_params(batch)
        terms = self._action_terms(params, batch)
        reference, _ = self._sum_terms(terms)
        batch = {**batch, "log_prob": ops.stop_gradient(reference)}
        multiple = len(terms) > 1
        if multiple:  # per-action references of the per-action KL metrics
            batch.update({f"log_prob/{name}": ops.stop_gradient(log_prob)
                          for name, (log_prob, _) in terms.items()})
        batch, metrics = self._baseline_and_advantage(batch, valid, hyper)
        has_kl = "approx_kl" in self.policy_metrics
        names = self.policy_metrics + self._action_metric_names(has_kl) + ("loss",
                                                                           "gradient_norm")
        if self.has_baseline and self.baseline_optimizer_spec is None:
            names = names + ("value_loss",)
        metrics.update(self._optimize(
            self._main_objective, self.optimizer_spec, self._main_variables, batch,
            valid, hyper, hyper["steps"], hyper["rows"], names,
        ))
        if multiple and not has_kl:
            metrics.update(self._kl_after_update(batch, valid))
        return metrics

    def _hyper(self, n: int, counters: dict) -> dict:
        """Scalar hyper-parameters of one update (as of `counters`), as host values."""
        hyper = {
            "steps": np.int32(self.optimizer_spec.multi_step),
            "rows": np.int32(self.optimizer_spec.steps_for(n)),
            "entropy_regularization": np.float32(self.entropy_regularization.value(counters)),
            "l2_regularization": np.float32(self.l2_regularization.value(counters)),
        }
        if self.baseline_optimizer_spec is not None:
            hyper["baseline_steps"] = np.int32(self.baseline_optimizer_spec.multi_step)
            hyper["baseline_rows"] = np.int32(self.baseline_optimizer_spec.steps_for(n))
        return hyper

    # ------------------------------------------------------------------ acting
    def _act_batch(self, states, masks, slots, independent, deterministic):
        size = next(iter(states.values())).shape[0]
        if independent:
            function = self._act_mode if deterministic else self._act_sample
        else:
            function = self._act_train
        # Only the masks that were given go to the compiled function (no
        # masking ops otherwise); the memory stores all-True masks for the rest.
        if independent:
            outputs = function(states, masks, self._exploration_values(True))
        else:
            outputs = self._train_act(states, masks, slots)
        masks = self._full_masks(masks, size)
        actions = {
            name: np.asarray(outputs["actions"][name]).astype(spec.dtype, copy=False)
            for name, spec in self.actions_spec.items()
        }
        if independent:
            return actions
        if self._pending_slots is not None:
            self._cut_pending(slots, outputs["value"], states)
        record = {f"states/{k}": v for k, v in states.items()}
        record.update({f"masks/{k}": masks[k] for k in self._mask_names})
        record.update({f"actions/{k}": v for k, v in actions.items()})
        record["log_prob"] = outputs["log_prob"]
        record["value"] = outputs["value"]
        record.update({f"internals/{k}": v for k, v in outputs.get("internals", {}).items()})
        self._buffer.write(slots, record, advance=False)
        return actions

    # ------------------------------------------------------------------ observing
    def _finish_segment(self, slot: int, bootstrap: float | None, episode_end: bool,
                        next_states: dict | None = None) -> None:
        segment = self._buffer.segment(slot)
        self._buffer.clear(slot)
        self._add_segment(segment, bootstrap, episode_end, next_states)

    def _add_segment(self, segment: dict, bootstrap: float | None, episode_end: bool,
                     next_states: dict | None = None) -> None:
        """Computes advantages and returns of a segment and stores it in memory.

        Args:
            segment: The segment's fields.
            bootstrap: The value after the segment, or None (a terminal: 0).
            episode_end: Whether the segment ends its episode.
            next_states: The states after a cut segment (for 'late' horizon
                values); None: the bootstrap is the segment's last state.
        """
        rewards = segment.pop("reward")
        discount = self.discount.value(self._counters())
        if self.late_horizon_values:
            segment.update(self._horizon_fields(segment, rewards, discount,
                                                bootstrap is not None, next_states))
        bootstrap = 0.0 if bootstrap is None else bootstrap
        values = segment["value"] if self.has_baseline else np.zeros_like(segment["value"])
        lam = self.gae_decay if (self.has_baseline and self.gae_decay > 0.0) else 1.0
        if self.unbootstrapped_horizon:
            returns = n_step_returns(rewards, np.zeros_like(values), 0.0, discount, self.horizon)
            advantages = returns - values
        elif self.horizon is not None and self.has_baseline:
            returns = n_step_returns(rewards, values, bootstrap, discount, self.horizon)
            advantages = returns - values
        else:
            advantages, returns = gae(rewards, values, bootstrap, discount, lam)
        if not (self.has_baseline and self.estimate_advantage):
            advantages = returns.copy()
        if self._return_processing is not None:
            returns = self._return_processing(returns).astype(np.float32)
            if self.has_baseline and lam == 1.0:
                advantages = (returns - values).astype(np.float32)
        segment["advantage"] = advantages
        segment["return"] = returns
        if self.recurrent:  # where the sequences of the updates may begin
            segment["sequence_start"] = np.arange(len(returns)) == 0
        self.memory.add(segment, episode_end)

    def _horizon_fields(self, segment, rewards, discount: float, bootstrapped: bool,
                        next_states) -> dict:
        """What a 'late' n-step return needs at update time (`_late_returns`).

        With `m = min(horizon, T - t)`: the partial return
        `G_t = Σ_{k<m} γ^k r_{t+k}`, the discount `D_t = γ^m` (0 where `t + m`
        is the end of a segment that ends in a terminal without bootstrap), and
        the state `s_{t+m}`: a later state of the segment, or past its end the
        state the early values bootstrap from (the next state of a cut, else
        the segment's last state).
        """
        length = len(rewards)
        index = np.arange(length)
        end = np.minimum(index + self.horizon, length)
        fields = {"horizon_return": n_step_returns(rewards, np.zeros(length), 0.0, discount,
                                                   self.horizon)}
        factor = np.power(discount, end - index)
        if not bootstrapped:
            factor = np.where(end == length, 0.0, factor)
        fields["horizon_discount"] = factor.astype(np.float32)
        for name in self.states_spec:
            states = segment[f"states/{name}"]
            after = states[-1:] if next_states is None else np.asarray(next_states[name])[None]
            fields[f"horizon_states/{name}"] = np.concatenate([states, after.astype(
                states.dtype)])[end]
        return fields

    def _observe_batch(self, reward, terminal, slots):
        updates = self._run_due_update()
        if self._reward_processing is not None:
            reward = self._reward_processing(reward).astype(np.float32)
        self._buffer.write(slots, {"reward": reward}, advance=True)
        for slot, code in zip(slots[terminal > 0], terminal[terminal > 0]):
            self._end_episode_segment(int(slot), int(code))
            if self._pending_slots is not None:
                self._pending_slots.discard(int(slot))
        if self._next_update is None or self._pending_slots is not None or self._update_due:
            return updates
        unit = self.update_spec["unit"]
        count = self.episodes if unit == "episodes" else self.timesteps
        if count < self._next_update:
            return updates
        if unit == "episodes":
            if self.memory.num_episodes == 0:
                return updates
            self._run_update()
            return updates + 1
        ongoing = {int(s) for s in np.nonzero(self._buffer.position > 0)[0]}
        if ongoing and self.has_baseline:
            self._pending_slots = ongoing  # finished at the next act of those slots
            self._cut_counters = self._counters()  # the update runs as of the cut
            return updates
        for slot in ongoing:
            self._finish_segment(slot, 0.0, episode_end=False)
        self._run_update()
        return updates + 1

    def _end_episode_segment(self, slot: int, terminal: int) -> None:
        """Ends the episode of `slot` with `terminal` 1 or 2: its segment is stored,
        bootstrapped from the last state's value for an abort (2) or with
        `predict_terminal_values`, when there is a baseline."""
        bootstrap = None
        if self.has_baseline and (terminal == 2 or self.predict_terminal_values):
            position = self._buffer.position[slot]
            bootstrap = float(self._buffer.data["value"][slot, position - 1])
        self._finish_segment(slot, bootstrap, episode_end=True)

    def _abort_episodes(self, slots: np.ndarray) -> None:
        """The segments of `slots` end as at terminal 2 (see `_end_episode_segment`)."""
        for slot in slots:
            if self._buffer.position[slot] > 0:  # else cut by a deferred update at `_end_run`
                self._end_episode_segment(int(slot), 2)

    def _end_run(self, states: Any, slots: np.ndarray) -> int:
        """At the end of a `Runner` run: run a pending (deferred) update now.

        `states` are the environments' current states (what the next `act`
        would have received); their values bootstrap the cut rollouts.
        """
        if self._pending_slots is None:
            return self._run_due_update()
        parsed = self._parser.parse(states)
        size = parsed.size
        masks = self._full_masks(parsed.masks, size)
        values = self._train_act(parsed.states, masks, slots)["value"]
        self._cut_pending(slots, values, parsed.states)
        return self._run_due_update()

    def _cut_pending(self, slots, values, states: dict) -> None:
        """Closes the cut segments of `slots` with their next `states` and their `values`."""
        for row, (slot, value) in enumerate(zip(slots, values)):
            slot = int(slot)
            if slot in self._pending_slots:
                self._finish_segment(slot, float(value), episode_end=False,
                                     next_states={n: v[row] for n, v in states.items()})
                self._pending_slots.discard(slot)
        if not self._pending_slots:
            self._pending_slots = None
            self._update_due = True

    def _run_due_update(self) -> int:
        """Runs the update made due by `_cut_pending`; returns the number run (0 or 1)."""
        if not self._update_due:
            return 0
        self._update_due = False
        self._run_update(self._cut_counters)
        return 1

    def _run_update(self, counters: dict | None = None) -> None:
        """Runs one update on the newest batch in memory.

        Args:
            counters: The timesteps/episodes/updates counters the update runs
                as of (schedules, the next update's count); default: now.
        """
        counters = counters or self._counters()
        unit, size = self.update_spec["unit"], self.update_spec["batch_size"]
        if unit == "episodes":
            batch = self.memory.latest_episodes(size)
        else:
            batch = self.memory.latest_timesteps(size)
        count = counters[unit]
        if self.recurrent:
            batch["sequence_start"][0] = True  # the batch may begin mid-segment
            padded, valid, n = sequences.to_sequences(batch, self.sequence_length)
        else:
            padded, valid, n = pad_batch(
                batch, size=self._padded_sizes(len(batch["log_prob"])))
        self.engine.assign(self.optimizer_spec.learning_rate_variable(),
                           self._checked_learning_rate(
                               "optimizer", self.optimizer_spec.learning_rate.value(counters)))
        if self.baseline_optimizer_spec is not None:
            self.engine.assign(self.baseline_optimizer_spec.learning_rate_variable(),
                               self._checked_learning_rate(
                                   "baseline_optimizer",
                                   self.baseline_optimizer_spec.learning_rate.value(counters)))
        metrics = self._update_program_compiled(padded, valid, self._hyper(n, counters))
        self.last_metrics = self._checked_metrics(metrics)
        self.updates += 1
        if self._plugins:
            self._notify("on_update", self.last_metrics)
        frequency = self.update_spec["frequency"]
        if frequency != "never":
            self._next_update = count + frequency

    def update(self) -> int:
        """Runs one update now on the newest complete data in memory."""
        if self.memory.size == 0:
            return 0
        next_update = self._next_update
        self._run_update()
        self._next_update = next_update
        return 1

    def _evaluate_program(self, states, masks, actions, internals=None):
        """Log-probabilities of given actions and values of given states.

        With recurrent networks, `internals` are their states before this
        step and the next ones are returned under `'internals'`.
        """
        internals = internals or {}
        params, following = sequences.step(self.policy_model, states,
                                           self._part(internals, "policy"))
        following = {f"policy/{k}": v for k, v in following.items()}
        log_prob = None
        for name, dist in self.distributions.items():
            term = dist.log_prob(params[name], actions[name], mask=masks.get(name))
            log_prob = term if log_prob is None else log_prob + term
        if self.has_baseline:
            value, after = sequences.step(self.baseline_model, states,
                                          self._part(internals, "baseline"))
            following.update({f"baseline/{k}": v for k, v in after.items()})
        else:
            value = ops.zeros_like(log_prob)
        outputs = {"log_prob": log_prob, "value": value}
        if following:
            outputs["internals"] = following
        return outputs

    def _evaluate_recurrent(self, states, masks, actions, ends) -> dict:
        """`_evaluate_program` stepped through every episode from the initial state.

        All episodes advance together, one compiled call per timestep of the
        longest one; returns per row the log-probability, the value and the
        internal states before the step.
        """
        ends = np.asarray(ends)
        starts = np.concatenate([[0], ends[:-1] + 1])
        lengths = ends - starts + 1
        size = int(ends[-1]) + 1
        outputs = {"log_prob": np.zeros(size, np.float32), "value": np.zeros(size, np.float32)}
        outputs.update({f"internals/{k}": np.zeros((size, *shape), np.float32)
                        for k, shape in self._internal_shapes_all.items()})
        current = {k: np.zeros((len(starts), *shape), np.float32)
                   for k, shape in self._internal_shapes_all.items()}
        for t in range(int(lengths.max())):
            rows = np.minimum(starts + t, ends)
            active = rows[t < lengths]
            for key, value in current.items():
                outputs[f"internals/{key}"][active] = value[t < lengths]
            result = self._evaluate_compiled(
                {k: v[rows] for k, v in states.items()},
                {k: masks[k][rows] for k in self._mask_names},
                {k: v[rows] for k, v in actions.items()}, current)
            outputs["log_prob"][active] = np.asarray(result["log_prob"])[t < lengths]
            outputs["value"][active] = np.asarray(result["value"])[t < lengths]
            current = {k: np.asarray(v, np.float32) for k, v in result["internals"].items()}
        return outputs

    def _experience(self, states, masks, actions, terminal, reward, internals=None) -> None:
        size = len(terminal)
        masks = self._full_masks(masks, size)
        if not hasattr(self, "_evaluate_compiled"):
            self._evaluate_compiled = self.engine.function(self._evaluate_program, sync=False)
        ends = np.nonzero(terminal)[0]
        if self.recurrent:
            outputs = self._evaluate_recurrent(states, masks, actions, ends)
            if internals is not None:  # the policy's states as recorded when acting
                outputs.update({f"internals/policy/{k}": v for k, v in internals.items()})
        else:
            padded = {f"states/{k}": v for k, v in states.items()}
            padded.update({f"masks/{k}": masks[k] for k in self._mask_names})
            padded.update({f"actions/{k}": v for k, v in actions.items()})
            padded, _, n = pad_batch(padded)
            outputs = self._evaluate_compiled(
                {k: padded[f"states/{k}"] for k in states},
                {k: padded[f"masks/{k}"] for k in self._mask_names},
                {k: padded[f"actions/{k}"] for k in actions},
            )
        start = 0
        for end in ends:
            record = {f"states/{k}": v[start:end + 1] for k, v in states.items()}
            record.update({f"masks/{k}": masks[k][start:end + 1] for k in self._mask_names})
            record.update({f"actions/{k}": v[start:end + 1] for k, v in actions.items()})
            record.update({f"internals/{k}": outputs[f"internals/{k}"][start:end + 1]
                           for k in self._internal_shapes_all})
            record["log_prob"] = np.asarray(outputs["log_prob"][start:end + 1], np.float32)
            record["value"] = np.asarray(outputs["value"][start:end + 1], np.float32)
            record["reward"] = reward[start:end + 1]
            if self._reward_processing is not None:
                record["reward"] = self._reward_processing(record["reward"]).astype(np.float32)
            bootstrap = None
            if self.has_baseline and (terminal[end] == 2 or self.predict_terminal_values):
                bootstrap = float(record["value"][-1])
            self._add_segment(record, bootstrap, episode_end=True)
            start = end + 1

    # ------------------------------------------------------------------ checkpoint state
    def _models(self) -> dict:
        models = {"policy": self.policy_model}
        if self.baseline_model is not None:
            models["baseline"] = self.baseline_model
        return models

    def _state_variables(self) -> dict:
        variables = {f"optimizer/{i}": v for i, v in enumerate(self.optimizer_spec.optimizer.variables)}
        if self.baseline_optimizer_spec is not None:
            variables.update({
                f"baseline_optimizer/{i}": v
                for i, v in enumerate(self.baseline_optimizer_spec.optimizer.variables)
            })
        variables["seed/act"] = self._act_seed.state
        variables["seed/update"] = self._update_seed.state
        return variables

    def _memory_arrays(self) -> dict:
        segments = list(self.memory.segments)
        if not segments:
            return {"segment_lengths": np.zeros(0, np.int64), "segment_ends": np.zeros(0, bool)}
        arrays = {f"field/{k}": np.concatenate([seg[k] for seg, _ in segments])
                  for k in segments[0][0]}
        arrays["segment_lengths"] = np.array([len(seg["log_prob"]) for seg, _ in segments])
        arrays["segment_ends"] = np.array([end for _, end in segments], dtype=bool)
        return arrays

    def _set_memory_arrays(self, arrays: dict) -> None:
        where = "checkpoint of the on-policy memory"
        lengths = np.asarray(arrays.get("segment_lengths", np.zeros(0, np.int64)))
        ends = np.asarray(arrays.get("segment_ends", np.zeros(0, bool)))
        if lengths.ndim != 1 or lengths.dtype.kind not in "iu" or (lengths < 0).any():
            raise ArgumentError.invalid("memory['segment_lengths']",
                                        "a 1-d array of non-negative ints", lengths, where)
        if ends.shape != lengths.shape or ends.dtype.kind != "b":
            raise ArgumentError.invalid("memory['segment_ends']",
                                        f"a bool array of shape {lengths.shape}", ends, where)
        stored = {name: spec for name, spec in self._buffer.fields.items() if name != "reward"}
        stored.update({"advantage": ((), np.float32), "return": ((), np.float32)})
        if self.recurrent:
            stored["sequence_start"] = ((), np.bool_)
        if self.late_horizon_values:
            stored.update({"horizon_return": ((), np.float32),
                           "horizon_discount": ((), np.float32)})
            stored.update({f"horizon_{name}": self._buffer.fields[name]
                           for name in self._buffer.fields if name.startswith("states/")})
        fields = check_saved_fields(arrays, stored, int(lengths.sum()),
                                    ("segment_lengths", "segment_ends"), where)
        self.memory.clear()
        start = 0
        for length, end in zip(lengths, ends):
            self.memory.add({k: v[start:start + length] for k, v in fields.items()}, bool(end))
            start += int(length)

    def _host_state(self) -> dict:
        state = super()._host_state()
        state["next_update"] = self._next_update
        state["padded_sizes"] = self._padded_sizes.state()
        return state

    def _set_host_state(self, state: dict) -> None:
        super()._set_host_state(state)
        self._next_update = self._check_next_update(state, self._next_update)
        if "padded_sizes" in state:  # absent from checkpoints of earlier versions
            self._padded_sizes.set_state(state["padded_sizes"], "host_state['padded_sizes']")

    def _reset_buffers(self) -> None:
        self._buffer.clear(np.arange(self.parallel_interactions))
        self._pending_slots = None
        self._update_due = False
