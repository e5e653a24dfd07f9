"""Named agents as presets of the generic agent (Tensorforce's §1.8 mappings).

`expand(spec)` turns the spec of a named agent (`agent.spec`, or the
arguments given to `Agent.create`) into the equivalent generic spec
(`agent='tensorforce'`): `Agent.create(expand(spec))` builds an agent whose
updates equal those of `Agent.create(spec)` from the same seed.

| preset | policy | memory | update | optimizer | objective | reward estimation | baseline |
|---|---|---|---|---|---|---|---|
| `ppo` | distributions | recent | episodes | adam, multi_step, subsampling | policy_gradient(importance_sampling, clipping_value) | horizon 'episode' | state value (optional) |
| `trpo` | distributions | recent | episodes | natural_gradient | policy_gradient(importance_sampling) | horizon 'episode' | state value (optional) |
| `vpg` | distributions | recent | episodes | adam | policy_gradient | horizon 'episode' | state value (optional) |
| `ac` / `a2c` | distributions | recent | timesteps | adam | policy_gradient | horizon n, 'early', advantage (a2c) | state value critic |
| `dqn` / `double_dqn` / `dueling_dqn` | value policy | replay | timesteps | adam | action_value | horizon n, 'late', action values (double, dueling) | policy copy + synchronization |
| `ddpg` | deterministic distributions | replay | timesteps | adam | deterministic_policy_gradient | horizon n, 'late', action values | action value critic |

Without a baseline, `ppo`/`trpo`/`vpg` train on the discounted return
(`predict_horizon_values=False, estimate_advantage=False`); with one, on the
advantage (`'early'`, `estimate_advantage=True`, `baseline_objective=
'state_value'`). kerasrl's extra arguments map to generic ones:
`max_grad_norm` is `optimizer['gradient_norm_clipping']`, `gae_decay` is
`reward_estimation['gae_decay']`, `distributions` is `policy['distributions']`.
`td3` and `sac` are agents on the same replay base, not presets; DDPG's
target-network and TD3 arguments have no generic form and must keep their
defaults to expand.

Example:

```python
spec = expand(dict(agent='ppo', states=dict(type='float', shape=(4,)),
                   actions=dict(type='int', num_values=2), batch_size=10))
assert spec['objective']['clipping_value'] == 0.25 and spec['update']['unit'] == 'episodes'
```
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from kerasrl.errors import ArgumentError
from kerasrl.optimizers import optimizer_config

#: Arguments passed through unchanged (the `Agent` and regularization arguments).
COMMON = ("states", "actions", "max_episode_timesteps", "l2_regularization",
          "entropy_regularization", "state_preprocessing", "exploration", "variable_noise",
          "parallel_interactions", "config", "saver", "summarizer", "tracking", "recorder")


def _arguments(agent: str, spec: Mapping) -> dict:
    """The spec with the named agent's defaults filled in (its signature's)."""
    from kerasrl.agents.agent import AGENTS, _agent_class

    if agent not in AGENTS:
        raise ArgumentError.invalid("agent", f"a named agent among {sorted(PRESETS)}", agent)
    signature = inspect.signature(_agent_class(agent).__init__)
    defaults = {name: p.default for name, p in signature.parameters.items()
                if p.default is not inspect.Parameter.empty}
    known = set(signature.parameters) | set(COMMON)
    unknown = sorted(set(spec) - known - {"agent", "summaries"})
    if unknown:
        raise ArgumentError.invalid(f"argument(s) {unknown} of agent '{agent}'",
                                    f"arguments among {sorted(known - {'self', 'kwargs'})}",
                                    {k: spec[k] for k in unknown})
    values = {**defaults, **{k: v for k, v in spec.items() if k != "agent"}}
    if values.get("summaries") is not None and values.get("summarizer") is None:
        values["summarizer"] = values.pop("summaries")
    return values


def _common(values: Mapping) -> dict:
    return {key: values.get(key) for key in COMMON if key in values or key in (
        "states", "actions")}


def _optimizer(values: Mapping, **defaults: Any) -> dict:
    """Tensorforce's wrapper form `dict(optimizer=..., learning_rate=..., ...)`."""
    config = optimizer_config(values.get("optimizer"), values.get("learning_rate", 1e-3),
                              values.get("max_grad_norm"), **defaults)
    type_ = config.pop("type", None)
    return {"optimizer": config.pop("optimizer", None) or type_ or "adam", **config}


def _update(values: Mapping, unit: str, start: Any = None) -> Any:
    if values.get("update") is not None:
        return values["update"]
    update = {"unit": unit, "batch_size": values.get("batch_size"),
              "frequency": values.get("update_frequency")}
    if start is not None or unit == "timesteps":
        update["start"] = start
    return update


def _memory(value: Any, kind: str) -> dict:
    if value in (None, "minimum"):
        return {"type": kind, "capacity": None}
    if isinstance(value, Mapping):
        return {"type": value.get("type", kind), "capacity": value.get("capacity")}
    return {"type": kind, "capacity": value}


def _distributions_policy(values: Mapping, temperature: float) -> dict:
    network = values.get("policy") if values.get("policy") is not None else values.get(
        "network", "auto")
    if isinstance(network, Mapping) and network.get("type") == "parametrized_distributions":
        policy = dict(network)
    else:
        policy = {"type": "parametrized_distributions", "network": network}
    policy.setdefault("temperature", temperature)
    policy["use_beta_distribution"] = bool(values.get("use_beta_distribution", False))
    if values.get("distributions") is not None:
        policy["distributions"] = values["distributions"]
    return policy


def _policy_gradient_preset(values: Mapping, objective: dict, optimizer: dict,
                            baseline_key: str = "baseline") -> dict:
    """The spec shared by ppo, trpo and vpg (episode returns, optional baseline)."""
    spec = {"agent": "tensorforce", **_common(values),
            "policy": _distributions_policy(values, 1.0),
            "memory": _memory(values.get("memory"), "recent"),
            "update": _update(values, "episodes"), "optimizer": optimizer,
            "objective": objective}
    baseline = values.get(baseline_key)
    estimation = {"horizon": "episode", "discount": values.get("discount", 0.99),
                  "predict_terminal_values": bool(values.get("predict_terminal_values")),
                  "reward_processing": values.get("reward_processing"),
                  "return_processing": values.get("return_processing"),
                  "advantage_processing": values.get("advantage_processing"),
                  "gae_decay": values.get("gae_decay", 0.0)}
    if baseline is None:
        estimation.update(predict_horizon_values=False, estimate_advantage=False)
    else:
        estimation.update(predict_horizon_values="early", estimate_advantage=True)
        spec["baseline"] = {"type": "parametrized_state_value", "network": baseline}
        spec["baseline_objective"] = "state_value"
        spec["baseline_optimizer"] = values.get("baseline_optimizer")
    spec["reward_estimation"] = estimation
    return spec


def _ppo(values: Mapping) -> dict:
    optimizer = _optimizer(values, multi_step=values["multi_step"],
                           subsampling_fraction=values["subsampling_fraction"])
    objective = {"type": "policy_gradient", "importance_sampling": True,
                 "clipping_value": values["likelihood_ratio_clipping"]}
    return _policy_gradient_preset(values, objective, optimizer)


def _vpg(values: Mapping) -> dict:
    return _policy_gradient_preset(values, {"type": "policy_gradient"}, _optimizer(values))


def _trpo(values: Mapping) -> dict:
    optimizer = {"optimizer": "natural_gradient", "learning_rate": values["learning_rate"],
                 "cg_max_iterations": values["cg_iterations"],
                 "cg_damping": values["cg_damping"], "only_positive_updates": True,
                 "subsampling_fraction": values["subsampling_fraction"],
                 "linesearch_iterations": values["linesearch_iterations"],
                 "backtracking_factor": values["backtracking_factor"]}
    objective = {"type": "policy_gradient", "importance_sampling": True}
    return _policy_gradient_preset(values, objective, optimizer)


def _n_step_estimation(values: Mapping, prediction: str, advantage: bool,
                       action_values: bool) -> dict:
    """The reward estimation of an n-step preset (`horizon` an int)."""
    estimation = {
        "horizon": values["horizon"], "discount": values["discount"],
        "predict_horizon_values": prediction, "estimate_advantage": advantage,
        "predict_action_values": action_values,
        "predict_terminal_values": bool(values.get("predict_terminal_values")),
        "reward_processing": values.get("reward_processing"),
        "return_processing": values.get("return_processing")}
    if "advantage_processing" in values:
        estimation["advantage_processing"] = values["advantage_processing"]
    return estimation


def _actor_critic(advantage: bool) -> Callable[[Mapping], dict]:
    def expand_ac(values: Mapping) -> dict:
        critic_optimizer = values.get("critic_optimizer")
        return {
            "agent": "tensorforce", **_common(values),
            "policy": _distributions_policy(values, 1.0),
            "memory": _memory(values.get("memory"), "recent"),
            "update": _update(values, "timesteps"), "optimizer": _optimizer(values),
            "objective": {"type": "policy_gradient"},
            "reward_estimation": _n_step_estimation(values, "early", advantage, False),
            "baseline": {"type": "parametrized_state_value", "network": values["critic"]},
            "baseline_objective": "state_value",
            "baseline_optimizer": 1.0 if critic_optimizer is None else critic_optimizer,
        }
    return expand_ac


def _replay_common(values: Mapping) -> dict:
    return {"agent": "tensorforce", **_common(values),
            "memory": _memory(values.get("memory"), "replay"),
            "update": _update(values, "timesteps", values.get("start_updating")),
            "optimizer": _optimizer(values, multi_step=values.get("multi_step", 1))}


def _dqn(double: bool, dueling: bool) -> Callable[[Mapping], dict]:
    def expand_dqn(values: Mapping) -> dict:
        network = values.get("policy") if values.get("policy") is not None else values.get(
            "network", "auto")
        if isinstance(network, Mapping) and network.get("type") == "parametrized_value_policy":
            network = network.get("network", "auto")
        policy = {"type": "parametrized_value_policy", "network": network,
                  "state_value_mode": "separate" if dueling else "implicit"}
        from kerasrl.agents.dqn import DEFAULT_EXPLORATION

        common = _replay_common(values)
        if values.get("exploration") is None:  # the DQN agents' default, not the generic 0.0
            common["exploration"] = dict(DEFAULT_EXPLORATION)
        return {
            **common, "policy": policy,
            "objective": {"type": "action_value", "huber_loss": values.get("huber_loss")},
            "reward_estimation": _n_step_estimation(values, "late", False, double or dueling),
            "baseline": dict(policy),
            "baseline_optimizer": {"type": "synchronization",
                                   "update_weight": values["target_update_weight"],
                                   "sync_frequency": values["target_sync_frequency"]},
        }
    return expand_dqn


#: DDPG arguments without a generic form, and the defaults they must keep.
_DDPG_ONLY = {"target_update_weight": 0.005, "target_sync_frequency": 1, "policy_delay": 1,
              "target_policy_noise": 0.0, "target_noise_clip": 0.5}


def _ddpg(values: Mapping) -> dict:
    for key, default in _DDPG_ONLY.items():
        if values.get(key, default) != default:
            raise ArgumentError.invalid(
                key, f"its default {default!r} to expand into a generic spec (DDPG's target "
                "networks and TD3's arguments have no generic form)", values[key],
                where="preset 'ddpg'")
    critic_optimizer = values.get("critic_optimizer")
    return {
        **_replay_common(values), "policy": _distributions_policy(values, 0.0),
        "objective": {"type": "deterministic_policy_gradient"},
        "reward_estimation": _n_step_estimation(values, "late", False, True),
        "baseline": {"type": "parametrized_action_value", "network": values["critic"]},
        "baseline_objective": "action_value",
        "baseline_optimizer": 1.0 if critic_optimizer is None else critic_optimizer,
    }


#: The named agents that expand into the generic agent.
PRESETS: dict[str, Callable[[Mapping], dict]] = {
    "ppo": _ppo, "vpg": _vpg, "reinforce": _vpg, "trpo": _trpo,
    "ac": _actor_critic(False), "a2c": _actor_critic(True),
    "dqn": _dqn(False, False), "double_dqn": _dqn(True, False), "ddqn": _dqn(True, False),
    "dueling_dqn": _dqn(True, True), "ddpg": _ddpg, "dpg": _ddpg,
}


def expand(spec: Mapping[str, Any]) -> dict:
    """The generic spec of a named agent's spec (reference §1.8).

    Args:
        spec: A named agent's spec: `agent` plus its arguments (e.g.
            `agent.spec`); missing arguments take the agent's defaults.

    Returns:
        The generic spec (`agent='tensorforce'`), for `Agent.create`.

    Raises:
        ArgumentError: an agent that is not a preset (`td3`, `sac`, `random`,
            ...), unknown arguments, or arguments without a generic form.
    """
    agent = spec.get("agent")
    if agent == "tensorforce":
        return dict(spec)
    if agent not in PRESETS:
        raise ArgumentError.invalid(
            "agent", f"a preset of the generic agent, one of {sorted(PRESETS)} (td3 and sac "
            "are agents on the replay base; random and constant act without parts)", agent)
    key = {"reinforce": "vpg", "ddqn": "double_dqn", "dpg": "ddpg"}.get(agent, agent)
    expanded = PRESETS[agent](_arguments(key, spec))
    return {k: v for k, v in expanded.items() if v is not None or k in ("states", "actions")}
