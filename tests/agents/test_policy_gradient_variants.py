"""VPG/REINFORCE, AC and A2C: creation, defaults, update mechanics, returns."""

from __future__ import annotations

import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.agents.ac import A2C, AC
from kerasrl.agents.vpg import VPG
from kerasrl.errors import ArgumentError
from kerasrl.returns import n_step_returns

STATES = dict(type="float", shape=(3,))
ACTIONS = dict(type="int", num_values=2)
NET = [dict(type="dense", size=8)]


@pytest.mark.parametrize("key, cls", [("vpg", VPG), ("reinforce", VPG), ("ac", AC),
                                      ("a2c", A2C)])
def test_registry_and_one_update(key, cls):
    unit_kwargs = dict(batch_size=2) if cls is VPG else dict(batch_size=8)
    agent = Agent.create(agent=key, states=STATES, actions=ACTIONS, max_episode_timesteps=10,
                         network=NET, config=dict(seed=0), **unit_kwargs)
    assert isinstance(agent, cls)
    before = agent.policy_model.get_weights()
    rng = np.random.default_rng(0)
    updates = 0
    for t in range(40):
        agent.act(rng.normal(size=3))
        updates += agent.observe(reward=1.0, terminal=int(t % 10 == 9))
    assert agent.updates >= 1
    assert np.isfinite(list(agent.last_metrics.values())).all()
    after = agent.policy_model.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    config = agent.get_config()
    assert config["agent"] == cls.agent_type
    assert type(Agent.create(agent=config)) is cls


def test_ac_has_critic_by_default_and_a2c_uses_advantage():
    ac = Agent.create(agent="ac", states=STATES, actions=ACTIONS, batch_size=4, network=NET)
    assert ac.baseline_model is not None and not ac.estimate_advantage
    a2c = Agent.create(agent="a2c", states=STATES, actions=ACTIONS, batch_size=4, network=NET)
    assert a2c.estimate_advantage and a2c.horizon == 1


def test_vpg_without_baseline_trains_on_returns():
    agent = Agent.create(agent="vpg", states=STATES, actions=ACTIONS, max_episode_timesteps=5,
                         batch_size=1, network=NET, discount=0.5)
    for t in range(3):
        agent.act(np.zeros(3))
        agent.observe(reward=1.0, terminal=int(t == 2))
    batch = agent.memory.latest_episodes(1)
    np.testing.assert_allclose(batch["return"], [1.75, 1.5, 1.0])
    np.testing.assert_allclose(batch["advantage"], batch["return"])


def test_n_step_returns_formula():
    returns = n_step_returns(np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0]),
                             bootstrap=5.0, discount=0.5, horizon=2)
    expected = [1 + 0.5 * 2 + 0.25 * 30, 2 + 0.5 * 3 + 0.25 * 40, 3 + 0.5 * 4 + 0.25 * 5,
                4 + 0.5 * 5]
    np.testing.assert_allclose(returns, expected)


def test_bad_arguments():
    with pytest.raises(ArgumentError, match="horizon"):
        Agent.create(agent="a2c", states=STATES, actions=ACTIONS, batch_size=4, horizon=0)
    with pytest.raises(ArgumentError, match="batch_size"):
        Agent.create(agent="vpg", states=STATES, actions=ACTIONS)
    with pytest.raises(ArgumentError, match="foo"):
        Agent.create(agent="ac", states=STATES, actions=ACTIONS, batch_size=4, foo=1)
