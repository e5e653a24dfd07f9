"""Agents: `Agent` and the agent classes, under kerasrl's and Tensorforce's names.

`from kerasrl.agents import Agent, PPOAgent, DeepQNetwork, ...` works as
`from tensorforce.agents import ...` does: every name Tensorforce 0.6.5
exports (including its aliases such as `PPO`, `PPOAgent` and
`ProximalPolicyOptimization` for one class) names the kerasrl class that
`Agent.create` builds for that agent key, and `agents` maps the keys to
classes. The classes are imported on first use, so importing this package
stays light.
"""

from __future__ import annotations

from typing import Any

#: Exported name -> the import path of its class.
_CLASSES: dict[str, str] = {"Agent": "kerasrl.agents.agent.Agent"}
for _path, _names in {
    "kerasrl.agents.ac.A2C": ("A2C", "A2CAgent", "AdvantageActorCritic"),
    "kerasrl.agents.ac.AC": ("AC", "ACAgent", "ActorCritic"),
    "kerasrl.agents.simple.ConstantAgent": ("Constant", "ConstantAgent"),
    "kerasrl.agents.ddpg.DDPG": ("DPG", "DDPG", "DPGAgent", "DeterministicPolicyGradient"),
    "kerasrl.agents.dqn.DoubleDQN": ("DDQN", "DoubleDQNAgent", "DoubleDQN"),
    "kerasrl.agents.dqn.DQN": ("DQN", "DQNAgent", "DeepQNetwork"),
    "kerasrl.agents.dqn.DuelingDQN": ("DuelingDQN", "DuelingDQNAgent"),
    "kerasrl.agents.ppo.PPO": ("PPO", "PPOAgent", "ProximalPolicyOptimization"),
    "kerasrl.agents.simple.RandomAgent": ("Random", "RandomAgent"),
    "kerasrl.agents.simple.FunctionAgent": ("Recorder", "FunctionAgent"),
    "kerasrl.agents.tensorforce.TensorforceAgent": ("Tensorforce", "TensorforceAgent"),
    "kerasrl.agents.trpo.TRPO": ("TRPO", "TRPOAgent", "TrustRegionPolicyOptimization"),
    "kerasrl.agents.vpg.VPG": ("VPG", "REINFORCE", "VPGAgent", "VanillaPolicyGradient"),
    "kerasrl.agents.td3.TD3": ("TD3",),
    "kerasrl.agents.sac.SAC": ("SAC",),
}.items():
    _CLASSES.update(dict.fromkeys(_names, _path))

__all__ = ["agents", *_CLASSES]


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        from kerasrl.registry import import_internal

        return import_internal(_CLASSES[name])
    if name == "agents":
        from kerasrl.agents.agent import AGENTS, GENERIC_AGENTS
        from kerasrl.registry import import_internal

        mapping = {key: import_internal(path) for key, path in AGENTS.items()}
        mapping.update(dict.fromkeys(GENERIC_AGENTS, import_internal(
            _CLASSES["TensorforceAgent"])))
        return mapping
    raise AttributeError(f"module 'kerasrl.agents' has no attribute '{name}'")
