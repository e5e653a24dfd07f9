"""Tests of the `random` and `constant` agents."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.agents.simple import ConstantAgent, RandomAgent
from kerasrl.errors import ArgumentError, KerasRLError

STATES = dict(type="float", shape=(4,))
ACTIONS = dict(
    move=dict(type="int", shape=(2,), num_values=5),
    force=dict(type="float", shape=(3,), min_value=-2.0, max_value=0.5),
    gain=dict(type="float"),
    flag=dict(type="bool"),
)


def check_dtypes(actions, batch):
    assert actions["move"].dtype == np.int64 and actions["move"].shape == (batch, 2)
    assert actions["force"].dtype == np.float32 and actions["force"].shape == (batch, 3)
    assert actions["gain"].dtype == np.float32 and actions["gain"].shape == (batch,)
    assert actions["flag"].dtype == np.bool_ and actions["flag"].shape == (batch,)


# ====================================================================== random
class TestRandom:
    def test_values_in_range_and_spread(self):
        agent = Agent.create(agent="random", states=STATES, actions=ACTIONS,
                             config=dict(seed=0))
        actions = agent.act(np.zeros((2000, 4)), independent=True)
        check_dtypes(actions, 2000)
        move = actions["move"]
        assert move.min() == 0 and move.max() == 4
        counts = np.bincount(move.ravel(), minlength=5)
        assert np.all(np.abs(counts / move.size - 0.2) < 0.03), counts
        force = actions["force"]
        assert np.all(force >= -2.0) and np.all(force <= 0.5)
        assert force.min() < -1.9 and force.max() > 0.4  # uniform over the whole box
        assert abs(actions["gain"].mean()) < 0.1 and 0.9 < actions["gain"].std() < 1.1
        assert 0.45 < actions["flag"].mean() < 0.55

    def test_unbatched_types(self):
        agent = Agent.create(agent="random", states=STATES, actions=ACTIONS)
        action = agent.act(np.zeros(4))
        assert isinstance(action["move"], np.ndarray) and action["move"].shape == (2,)
        assert type(action["gain"]) is float
        assert type(action["flag"]) is bool
        assert agent.observe(0.0, True) == 0
        single = Agent.create(agent="random", states=STATES, actions=dict(type="int",
                                                                          num_values=4))
        assert type(single.act(np.zeros(4), independent=True)) is int
        real = Agent.create(agent="random", states=STATES,
                            actions=dict(type="float", min_value=1.0, max_value=2.0))
        value = real.act(np.zeros(4), independent=True)
        assert type(value) is float and 1.0 <= value <= 2.0

    def test_counters_and_no_updates(self):
        agent = Agent.create(agent="random", states=STATES, actions=ACTIONS,
                             parallel_interactions=2, max_episode_timesteps=5)
        for step in range(5):
            agent.act(np.zeros((2, 4)), parallel=[0, 1])
            assert agent.observe([1.0, 1.0], [step == 4, step == 4], parallel=[0, 1]) == 0
        assert agent.timesteps == 10
        assert agent.episodes == 2
        assert agent.updates == 0
        assert agent.update() == 0

    def test_seeded(self):
        def run(seed):
            agent = Agent.create(agent="random", states=STATES, actions=ACTIONS,
                                 config=dict(seed=seed))
            return agent.act(np.zeros((50, 4)), independent=True)

        first, second, other = run(3), run(3), run(4)
        for name in ACTIONS:
            np.testing.assert_array_equal(first[name], second[name])
        assert not np.array_equal(first["force"], other["force"])

    def test_single_bound_float_rejected(self):
        with pytest.raises(ArgumentError, match="bound"):
            Agent.create(agent="random", states=STATES,
                         actions=dict(type="float", min_value=0.0))

    def test_int_without_num_values_rejected(self):
        with pytest.raises(KerasRLError, match="num_values"):
            Agent.create(agent="random", states=STATES, actions=dict(type="int", shape=(2,)))

    def test_masks(self):
        agent = Agent.create(agent="random", states=STATES, actions=ACTIONS)
        mask = np.zeros((500, 2, 5), bool)
        mask[:, 0, [1, 3]] = True
        mask[:, 1, 4] = True
        actions = agent.act(dict(state=np.zeros((500, 4)), move_mask=mask), independent=True)
        assert set(np.unique(actions["move"][:, 0])) == {1, 3}
        assert np.all(actions["move"][:, 1] == 4)

    def test_get_config_recreates(self):
        agent = Agent.create(agent="random", states=STATES, actions=ACTIONS,
                             max_episode_timesteps=9, config=dict(seed=1))
        config = agent.get_config()
        json.dumps(config)
        again = Agent.create(agent=config)
        assert isinstance(again, RandomAgent)
        assert again.get_config() == config
        assert again.max_episode_timesteps == 9


# ====================================================================== constant
class TestConstant:
    def test_defaults(self):
        actions = dict(ACTIONS, shifted=dict(type="float", min_value=1.0, max_value=3.0))
        agent = Agent.create(agent="constant", states=STATES, actions=actions)
        action = agent.act(np.zeros(4))
        agent.observe(0.0, 1)
        np.testing.assert_array_equal(action["move"], [0, 0])
        np.testing.assert_array_equal(action["force"], [0.0, 0.0, 0.0])
        assert action["gain"] == 0.0 and type(action["gain"]) is float
        assert action["flag"] is False
        assert action["shifted"] == 1.0  # zero clipped into the bounds

    def test_action_values(self):
        agent = Agent.create(agent="constant", states=STATES, actions=ACTIONS,
                             action_values=dict(move=[1, 4], force=[0.5, -2.0, 0.0],
                                                gain=-7.5, flag=True))
        actions = agent.act(np.zeros((3, 4)), independent=True)
        check_dtypes(actions, 3)
        np.testing.assert_array_equal(actions["move"], [[1, 4]] * 3)
        np.testing.assert_array_equal(actions["force"], [[0.5, -2.0, 0.0]] * 3)
        np.testing.assert_array_equal(actions["gain"], [-7.5] * 3)
        assert actions["flag"].all()

    def test_singleton_value(self):
        agent = Agent.create(agent="constant", states=STATES,
                             actions=dict(type="int", num_values=3), action_values=2)
        assert agent.act(np.zeros(4), independent=True) == 2
        assert agent.act(np.zeros((4, 4)), independent=True).tolist() == [2] * 4

    @pytest.mark.parametrize("values, name", [
        (dict(speed=1.0), "action_values"),
        (dict(move=[1, 5]), "move"),
        (dict(force=[1.0, 0.0, 0.0]), "force"),
        (dict(move=[1]), "move"),
    ])
    def test_invalid_action_values(self, values, name):
        with pytest.raises(KerasRLError, match=name):
            Agent.create(agent="constant", states=STATES, actions=ACTIONS,
                         action_values=values)

    def test_masked_constant_falls_back_to_allowed_value(self):
        agent = Agent.create(agent="constant", states=STATES,
                             actions=dict(type="int", num_values=4), action_values=2)
        mask = np.array([[True, True, True, True], [True, False, False, True],
                         [False, False, False, True]])
        actions = agent.act(dict(state=np.zeros((3, 4)), action_mask=mask), independent=True)
        assert actions[0] == 2
        assert mask[np.arange(3), actions].all()

    def test_get_config_recreates(self):
        agent = Agent.create(agent="constant", states=STATES, actions=ACTIONS,
                             action_values=dict(gain=3.0))
        config = agent.get_config()
        json.dumps(config)
        again = Agent.create(agent=config)
        assert isinstance(again, ConstantAgent)
        assert again.act(np.zeros(4), independent=True)["gain"] == 3.0
