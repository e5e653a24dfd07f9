"""The generic `tensorforce` agent: an agent composed from parts.

Tensorforce's central idea (`agent='tensorforce'`, also the agent of a spec
without an `agent` key) is one agent whose behaviour is given by its parts:

- `policy`: `'auto'`, a network spec, or `dict(type='parametrized_distributions'
  | 'parametrized_value_policy', network=..., ...)`;
- `memory`: `dict(type='recent' | 'replay', capacity=None)`; an int is a
  replay capacity; None is a recent memory of the minimum capacity;
- `update`: `dict(unit='timesteps' | 'episodes', batch_size, frequency, start)`
  or an int (timesteps);
- `optimizer`: a Keras optimizer with Tensorforce's wrapper options
  (`dict(optimizer='adam', learning_rate, multi_step, subsampling_fraction,
  ...)`, also written as nested `multi_step`/`subsampling_step` wrappers),
  or `dict(optimizer='natural_gradient', learning_rate, ...)`;
- `objective`: what the policy's gradient step minimizes (`Objective`);
- `reward_estimation`: how returns and advantages are formed
  (`RewardEstimation`);
- `baseline`, `baseline_optimizer`, `baseline_objective`: the value function;
- `l2_regularization`, `entropy_regularization`, `state_preprocessing`,
  `exploration`, `variable_noise`, and the `Agent` arguments.

The objectives, with `ρ = π(a|s) / π_old(a|s)`, advantage or return `A`,
target `R` and clipping `c`:

- `policy_gradient()`: `L = -log π(a|s) · A` (REINFORCE);
- `policy_gradient(importance_sampling=True, clipping_value=c)`:
  `L = -min(ρ A, clip(ρ, 1-c, 1+c) A)` (PPO);
- `policy_gradient(importance_sampling=True)` with the `natural_gradient`
  optimizer: `L = -ρ A` maximized in a KL trust region (TRPO);
- `action_value(huber_loss=None)`: `L = (Q(s, a) - R)²` (or Huber), the
  value-policy objective (DQN);
- `deterministic_policy_gradient()`: `L = -Q(s, μ(s))` (DPG);
- the baseline objectives `state_value`: `(V(s) - R)²`, and `action_value`.

`parse(**arguments)` checks the parts (every argument of Tensorforce's
`TensorforceAgent`, its defaults and its validation rules, with the deprecated
names refused naming their replacement) and returns a `Composition`: the
typed parts and the normalized spec that `agent.spec` shows.
`lower(...)` then builds the agent on kerasrl's compiled
update programs. This step composes the parts that the named agents use:

| objective | memory | optimizer | built on |
|---|---|---|---|
| `policy_gradient` | recent | Keras | `VPG` (horizon `'episode'`), `AC`/`A2C` (int horizon) |
| `policy_gradient(importance_sampling, clipping_value)` | recent | Keras | `PPO` |
| `policy_gradient(importance_sampling)` | recent | `natural_gradient` | `TRPO` |
| `action_value` | replay or recent | Keras + `synchronization` baseline | `DQN`, `DoubleDQN` (`predict_action_values`), `DuelingDQN` (`state_value_mode='separate'`) |
| `deterministic_policy_gradient` | replay | Keras | `DDPG` |

Any other combination (the `state_value` objective as the policy's, `plus`,
`linesearch_step`, `evolutionary`, ...)
raises an `ArgumentError` that names the part; these are the next steps of
the generic agent (see `docs/generic-agent.md`).

Example:

```python
agent = Agent.create(
    states=dict(type='float', shape=(4,)), actions=dict(type='int', num_values=2),
    max_episode_timesteps=100,
    update=dict(unit='episodes', batch_size=4),
    optimizer=dict(optimizer='adam', learning_rate=1e-3, multi_step=5),
    objective=dict(type='policy_gradient', importance_sampling=True, clipping_value=0.2),
    reward_estimation=dict(horizon='episode', discount=0.99),
)
assert agent.spec['agent'] == 'tensorforce' and agent.agent_type == 'ppo'
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from kerasrl.errors import ArgumentError, UnknownTypeError
from kerasrl.validation import check_float, check_int

#: Required arguments of the generic agent (besides `states` and `actions`).
REQUIRED = ("update", "optimizer", "objective", "reward_estimation")
#: Optional arguments and their defaults (Tensorforce's `TensorforceAgent`).
DEFAULTS: dict[str, Any] = {
    "max_episode_timesteps": None,
    "policy": "auto",
    "memory": None,
    "baseline": None,
    "baseline_optimizer": None,
    "baseline_objective": None,
    "l2_regularization": 0.0,
    "entropy_regularization": 0.0,
    "state_preprocessing": "linear_normalization",
    "exploration": 0.0,
    "variable_noise": 0.0,
    "parallel_interactions": 1,
    "config": None,
    "saver": None,
    "summarizer": None,
    "tracking": None,
    "recorder": None,
}
#: Deprecated arguments and what replaces them.
DEPRECATED = {
    "estimate_actions": "reward_estimation['predict_action_values']",
    "estimate_terminal": "reward_estimation['predict_terminal_values']",
    "baseline_policy": "baseline",
    "reward_preprocessing": "reward_estimation['reward_processing']",
    "name": "config['name']",
    "buffer_observe": "config['buffer_observe']",
    "device": "config['device']",
    "seed": "config['seed']",
}
REWARD_ESTIMATION_KEYS = (
    "horizon", "discount", "predict_horizon_values", "estimate_advantage",
    "predict_action_values", "predict_terminal_values", "reward_processing",
    "return_processing", "advantage_processing", "trace_decay", "gae_decay",
)
OBJECTIVES = ("policy_gradient", "value", "state_value", "action_value",
              "deterministic_policy_gradient", "plus")
#: Objective types that only a later step of the generic agent composes.
_LATER_OBJECTIVES = ("plus",)
#: Optimizer types of Tensorforce that are not Keras optimizers.
META_OPTIMIZERS = ("natural_gradient", "evolutionary", "linesearch_step", "multi_step",
                   "subsampling_step", "clipping_step", "doublecheck_step", "optimizing_step",
                   "global_optimizer", "synchronization", "plus")
_WHERE = "agent 'tensorforce'"


def _later(part: str, value: Any, hint: str = "") -> ArgumentError:
    """The error for a part that this version's generic agent does not compose yet."""
    return ArgumentError(
        f"The generic agent does not compose {part}={value!r} yet{hint}. Supported today: "
        "policy_gradient with a recent memory (VPG/AC/A2C/PPO/TRPO updates), action_value "
        "with a replay or recent memory (DQN family), deterministic_policy_gradient with a replay "
        "memory (DPG); see docs/generic-agent.md."
    )


@dataclasses.dataclass(frozen=True)
class Objective:
    """One objective (Tensorforce's `objective` / `baseline_objective`).

    Attributes:
        type: `'policy_gradient'`, `'value'`, `'deterministic_policy_gradient'`
            or `'plus'` (`state_value`/`action_value` are `'value'` with
            `value='state'|'action'`).
        importance_sampling: policy_gradient: use the ratio `ρ` (else `log π`).
        clipping_value: policy_gradient: `c` of the clipped ratio, or None.
        early_reduce: Reduce over actions before the loss (True).
        value: value: `'state'` (V) or `'action'` (Q).
        huber_loss: value: Huber threshold, or None for the squared error.
        objectives: plus: the two summed objectives.
    """

    type: str
    importance_sampling: bool = False
    clipping_value: float | None = None
    early_reduce: bool = True
    value: str = "state"
    huber_loss: float | None = None
    objectives: tuple = ()

    def get_config(self) -> dict:
        """The normalized spec of the objective."""
        if self.type == "policy_gradient":
            return {"type": self.type, "importance_sampling": self.importance_sampling,
                    "clipping_value": self.clipping_value, "early_reduce": self.early_reduce}
        if self.type == "value":
            return {"type": f"{self.value}_value", "huber_loss": self.huber_loss,
                    "early_reduce": self.early_reduce}
        if self.type == "plus":
            return {"type": "plus", "objective1": self.objectives[0].get_config(),
                    "objective2": self.objectives[1].get_config()}
        return {"type": self.type}


def parse_objective(spec: Any, argument: str = "objective") -> Objective:
    """Parses an objective spec (a type name or a dict with `type` and arguments).

    Args:
        spec: E.g. `'policy_gradient'` or `dict(type='policy_gradient',
            importance_sampling=True, clipping_value=0.25)`.
        argument: Argument name for error messages.

    Returns:
        The `Objective`.

    Raises:
        UnknownTypeError: an unknown type; ArgumentError: unknown keys or bad values.
    """
    options = {"type": spec} if isinstance(spec, str) else (
        dict(spec) if isinstance(spec, Mapping) else None)
    if options is None:
        raise ArgumentError.invalid(argument, "an objective name or dict(type=...)", spec,
                                    where=_WHERE)
    type_ = options.pop("type", None)
    if type_ not in OBJECTIVES:
        raise UnknownTypeError.invalid(f"{argument}['type']", f"one of {OBJECTIVES}", type_,
                                       where=_WHERE)
    allowed = {
        "policy_gradient": ("importance_sampling", "clipping_value", "early_reduce"),
        "value": ("value", "huber_loss", "early_reduce"),
        "state_value": ("huber_loss", "early_reduce"),
        "action_value": ("huber_loss", "early_reduce"),
        "deterministic_policy_gradient": ("early_reduce",),
        "plus": ("objective1", "objective2"),
    }[type_]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ArgumentError.invalid(f"{argument} key(s) {unknown}", f"keys among {allowed}",
                                    spec, where=_WHERE)
    early_reduce = options.get("early_reduce", True)
    if not isinstance(early_reduce, bool):
        raise ArgumentError.invalid(f"{argument}['early_reduce']", "a bool", early_reduce)
    if type_ == "policy_gradient":
        importance = options.get("importance_sampling", False)
        if not isinstance(importance, bool):
            raise ArgumentError.invalid(f"{argument}['importance_sampling']", "a bool",
                                        importance)
        clip = check_float(options.get("clipping_value"), f"{argument}['clipping_value']",
                           low=0.0, low_open=True, allow_none=True, where=_WHERE)
        return Objective("policy_gradient", importance, clip, early_reduce)
    if type_ in ("value", "state_value", "action_value"):
        value = options.get("value", "state") if type_ == "value" else type_.split("_")[0]
        if value not in ("state", "action"):
            raise ArgumentError.invalid(f"{argument}['value']", "'state' or 'action'", value)
        huber = check_float(options.get("huber_loss"), f"{argument}['huber_loss']", low=0.0,
                            low_open=True, allow_none=True, where=_WHERE)
        return Objective("value", early_reduce=early_reduce, value=value, huber_loss=huber)
    if type_ == "plus":
        missing = [key for key in allowed if key not in options]
        if missing:
            raise ArgumentError(f"Missing {argument} key(s) {missing} of a 'plus' objective.")
        return Objective("plus", objectives=(
            parse_objective(options["objective1"], f"{argument}['objective1']"),
            parse_objective(options["objective2"], f"{argument}['objective2']")))
    return Objective(type_, early_reduce=early_reduce)


@dataclasses.dataclass(frozen=True)
class RewardEstimation:
    """How returns and advantages are estimated (Tensorforce's `reward_estimation`).

    With rewards `r`, discount `γ`, horizon `n` and the baseline's value `V`:
    the return is `R_t = Σ_{k<n} γ^k r_{t+k} + γ^n V(s_{t+n})` (for horizon
    `'episode'`, the discounted sum to the end of the episode; a cut or
    aborted episode is bootstrapped with `V`); with `estimate_advantage` the
    policy is trained on `A_t = R_t - V(s_t)`, else on `R_t`.

    Attributes:
        horizon: `'episode'` or an int `n >= 1`.
        discount: `γ` (a parameter spec or float).
        predict_horizon_values: `False`, `'early'` (predicted when written to
            memory) or `'late'` (at update time).
        estimate_advantage: `False`, `True`, `'early'` or `'late'`.
        predict_action_values: Bootstrap and advantage with `Q(s, a)`.
        predict_terminal_values: Bootstrap true terminals too.
        reward_processing, return_processing, advantage_processing: Processing
            specs (None for none). `advantage_processing` applies to what the
            policy is trained on: the advantage, or the return when
            `estimate_advantage` is False (as kerasrl's `ppo` does; Tensorforce
            refuses it there in the generic agent and ignores it in `ppo`).
        trace_decay: TD(λ) decay (1.0: off).
        gae_decay: GAE λ (0.0: off).
    """

    horizon: Any
    discount: Any = 1.0
    predict_horizon_values: Any = False
    estimate_advantage: Any = False
    predict_action_values: bool = False
    predict_terminal_values: bool = False
    reward_processing: Any = None
    return_processing: Any = None
    advantage_processing: Any = None
    trace_decay: float = 1.0
    gae_decay: float = 0.0

    def get_config(self) -> dict:
        """The normalized spec (every key, Tensorforce's order)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def parse_reward_estimation(spec: Any, has_baseline: bool) -> RewardEstimation:
    """Checks `reward_estimation` and fills in Tensorforce's defaults.

    Args:
        spec: The dict (`horizon` required).
        has_baseline: Whether a baseline or baseline objective is given (without
            one, `predict_horizon_values` defaults to False).

    Returns:
        The `RewardEstimation`.

    Raises:
        ArgumentError: unknown keys, a missing horizon, or bad values.
    """
    argument = "reward_estimation"
    if not isinstance(spec, Mapping):
        raise ArgumentError.invalid(argument, "a dict with 'horizon'", spec, where=_WHERE)
    unknown = sorted(set(spec) - set(REWARD_ESTIMATION_KEYS))
    if unknown:
        raise ArgumentError.invalid(f"{argument} key(s) {unknown}",
                                    f"keys among {REWARD_ESTIMATION_KEYS}", spec, where=_WHERE)
    if "horizon" not in spec:
        raise ArgumentError(f"Missing {argument}['horizon'] of {_WHERE}: 'episode' or an int "
                            ">= 1.")
    horizon = spec["horizon"]
    if horizon != "episode":
        horizon = check_int(horizon, f"{argument}['horizon']", minimum=1, where=_WHERE)
    discount = spec.get("discount", 1.0)
    if discount is None:
        discount = 1.0
    if isinstance(discount, (int, float, np.number)) and not isinstance(discount, bool):
        discount = check_float(discount, f"{argument}['discount']", low=0.0, high=1.0,
                               where=_WHERE)
    default_prediction = "early" if horizon == "episode" else "late"
    if "predict_horizon_values" in spec and spec["predict_horizon_values"] is not None:
        prediction = spec["predict_horizon_values"]
    else:
        prediction = default_prediction if has_baseline else False
    if prediction not in (False, "early", "late"):
        raise ArgumentError.invalid(f"{argument}['predict_horizon_values']",
                                    "False, 'early' or 'late'", prediction, where=_WHERE)
    if horizon == "episode" and prediction == "late":
        raise ArgumentError.invalid(f"{argument}['predict_horizon_values']",
                                    "False or 'early' for horizon 'episode'", prediction)
    advantage = spec.get("estimate_advantage", False)
    if advantage not in (False, True, "early", "late") or advantage is None:
        raise ArgumentError.invalid(f"{argument}['estimate_advantage']",
                                    "False, True, 'early' or 'late'", advantage, where=_WHERE)
    flags = {}
    for key in ("predict_action_values", "predict_terminal_values"):
        flags[key] = spec.get(key, False)
        if not isinstance(flags[key], bool):
            raise ArgumentError.invalid(f"{argument}['{key}']", "a bool", flags[key])
    trace = check_float(spec.get("trace_decay", 1.0), f"{argument}['trace_decay']", low=0.0,
                        high=1.0, where=_WHERE)
    gae = check_float(spec.get("gae_decay", 0.0), f"{argument}['gae_decay']", low=0.0,
                      high=1.0, where=_WHERE)
    return RewardEstimation(
        horizon, discount, prediction, advantage, flags["predict_action_values"],
        flags["predict_terminal_values"], spec.get("reward_processing"),
        spec.get("return_processing"), spec.get("advantage_processing"), trace, gae)


@dataclasses.dataclass(frozen=True)
class Composition:
    """The checked parts of a generic agent.

    Attributes:
        objective, baseline_objective: `Objective`s (the latter may be None).
        reward_estimation: The `RewardEstimation`.
        memory: `(type, capacity)`, capacity None for the minimum.
        optimizer: The optimizer spec dict.
        arguments: Every other argument, defaults filled in.
        spec: The normalized spec (`agent='tensorforce'`).
    """

    objective: Objective
    baseline_objective: Objective | None
    reward_estimation: RewardEstimation
    memory: tuple[str, int | None]
    optimizer: dict
    arguments: dict
    spec: dict


def _memory(spec: Any) -> tuple[str, int | None]:
    if spec is None:
        return "recent", None
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return "replay", check_int(spec, "memory", minimum=1, where=_WHERE)
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"type", "capacity", "device"})
        if unknown:
            raise ArgumentError.invalid(f"memory key(s) {unknown}", "type, capacity, device",
                                        spec, where=_WHERE)
        type_ = spec.get("type", "replay")
        if type_ not in ("recent", "replay"):
            raise UnknownTypeError.invalid("memory['type']", "'recent' or 'replay'", type_,
                                           where=_WHERE)
        return type_, check_int(spec.get("capacity"), "memory['capacity']", minimum=1,
                                allow_none=True, where=_WHERE)
    raise ArgumentError.invalid("memory", "None, an int (replay capacity) or "
                                "dict(type='recent'|'replay', capacity=...)", spec, where=_WHERE)


def _optimizer(spec: Any, argument: str) -> dict:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise ArgumentError.invalid(argument, "an optimizer name or dict", spec, where=_WHERE)
    return dict(spec)


#: Tensorforce's step wrappers that kerasrl's update loop runs, with their argument and the
#: wrapper-form key it becomes, outermost first.
STEP_WRAPPERS = {"multi_step": ("num_steps", "multi_step"),
                 "subsampling_step": ("fraction", "subsampling_fraction")}


def flatten_step_wrappers(spec: Mapping, argument: str) -> dict:
    """Nested `multi_step`/`subsampling_step` wrappers as one wrapper-form dict.

    `multi_step(optimizer, num_steps=n)` repeats the inner step `n` times on
    the same batch; `subsampling_step(optimizer, fraction=f)` makes the inner
    step on a random share `f` of the batch's rows (an int: that many rows).
    kerasrl's update loop runs `multi_step` gradient steps, each on a fresh
    subsample, i.e. `multi_step(subsampling_step(keras optimizer))`, the
    nesting of Tensorforce's wrapper form
    `dict(optimizer='adam', multi_step=n, subsampling_fraction=f)`; each
    wrapper may also come alone.

    Args:
        spec: An optimizer dict.
        argument: Its argument name, for errors.

    Returns:
        `spec` itself if it is no step wrapper, else the inner Keras optimizer
        dict with `multi_step` and `subsampling_fraction` set.

    Raises:
        ArgumentError: unknown or missing wrapper keys; a nesting the loop does
            not run (subsampling outside multi_step, a wrapper twice, a wrapper
            over a meta optimizer or over the wrapper form).

    Example:

    >>> flatten_step_wrappers(dict(type='multi_step', num_steps=5, optimizer=dict(
    ...     type='subsampling_step', fraction=0.5, optimizer=dict(
    ...         type='adam', learning_rate=1e-3))), 'optimizer')
    {'type': 'adam', 'learning_rate': 0.001, 'multi_step': 5, 'subsampling_fraction': 0.5}
    """
    flat, seen, inner = {}, [], dict(spec)
    while inner.get("type") in STEP_WRAPPERS:
        type_ = inner["type"]
        key, flat_key = STEP_WRAPPERS[type_]
        unknown = sorted(set(inner) - {"type", "optimizer", key})
        if unknown:
            raise ArgumentError.invalid(f"{argument} key(s) {unknown}", f"keys among type, "
                                        f"optimizer, {key} for {type_}", spec,
                                        where=_WHERE)
        if key not in inner or "optimizer" not in inner:
            raise ArgumentError(f"Missing argument '{key}' or 'optimizer' of the {type_} "
                                f"optimizer in {argument} of {_WHERE}: received {spec!r}.")
        if type_ in seen or (type_ == "multi_step" and "subsampling_step" in seen):
            raise _later(argument, dict(spec), " (multi_step over subsampling_step, each "
                         "at most once, is composed)")
        seen.append(type_)
        flat[flat_key] = inner[key]
        inner = _optimizer(inner["optimizer"], argument)
    if not seen:
        return dict(spec)
    if optimizer_type(inner) in META_OPTIMIZERS or set(flat) & set(inner):
        raise _later(argument, dict(spec), " (multi_step/subsampling_step over a Keras "
                     "optimizer is composed)")
    return {**inner, **flat}


def optimizer_type(spec: Mapping) -> str:
    """The type of an optimizer dict: its `type`, else (wrapper form) its `optimizer` key.

    A meta optimizer names what it wraps in `optimizer`
    (`dict(type='linesearch_step', optimizer='adam')`), so `type` comes first.
    """
    type_ = spec.get("type")
    if type_ in (None, "optimizer_wrapper"):
        type_ = spec.get("optimizer") or "adam"
    return type_


def parse(**arguments: Any) -> Composition:
    """Checks the arguments of the generic agent (Tensorforce's §1.4 rules).

    Args:
        **arguments: `states`, `actions`, the required `update`, `optimizer`,
            `objective`, `reward_estimation`, and the optional arguments of
            `DEFAULTS`.

    Returns:
        The `Composition`.

    Raises:
        ArgumentError: a missing required, unknown or deprecated argument, or a
            bad value (naming it).
    """
    for key, replacement in DEPRECATED.items():
        if key in arguments:
            raise ArgumentError(
                f"Argument '{key}' of {_WHERE} is deprecated; use {replacement} instead.")
    missing = [key for key in ("states", "actions", *REQUIRED) if arguments.get(key) is None]
    if missing:
        raise ArgumentError(f"Missing required argument(s) {missing} of {_WHERE} (required: "
                            f"states, actions, {', '.join(REQUIRED)}).")
    known = {"states", "actions", *REQUIRED, *DEFAULTS}
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise ArgumentError.invalid(f"argument(s) {unknown}", f"arguments among {sorted(known)}",
                                    {key: arguments[key] for key in unknown}, where=_WHERE)
    values = {**DEFAULTS, **arguments}
    objective = parse_objective(values["objective"])
    baseline_objective = None if values["baseline_objective"] is None else parse_objective(
        values["baseline_objective"], "baseline_objective")
    has_baseline = values["baseline"] is not None or baseline_objective is not None
    estimation = parse_reward_estimation(values["reward_estimation"], has_baseline)
    memory = _memory(values["memory"])
    optimizer = flatten_step_wrappers(_optimizer(values["optimizer"], "optimizer"), "optimizer")
    spec = {"agent": "tensorforce"}
    spec.update({key: values[key] for key in ("states", "actions", *REQUIRED, *DEFAULTS)})
    spec["objective"] = objective.get_config()
    if baseline_objective is not None:
        spec["baseline_objective"] = baseline_objective.get_config()
    spec["reward_estimation"] = estimation.get_config()
    spec["memory"] = {"type": memory[0], "capacity": memory[1]}
    if isinstance(values["baseline_optimizer"], Mapping):
        values["baseline_optimizer"] = flatten_step_wrappers(values["baseline_optimizer"],
                                                             "baseline_optimizer")
    return Composition(objective, baseline_objective, estimation, memory, optimizer,
                       values, spec)


def _policy_network(policy: Any, policy_type: str) -> tuple[Any, dict]:
    """The network of a policy spec and the agent options it carries.

    A policy dict without `type` (`dict(network=...)`) is the composition's
    policy type, as in Tensorforce.
    """
    if isinstance(policy, Mapping) and "type" not in policy and "network" in policy:
        policy = {"type": policy_type, **policy}
    if not (isinstance(policy, Mapping) and policy.get("type") in (
            "parametrized_distributions", "parametrized_value_policy")):
        return policy, {}
    if policy["type"] != policy_type:
        raise _later("policy['type']", policy["type"], f" with this objective (expected "
                     f"'{policy_type}')")
    options = dict(policy)
    extra = {}
    if "use_beta_distribution" in options:
        extra["use_beta_distribution"] = bool(options.pop("use_beta_distribution"))
    return options, extra


#: Arguments the generic agent passes unchanged to the agent it is built on.
_PASSED = ("states", "actions", "max_episode_timesteps", "update", "l2_regularization",
           "entropy_regularization", "state_preprocessing", "exploration", "variable_noise",
           "parallel_interactions", "config", "saver", "summarizer", "tracking", "recorder")


def _implementation_arguments(parts: Composition) -> dict:
    """The arguments every composition passes: `_PASSED` and the returns' options."""
    values, estimation = parts.arguments, parts.reward_estimation
    return {
        **{key: values[key] for key in _PASSED},
        "discount": estimation.discount,
        "predict_terminal_values": estimation.predict_terminal_values,
        "reward_processing": estimation.reward_processing,
        "return_processing": estimation.return_processing,
    }


def _horizon_arguments(estimation: RewardEstimation) -> dict:
    """An int horizon and when its bootstrap values are predicted ('early', 'late', False)."""
    return {"horizon": estimation.horizon,
            "predict_horizon_values": estimation.predict_horizon_values}


def _lower_policy_gradient(parts: Composition) -> tuple[str, dict]:
    objective, estimation, values = parts.objective, parts.reward_estimation, parts.arguments
    if parts.memory[0] != "recent":
        raise _later("memory", {"type": parts.memory[0]}, " with a policy_gradient objective")
    if not objective.early_reduce:
        raise _later("objective['early_reduce']", False)
    if estimation.predict_action_values:
        raise _later("reward_estimation['predict_action_values']", True,
                     " with a policy_gradient objective")
    if estimation.trace_decay != 1.0:
        raise _later("reward_estimation['trace_decay']", estimation.trace_decay)
    baseline = values["baseline"]
    if isinstance(baseline, Mapping) and (baseline.get("type") == "parametrized_state_value" or (
            "type" not in baseline and "network" in baseline)):
        # a policy dict without type is the composition's: here a state-value baseline
        baseline = baseline.get("network", "auto")
    elif isinstance(baseline, Mapping) and baseline.get("type") in (
            "parametrized_distributions", "parametrized_action_value",
            "parametrized_value_policy"):
        raise _later("baseline['type']", baseline["type"], " (a parametrized_state_value "
                     "baseline is composed)")
    if parts.baseline_objective is not None:
        if baseline is None:
            raise _later("baseline_objective", parts.baseline_objective.get_config(),
                         " without a baseline network (the policy as its own baseline)")
        if parts.baseline_objective.type != "value" or parts.baseline_objective.value != (
                "state") or parts.baseline_objective.huber_loss is not None:
            raise _later("baseline_objective", parts.baseline_objective.get_config(),
                         " (state_value without huber_loss is composed)")
    network, extra = _policy_network(values["policy"], "parametrized_distributions")
    arguments = {
        **_implementation_arguments(parts), "policy": network,
        "memory": parts.memory[1] or "minimum", "baseline": baseline,
        "advantage_processing": estimation.advantage_processing, **extra,
    }
    optimizer = dict(parts.optimizer)
    if optimizer_type(optimizer) == "natural_gradient":
        if not objective.importance_sampling or objective.clipping_value is not None:
            raise _later("objective", objective.get_config(),
                         " with the natural_gradient optimizer (importance_sampling=True, no "
                         "clipping_value is composed)")
        if estimation.horizon != "episode":
            raise _later("reward_estimation['horizon']", estimation.horizon,
                         " with the natural_gradient optimizer")
        optimizer.pop("optimizer", None)
        optimizer.pop("type", None)
        renamed = {"cg_max_iterations": "cg_iterations"}
        allowed = ("learning_rate", "cg_max_iterations", "cg_damping", "only_positive_updates",
                   "subsampling_fraction", "linesearch_iterations", "backtracking_factor")
        unknown = sorted(set(optimizer) - set(allowed))
        if unknown:
            raise ArgumentError.invalid(f"optimizer key(s) {unknown}", f"keys among {allowed}",
                                        parts.optimizer, where=_WHERE)
        if optimizer.pop("only_positive_updates", True) is not True:
            raise _later("optimizer['only_positive_updates']", False)
        arguments.update({renamed.get(k, k): v for k, v in optimizer.items()})
        arguments["baseline_optimizer"] = values["baseline_optimizer"]
        arguments["gae_decay"] = estimation.gae_decay
        arguments["estimate_advantage"] = estimation.estimate_advantage
        return "trpo", arguments
    if optimizer_type(optimizer) in META_OPTIMIZERS:
        raise _later("optimizer", parts.optimizer)
    arguments["optimizer"] = optimizer
    if objective.importance_sampling:
        if objective.clipping_value is None:
            raise _later("objective", objective.get_config(), " with a Keras optimizer "
                         "(importance sampling needs clipping_value, i.e. PPO)")
        arguments.update(likelihood_ratio_clipping=objective.clipping_value,
                         baseline_optimizer=values["baseline_optimizer"],
                         gae_decay=estimation.gae_decay,
                         estimate_advantage=estimation.estimate_advantage)
        if estimation.horizon != "episode":
            arguments.update(_horizon_arguments(estimation))
        return "ppo", arguments
    if objective.clipping_value is not None:
        raise _later("objective", objective.get_config(),
                     " (clipping_value without importance_sampling)")
    if estimation.horizon == "episode":
        arguments.update(baseline_optimizer=values["baseline_optimizer"],
                         gae_decay=estimation.gae_decay,
                         estimate_advantage=estimation.estimate_advantage)
        return "vpg", arguments
    if estimation.gae_decay != 0.0:
        raise _later("reward_estimation['gae_decay']", estimation.gae_decay,
                     " with an int horizon")
    if baseline is None:  # no horizon values (parse makes them False): n-step reward sums
        if estimation.predict_horizon_values is not False:
            raise _later("reward_estimation['predict_horizon_values']",
                         estimation.predict_horizon_values, " without a baseline (the policy "
                         "as its own baseline)")
        arguments.update(_horizon_arguments(estimation))
        return "vpg", arguments
    arguments.update(_horizon_arguments(estimation))
    if estimation.estimate_advantage:
        arguments["estimate_advantage"] = estimation.estimate_advantage
    arguments["critic"] = arguments.pop("baseline")
    arguments["critic_optimizer"] = 1.0 if values["baseline_optimizer"] is None else (
        values["baseline_optimizer"])
    return ("a2c" if estimation.estimate_advantage else "ac"), arguments


def _replay_arguments(parts: Composition, policy_type: str,
                      recent: bool = False) -> tuple[Any, dict]:
    """The arguments of a composition on the replay base.

    With `recent` a recent memory is composed too: each update trains on the
    newest `batch_size` transitions (capacity default: `batch_size`).
    """
    values, estimation = parts.arguments, parts.reward_estimation
    memory_type, capacity = parts.memory
    if memory_type == "recent" and recent:
        update = values["update"]
        batch_size = update.get("batch_size") if isinstance(update, Mapping) else update
        memory = {"type": "recent", "capacity": capacity or batch_size}
    elif memory_type == "replay" and capacity is not None:
        memory = capacity
    else:
        raise _later("memory", {"type": memory_type, "capacity": capacity},
                     f" with a {parts.objective.type} objective (a replay memory with a "
                     f"capacity{' or a recent memory' if recent else ''} is composed)")
    if estimation.horizon == "episode":
        raise _later("reward_estimation['horizon']", "episode",
                     f" with a {parts.objective.type} objective")
    if estimation.estimate_advantage is not False or estimation.gae_decay != 0.0 or (
            estimation.trace_decay != 1.0) or estimation.advantage_processing is not None:
        raise _later("reward_estimation", estimation.get_config(),
                     f" with a {parts.objective.type} objective (no advantage estimation)")
    if estimation.predict_horizon_values not in ("late", False):
        raise _later("reward_estimation['predict_horizon_values']",
                     estimation.predict_horizon_values, " with a replay memory (use 'late')")
    optimizer = dict(parts.optimizer)
    if optimizer_type(optimizer) in META_OPTIMIZERS:
        raise _later("optimizer", parts.optimizer)
    # A replay agent's gradient steps each sample a fresh minibatch (with a
    # recent memory: each takes the newest one): the optimizer's multi_step
    # is the agent's.
    multi_step = optimizer.pop("multi_step", 1)
    if optimizer.get("subsampling_fraction", 1.0) in (1, 1.0):
        optimizer.pop("subsampling_fraction", None)
    network, extra = _policy_network(values["policy"], policy_type)
    arguments = {
        **_implementation_arguments(parts), "memory": memory, "optimizer": optimizer,
        "multi_step": multi_step, "horizon": estimation.horizon, **extra,
    }
    return network, arguments


def _lower_action_value(parts: Composition) -> tuple[str, dict]:
    values, estimation = parts.arguments, parts.reward_estimation
    if parts.objective.value != "action":
        raise _later("objective", parts.objective.get_config(),
                     " (the state_value objective as the policy's objective)")
    network, arguments = _replay_arguments(parts, "parametrized_value_policy", recent=True)
    mode = "implicit"
    if isinstance(network, Mapping):
        mode = network.get("state_value_mode", "separate")
        network = {k: v for k, v in network.items() if k != "state_value_mode"}
    if mode not in ("implicit", "separate"):
        raise ArgumentError.invalid("policy['state_value_mode']", "'implicit' or 'separate'",
                                    mode, where=_WHERE)
    baseline = values["baseline"]
    if baseline is not None and baseline != values["policy"]:
        raise _later("baseline", baseline, " other than a copy of the policy (the target "
                     "network)")
    if parts.baseline_objective is not None:
        raise _later("baseline_objective", parts.baseline_objective.get_config(),
                     " with an action_value objective")
    sync = values["baseline_optimizer"]
    if baseline is not None:
        if not (isinstance(sync, Mapping) and sync.get("type") == "synchronization"):
            raise _later("baseline_optimizer", sync, " for the target network (a "
                         "synchronization optimizer is composed)")
        unknown = sorted(set(sync) - {"type", "update_weight", "sync_frequency"})
        if unknown:
            raise ArgumentError.invalid(f"baseline_optimizer key(s) {unknown}",
                                        "update_weight, sync_frequency", sync, where=_WHERE)
        arguments["target_update_weight"] = sync.get("update_weight", 1.0)
        arguments["target_sync_frequency"] = sync.get("sync_frequency") or 1
    elif sync is not None:
        raise ArgumentError.invalid("baseline_optimizer", "None without a baseline", sync,
                                    where=_WHERE)
    arguments["policy"] = network
    arguments["huber_loss"] = parts.objective.huber_loss
    if mode == "separate":
        if not estimation.predict_action_values:
            raise _later("policy['state_value_mode']", "separate",
                         " without predict_action_values (dueling is composed as double DQN)")
        return "dueling_dqn", arguments
    return ("double_dqn" if estimation.predict_action_values else "dqn"), arguments


def _lower_deterministic(parts: Composition) -> tuple[str, dict]:
    values, estimation = parts.arguments, parts.reward_estimation
    network, arguments = _replay_arguments(parts, "parametrized_distributions")
    if isinstance(network, Mapping):
        options = dict(network)
        options.pop("type")
        if options.pop("temperature", 0.0) not in (0, 0.0):
            raise _later("policy['temperature']", "non-zero",
                         " with a deterministic_policy_gradient objective")
        options.pop("single_output", None)
        options.pop("distributions", None)
        network = options.pop("network", "auto")
        if options:
            raise ArgumentError.invalid(f"policy key(s) {sorted(options)}",
                                        "network, temperature, distributions", values["policy"])
    if not estimation.predict_action_values:
        raise _later("reward_estimation['predict_action_values']", False,
                     " with a deterministic_policy_gradient objective")
    critic = values["baseline"]
    if isinstance(critic, Mapping) and critic.get("type") == "parametrized_action_value":
        critic = critic.get("network", "auto")
    if critic is None:
        raise _later("baseline", None, " with a deterministic_policy_gradient objective "
                     "(an action-value critic is required)")
    objective = parts.baseline_objective
    if objective is not None and (objective.type != "value" or objective.value != "action"
                                  or objective.huber_loss is not None):
        raise _later("baseline_objective", objective.get_config(),
                     " (action_value without huber_loss is composed)")
    arguments.update(network=network, critic=critic,
                     critic_optimizer=1.0 if values["baseline_optimizer"] is None else (
                         values["baseline_optimizer"]))
    return "ddpg", arguments


def lower(**arguments: Any) -> tuple[str, dict, dict]:
    """Maps a generic spec onto the agent that implements its composition.

    Args:
        **arguments: The generic agent's arguments (see `parse`).

    Returns:
        `(agent key, its arguments, the normalized generic spec)`.

    Raises:
        ArgumentError: a bad argument, or a composition this version does not
            build yet (naming the part).
    """
    parts = parse(**arguments)
    if parts.objective.type in _LATER_OBJECTIVES:
        raise _later("objective", parts.objective.get_config())
    if parts.arguments["baseline_optimizer"] is not None and (
            parts.arguments["baseline"] is None and parts.baseline_objective is None):
        raise ArgumentError.invalid("baseline_optimizer", "None without a baseline or "
                                    "baseline_objective", parts.arguments["baseline_optimizer"],
                                    where=_WHERE)
    if parts.objective.type == "policy_gradient":
        key, implementation = _lower_policy_gradient(parts)
    elif parts.objective.type == "value":
        key, implementation = _lower_action_value(parts)
    else:
        key, implementation = _lower_deterministic(parts)
    implementation = {k: v for k, v in implementation.items() if v is not None or k in (
        "baseline", "memory")}
    return key, implementation, parts.spec
