"""Tests of the agent layer: `Agent.create`, the act/observe input forms,
independent/deterministic acting, seeding, and call-order / value errors."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasrl import Agent, Environment
from kerasrl.agents.ppo import PPO
from kerasrl.agents.simple import ConstantAgent, RandomAgent
from kerasrl.errors import (
    ArgumentError,
    CallOrderError,
    InputError,
    KerasRLError,
    SpecError,
    UnknownTypeError,
)

SHARED = Path(__file__).resolve().parents[3] / "shared"

STATES = dict(type="float", shape=(4,))
ACTIONS = dict(type="int", num_values=3)
TINY = dict(max_episode_timesteps=20, batch_size=2, network=[dict(type="dense", size=8)],
            multi_step=2)
NUM_SLOTS = 4


@pytest.fixture(scope="module")
def ppo_module():
    agent = Agent.create(agent="ppo", states=STATES, actions=ACTIONS,
                         parallel_interactions=NUM_SLOTS, **TINY)
    yield agent
    agent.close()


@pytest.fixture
def ppo(ppo_module):
    """The module's PPO agent, with no unfinished act/observe in any slot."""
    ppo_module.reset()
    yield ppo_module
    ppo_module.reset()


MULTI_STATES = dict(
    pos=dict(type="float", shape=(3,)),
    inner=dict(a=dict(type="int", shape=(2,), num_values=4), b=dict(type="bool")),
)
MULTI_ACTIONS = dict(
    move=dict(type="int", num_values=3),
    force=dict(type="float", shape=(2,), min_value=-1.0, max_value=2.0),
    gain=dict(type="float"),
    flag=dict(type="bool"),
)


@pytest.fixture(scope="module")
def multi_module():
    agent = Agent.create(
        agent="ppo", states=MULTI_STATES, actions=MULTI_ACTIONS, parallel_interactions=3,
        max_episode_timesteps=20, batch_size=2, network=dict(type="auto", size=8, depth=1),
        multi_step=2,
    )
    yield agent
    agent.close()


@pytest.fixture
def multi(multi_module):
    multi_module.reset()
    yield multi_module
    multi_module.reset()


def multi_state(rng, batch=None):
    prefix = () if batch is None else (batch,)
    return dict(
        pos=rng.normal(size=prefix + (3,)).astype(np.float32),
        inner=dict(a=rng.integers(0, 4, size=prefix + (2,)),
                   b=rng.random(size=prefix) < 0.5 if batch else bool(rng.random() < 0.5)),
    )


def check_multi_action(action):
    assert set(action) == {"move", "force", "gain", "flag"}
    assert type(action["move"]) is int and 0 <= action["move"] < 3
    assert type(action["gain"]) is float
    assert type(action["flag"]) is bool
    assert isinstance(action["force"], np.ndarray)
    assert action["force"].dtype == np.float32 and action["force"].shape == (2,)
    assert np.all(action["force"] >= -1.0) and np.all(action["force"] <= 2.0)


# ====================================================================== Agent.create
class TestCreate:
    def test_registry_keys(self, ppo):
        assert type(ppo) is PPO
        assert isinstance(Agent.create(agent="random", states=STATES, actions=ACTIONS),
                          RandomAgent)
        assert isinstance(Agent.create(agent="constant", states=STATES, actions=ACTIONS),
                          ConstantAgent)
        assert isinstance(Agent.create(agent="RANDOM", states=STATES, actions=ACTIONS),
                          RandomAgent)

    @pytest.mark.parametrize("key", ["agent", "type"])
    def test_dict_spec(self, key):
        agent = Agent.create(agent={key: "constant", "states": STATES, "action_values": 2},
                             actions=ACTIONS)
        assert isinstance(agent, ConstantAgent)
        assert agent.act(np.zeros(4), independent=True) == 2

    def test_dict_kwargs_override_spec(self):
        agent = Agent.create(agent=dict(agent="constant", action_values=1, states=STATES,
                                        actions=ACTIONS), action_values=2)
        assert agent.act(np.zeros(4), independent=True) == 2

    def test_json_file(self, tmp_path):
        path = tmp_path / "agent.json"
        path.write_text(json.dumps(dict(agent="constant", action_values=1)))
        agent = Agent.create(agent=str(path), states=STATES, actions=ACTIONS)
        assert isinstance(agent, ConstantAgent)
        assert agent.act(np.zeros(4), independent=True) == 1

    def test_class(self):
        agent = Agent.create(agent=RandomAgent, states=STATES, actions=ACTIONS,
                             max_episode_timesteps=7)
        assert isinstance(agent, RandomAgent)
        assert agent.max_episode_timesteps == 7

    def test_instance_returned_as_is(self, ppo):
        assert Agent.create(agent=ppo) is ppo
        assert Agent.create(agent=ppo, batch_size=2, states=STATES, actions=ACTIONS,
                            max_episode_timesteps=20, parallel_interactions=2) is ppo

    @pytest.mark.parametrize("kwargs, name", [
        (dict(batch_size=3), "batch_size"),
        (dict(states=dict(type="float", shape=(5,))), "states"),
        (dict(actions=dict(type="int", num_values=4)), "actions"),
        (dict(max_episode_timesteps=21), "max_episode_timesteps"),
        (dict(parallel_interactions=NUM_SLOTS + 1), "parallel_interactions"),
        (dict(foo=1), "foo"),
    ])
    def test_instance_mismatching_kwarg(self, ppo, kwargs, name):
        with pytest.raises(ArgumentError, match=name):
            Agent.create(agent=ppo, **kwargs)

    def test_environment_fills_specs(self):
        agent = Agent.create(agent="random", environment="CartPole-v1")
        assert agent.states_spec.get_config() == dict(type="float", shape=[4])
        assert agent.actions_spec.get_config() == dict(type="int", shape=[], num_values=2)
        assert agent.max_episode_timesteps == 500

    def test_explicit_arguments_win_over_environment(self):
        agent = Agent.create(agent="random", environment="CartPole-v1",
                             max_episode_timesteps=50)
        assert agent.max_episode_timesteps == 50

    def test_unknown_type(self):
        with pytest.raises(UnknownTypeError) as info:
            Agent.create(agent="no_such_agent", states=STATES, actions=ACTIONS)
        message = str(info.value)
        assert "no_such_agent" in message
        for key in ("ppo", "random", "constant"):
            assert key in message

    @pytest.mark.parametrize("key", ["tensorforce", "default", "Tensorforce", None])
    def test_generic_keys_need_their_parts(self, key):
        """'tensorforce'/'default' (and a dict without agent) are the generic agent."""
        spec = {} if key is None else {"agent": key}
        with pytest.raises(ArgumentError, match="Missing required argument.*'update'"):
            Agent.create(spec, states=STATES, actions=ACTIONS, batch_size=2)

    @pytest.mark.parametrize("agent, kwargs", [
        ("ppo", dict(batch_size=2)), ("random", {}), ("constant", {}),
    ])
    def test_unknown_argument(self, agent, kwargs):
        with pytest.raises(ArgumentError, match="foo"):
            Agent.create(agent=agent, states=STATES, actions=ACTIONS, foo=1, **kwargs)

    @pytest.mark.parametrize("states, key", [
        (dict(type="float", shap=(4,)), "shap"),
        (dict(shape=(4,)), "type"),
        (dict(type="complex", shape=(4,)), "type"),
        (dict(type="float", shape=(-1,)), "shape"),
    ])
    def test_spec_errors(self, states, key):
        with pytest.raises(SpecError, match=key):
            Agent.create(agent="random", states=states, actions=ACTIONS)

    def test_action_spec_errors(self):
        with pytest.raises(SpecError, match="num_values"):
            Agent.create(agent="random", states=STATES,
                         actions=dict(type="float", num_values=3))
        with pytest.raises(KerasRLError, match="num_values"):
            Agent.create(agent="random", states=STATES, actions=dict(type="int"))

    def test_num_actions_alias(self):
        agent = Agent.create(agent="random", states=STATES,
                             actions=dict(type="int", shape=(), num_actions=5))
        assert agent.actions_spec["action"].num_values == 5
        assert agent.actions_spec.get_config()["num_values"] == 5

    def test_missing_states(self):
        with pytest.raises(ArgumentError, match="states"):
            Agent.create(agent="random", actions=ACTIONS)

    def test_bad_agent_value(self):
        with pytest.raises(ArgumentError, match="agent"):
            Agent.create(agent=3, states=STATES, actions=ACTIONS)

    def test_config_keys(self):
        with pytest.raises(ArgumentError, match="foo"):
            Agent.create(agent="random", states=STATES, actions=ACTIONS, config=dict(foo=1))
        with pytest.warns(UserWarning, match="eager_mode"):
            Agent.create(agent="random", states=STATES, actions=ACTIONS,
                         config=dict(eager_mode=True))

    def test_tensorforce_ppo_config_runs_unchanged(self):
        path = SHARED / "tensorforce-data" / "configs" / "ppo.json"
        assert path.is_file(), path
        agent = Agent.create(agent=str(path), environment="CartPole-v1")
        assert isinstance(agent, PPO)
        assert agent.max_episode_timesteps == 500
        assert isinstance(agent.baseline_model, keras.Model)
        environment = Environment.create("CartPole-v1")
        try:
            for episode in range(3):
                states = environment.reset(seed=episode)
                terminal = False
                updates = 0
                while not terminal:
                    actions = agent.act(states)
                    states, terminal, reward = environment.execute(actions)
                    updates += agent.observe(reward, terminal)
                # batch_size=12 episodes, update_frequency=1: one update per episode.
                assert updates == 1
                assert agent.updates == episode + 1
        finally:
            environment.close()
        assert agent.episodes == 3
        for key in ("policy_loss", "entropy", "value_loss"):
            assert np.isfinite(agent.last_metrics[key])


# ====================================================================== input forms
class TestInputForms:
    def test_unbatched_array(self, ppo):
        action = ppo.act(np.zeros(4, np.float32))
        assert type(action) is int and 0 <= action < 3
        assert ppo.observe(0.0, False) == 0
        action = ppo.act([0.1, 0.2, 0.3, 0.4])  # a plain list is one state
        assert type(action) is int
        ppo.observe(1.0, True)

    def test_batched_array(self, ppo):
        before = ppo.timesteps
        actions = ppo.act(np.zeros((NUM_SLOTS, 4)), parallel=list(range(NUM_SLOTS)))
        assert isinstance(actions, np.ndarray)
        assert actions.dtype == np.int64 and actions.shape == (NUM_SLOTS,)
        assert np.all((actions >= 0) & (actions < 3))
        assert ppo.timesteps == before + NUM_SLOTS
        ppo.observe(np.zeros(NUM_SLOTS), np.zeros(NUM_SLOTS, bool),
                    parallel=np.arange(NUM_SLOTS))
        # A batch of all slots may leave `parallel` out.
        actions = ppo.act(np.zeros((NUM_SLOTS, 4)))
        assert actions.shape == (NUM_SLOTS,)
        ppo.observe(np.zeros(NUM_SLOTS), np.ones(NUM_SLOTS, int))

    def test_sub_batch_of_slots(self, ppo):
        actions = ppo.act(np.zeros((2, 4)), parallel=[3, 1])
        assert actions.shape == (2,)
        assert ppo.observe([0.0, 1.0], [False, True], parallel=[3, 1]) == 0
        # Slot 3 is still running its episode, slot 1 starts a new one.
        ppo.act(np.zeros(4), parallel=1)
        ppo.act(np.zeros(4), parallel=3)
        ppo.observe([1.0, 1.0], [1, 1], parallel=[1, 3])

    def test_list_of_arrays(self, ppo):
        actions = ppo.act([np.zeros(4), np.ones(4)], parallel=[0, 1])
        assert isinstance(actions, list) and len(actions) == 2
        assert all(type(a) is int for a in actions)
        ppo.observe([0.0, 0.0], [1, 1], parallel=[0, 1])

    def test_state_dict_with_mask(self, ppo):
        action = ppo.act(dict(state=np.zeros(4), action_mask=[False, True, False]))
        assert action == 1 and type(action) is int
        ppo.observe(0.0, 1)
        actions = ppo.act(dict(state=np.zeros((2, 4)), action_mask=[[1, 0, 0], [0, 0, 1]]),
                          parallel=[0, 1])
        assert actions.tolist() == [0, 2]
        ppo.observe([0.0, 0.0], [1, 1], parallel=[0, 1])

    def test_list_of_state_dicts(self, ppo):
        actions = ppo.act([dict(state=np.zeros(4), action_mask=[True, False, False]),
                           dict(state=np.ones(4), action_mask=[False, False, True])],
                          independent=True, deterministic=False)
        assert actions == [0, 2]
        assert all(type(a) is int for a in actions)

    def test_independent_forms(self, ppo):
        assert type(ppo.act(np.zeros(4), independent=True)) is int
        batch = ppo.act(np.zeros((7, 4)), independent=True)  # any batch size
        assert batch.dtype == np.int64 and batch.shape == (7,)

    @pytest.mark.parametrize("deterministic", [True, False])
    def test_alternating_batch_sizes(self, ppo, deterministic):
        """Compiled act functions serve every batch size, in any order."""
        for size in (1, 2, 1, 5, 2, 5, 1):
            states = np.zeros((size, 4)) if size > 1 else np.zeros(4)
            actions = ppo.act(states, independent=True, deterministic=deterministic)
            if size == 1:
                assert type(actions) is int
            else:
                assert actions.shape == (size,) and actions.dtype == np.int64
        for size in (1, 3, 1, 3):
            slots = list(range(size))
            actions = ppo.act(np.zeros((size, 4)), parallel=slots)
            assert actions.shape == (size,)
            ppo.observe([0.0] * size, [1] * size, parallel=slots)

    def test_named_states_unbatched(self, multi):
        rng = np.random.default_rng(0)
        check_multi_action(multi.act(multi_state(rng)))
        multi.observe(0.0, 1)
        check_multi_action(multi.act(multi_state(rng), independent=True))
        check_multi_action(multi.act(multi_state(rng), independent=True, deterministic=False))

    def test_named_states_flat_names(self, multi):
        state = {"pos": np.zeros(3), "inner/a": [1, 2], "inner/b": False}
        check_multi_action(multi.act(state, independent=True))

    def test_named_states_batched_dict(self, multi):
        rng = np.random.default_rng(1)
        actions = multi.act(multi_state(rng, batch=3), parallel=[0, 1, 2])
        assert set(actions) == {"move", "force", "gain", "flag"}
        assert actions["move"].dtype == np.int64 and actions["move"].shape == (3,)
        assert actions["force"].dtype == np.float32 and actions["force"].shape == (3, 2)
        assert actions["gain"].dtype == np.float32 and actions["gain"].shape == (3,)
        assert actions["flag"].dtype == np.bool_ and actions["flag"].shape == (3,)
        multi.observe([0.0, 0.0, 0.0], [1, 1, 1], parallel=[0, 1, 2])

    def test_named_states_list_of_dicts(self, multi):
        rng = np.random.default_rng(2)
        actions = multi.act([multi_state(rng), multi_state(rng)], parallel=[0, 2])
        assert isinstance(actions, list) and len(actions) == 2
        for action in actions:
            check_multi_action(action)
        multi.observe([1.0, 1.0], [1, 1], parallel=[0, 2])

    def test_named_states_mask(self, multi):
        rng = np.random.default_rng(3)
        for _ in range(5):
            state = dict(multi_state(rng), move_mask=[False, False, True])
            assert multi.act(state, independent=True, deterministic=False)["move"] == 2

    def test_float_actions_within_bounds(self, multi):
        rng = np.random.default_rng(4)
        for deterministic in (True, False):
            actions = multi.act(multi_state(rng, batch=256), independent=True,
                                deterministic=deterministic)
            assert actions["force"].dtype == np.float32
            assert np.all(actions["force"] >= -1.0) and np.all(actions["force"] <= 2.0)
            assert np.all(np.isfinite(actions["gain"]))
        training = multi.act(multi_state(rng, batch=3), parallel=[0, 1, 2])
        assert np.all(training["force"] >= -1.0) and np.all(training["force"] <= 2.0)
        multi.observe([0.0] * 3, [1] * 3, parallel=[0, 1, 2])

    def test_bool_singleton_action(self):
        agent = Agent.create(agent="random", states=STATES, actions=dict(type="bool"))
        action = agent.act(np.zeros(4), independent=True)
        assert type(action) is bool
        batch = agent.act(np.zeros((3, 4)), independent=True)
        assert batch.dtype == np.bool_

    def test_named_state_errors(self, multi):
        with pytest.raises(InputError, match="inner/b"):
            multi.act(dict(pos=np.zeros(3), inner=dict(a=[1, 2])), independent=True)
        with pytest.raises(InputError, match="velocity"):
            multi.act(dict(multi_state(np.random.default_rng(0)), velocity=1.0),
                      independent=True)
        with pytest.raises(InputError, match="pos"):
            multi.act(np.zeros(3), independent=True)
        with pytest.raises(InputError, match="inner"):
            multi.act(dict(pos=np.zeros(3), inner=dict(a=[1, 9], b=True)), independent=True)

    def test_policy_model_inputs(self, ppo, multi):
        assert isinstance(ppo.policy_model, keras.Model)
        assert [tensor.name for tensor in ppo.policy_model.inputs] == ["state"]
        names = {tensor.name for tensor in multi.policy_model.inputs}
        assert len(names) == 3 and "pos" in names


# ====================================================================== independent acting
class TestIndependent:
    def test_deterministic_is_repeatable(self, ppo):
        rng = np.random.default_rng(5)
        states = rng.normal(size=(16, 4))
        timesteps = ppo.timesteps
        first = ppo.act(states, independent=True, deterministic=True)
        for _ in range(3):
            np.testing.assert_array_equal(
                ppo.act(states, independent=True, deterministic=True), first)
            assert ppo.act(states[0], independent=True) == first[0]
        assert ppo.timesteps == timesteps
        # No observe needed: a training act on slot 0 is allowed right away.
        ppo.act(states[0])
        ppo.observe(0.0, 1)

    def test_independent_between_act_and_observe(self, ppo):
        timesteps = ppo.timesteps
        ppo.act(np.zeros(4))
        ppo.act(np.zeros(4), independent=True)
        ppo.observe(0.0, 1)
        assert ppo.timesteps == timesteps + 1

    def test_stochastic_varies(self, ppo):
        states = np.zeros((256, 4))
        timesteps = ppo.timesteps
        actions = ppo.act(states, independent=True, deterministic=False)
        assert len(np.unique(actions)) > 1
        again = ppo.act(states, independent=True, deterministic=False)
        assert not np.array_equal(actions, again)
        assert ppo.timesteps == timesteps

    def test_independent_requires_parallel_zero(self, ppo):
        with pytest.raises(ArgumentError, match="parallel"):
            ppo.act(np.zeros(4), independent=True, parallel=1)


def _seeded_run(seed):
    agent = Agent.create(agent="ppo", states=STATES, actions=ACTIONS, max_episode_timesteps=20,
                         batch_size=1, network=[dict(type="dense", size=8)], multi_step=2,
                         config=dict(seed=seed))
    rng = np.random.default_rng(11)
    actions, updates = [], 0
    for t in range(8):
        actions.append(agent.act(rng.normal(size=4)))
        updates += agent.observe(1.0, t == 7)
    actions += agent.act(rng.normal(size=(16, 4)), independent=True,
                         deterministic=False).tolist()
    weights = [np.array(w) for w in agent.policy_model.get_weights()]
    return actions, updates, weights


def test_seed_reproducible():
    actions_a, updates_a, weights_a = _seeded_run(7)
    actions_b, updates_b, weights_b = _seeded_run(7)
    assert updates_a == updates_b == 1
    assert actions_a == actions_b
    assert len(weights_a) == len(weights_b)
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)
    actions_c, _, _ = _seeded_run(8)
    assert actions_c != actions_a  # 24 draws out of 3 values


# ====================================================================== errors
class TestErrors:
    def test_observe_without_act(self, ppo):
        with pytest.raises(CallOrderError, match="act"):
            ppo.observe(0.0, False)
        ppo.act(np.zeros(4))
        ppo.observe(0.0, False)
        with pytest.raises(CallOrderError, match="act"):
            ppo.observe(0.0, False)

    def test_act_twice(self, ppo):
        ppo.act(np.zeros(4))
        with pytest.raises(CallOrderError, match="observe"):
            ppo.act(np.zeros(4))
        ppo.act(np.zeros(4), parallel=1)  # other slots are independent
        ppo.observe([0.0, 0.0], [1, 1], parallel=[0, 1])

    @pytest.mark.parametrize("states", [np.zeros(5), np.zeros((2, 3, 4)), np.zeros((2, 5)),
                                        np.zeros(())])
    def test_wrong_shape(self, ppo, states):
        with pytest.raises(InputError, match="states"):
            ppo.act(states)

    def test_wrong_dtype(self, ppo):
        with pytest.raises(InputError, match="states"):
            ppo.act(np.array(["a", "b", "c", "d"]))
        with pytest.raises(InputError, match="states"):
            ppo.act([None, 1.0, 2.0, 3.0])
        agent = Agent.create(agent="random", states=dict(type="int", shape=(2,), num_values=5),
                             actions=ACTIONS)
        with pytest.raises(InputError, match="int"):
            agent.act(np.array([0.5, 1.0]))
        with pytest.raises(InputError, match=r"\[0, 5\)"):
            agent.act(np.array([0, 5]))
        agent.act(np.array([0.0, 4.0]))  # integral floats are fine

    @pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
    def test_non_finite_states(self, ppo, value):
        with pytest.raises(InputError, match="NaN"):
            ppo.act(np.array([0.0, value, 0.0, 0.0]))
        with pytest.raises(InputError, match="NaN"):
            ppo.act(np.array([0.0, value, 0.0, 0.0]), independent=True)

    def test_mask_wrong_shape(self, ppo):
        with pytest.raises(InputError, match="action_mask"):
            ppo.act(dict(state=np.zeros(4), action_mask=[True, False]))
        with pytest.raises(InputError, match="action_mask"):
            ppo.act(dict(state=np.zeros((2, 4)), action_mask=[True, False, True]),
                    parallel=[0, 1])
        with pytest.raises(InputError, match="action_mask"):
            ppo.act(dict(state=np.zeros(4), action_mask=[0.5, 1.0, 0.0]))

    def test_mask_all_false(self, ppo):
        with pytest.raises(InputError, match="at least one allowed"):
            ppo.act(dict(state=np.zeros(4), action_mask=[False, False, False]))
        mask = np.ones((3, 3), bool)
        mask[2] = False
        with pytest.raises(InputError, match="all-False") as info:
            ppo.act(dict(state=np.zeros((3, 4)), action_mask=mask), independent=True)
        assert "action_mask" in str(info.value)

    def test_unknown_state_key(self, ppo):
        with pytest.raises(InputError, match="actoin_mask"):
            ppo.act(dict(state=np.zeros(4), actoin_mask=[True, True, True]))

    @pytest.mark.parametrize("terminal", [3, -1, "x", 0.5, None])
    def test_bad_terminal(self, ppo, terminal):
        ppo.act(np.zeros(4))
        episodes = ppo.episodes
        with pytest.raises(InputError, match="terminal"):
            ppo.observe(0.0, terminal)
        assert ppo.episodes == episodes
        ppo.observe(0.0, 1)  # the failed observe changed nothing
        assert ppo.episodes == episodes + 1

    @pytest.mark.parametrize("reward", [np.nan, np.inf, "x", [1.0, 2.0, 3.0]])
    def test_bad_reward(self, ppo, reward):
        ppo.act(np.zeros(4))
        with pytest.raises(InputError):
            ppo.observe(reward, 0, parallel=0)
        ppo.observe(0.0, 1)

    def test_nan_reward_message(self, ppo):
        ppo.act(np.zeros(4))
        with pytest.raises(InputError, match="reward"):
            ppo.observe(float("nan"), 0)
        ppo.observe(0.0, 1)

    def test_episode_longer_than_max(self, ppo):
        for _ in range(TINY["max_episode_timesteps"]):
            ppo.act(np.zeros(4))
            ppo.observe(0.0, 0)
        timesteps = ppo.timesteps
        with pytest.raises(InputError, match="max_episode_timesteps"):
            ppo.act(np.zeros(4))
        assert ppo.timesteps == timesteps
        ppo.act(np.zeros(4), independent=True)
        ppo.reset()
        ppo.act(np.zeros(4))
        ppo.observe(0.0, 1)

    def test_episode_of_exactly_max_length(self, ppo):
        episodes = ppo.episodes
        for t in range(TINY["max_episode_timesteps"]):
            ppo.act(np.zeros(4))
            ppo.observe(0.0, 2 if t == TINY["max_episode_timesteps"] - 1 else 0)
        assert ppo.episodes == episodes + 1

    @pytest.mark.parametrize("parallel", [NUM_SLOTS, -1, 100, 1.5, "0"])
    def test_parallel_out_of_range(self, ppo, parallel):
        timesteps = ppo.timesteps
        with pytest.raises(InputError, match="parallel"):
            ppo.act(np.zeros(4), parallel=parallel)
        assert ppo.timesteps == timesteps

    def test_parallel_errors_in_batches(self, ppo):
        with pytest.raises(InputError, match="parallel"):
            ppo.act(np.zeros((2, 4)))  # 2 of 4 slots: which ones?
        with pytest.raises(InputError, match="parallel"):
            ppo.act(np.zeros((2, 4)), parallel=[0, 0])
        with pytest.raises(InputError, match="parallel"):
            ppo.act(np.zeros((2, 4)), parallel=[0, 1, 2])
        ppo.act(np.zeros((2, 4)), parallel=[0, 1])
        with pytest.raises(InputError, match="parallel"):
            ppo.observe([0.0, 0.0], [0, 0], parallel=[0, NUM_SLOTS])
        ppo.observe([0.0, 0.0], [1, 1], parallel=[0, 1])

    def test_internals_of_a_non_recurrent_policy(self, ppo):
        timesteps = ppo.timesteps
        internals = ppo.initial_internals()
        assert internals == {}
        actions, internals = ppo.act(np.zeros(4), internals=internals, independent=True)
        assert internals == {} and isinstance(actions, int)
        batch = [{}, {}]
        actions, internals = ppo.act(np.zeros((2, 4)), internals=batch, independent=True)
        assert internals == batch and actions.shape == (2,)
        assert ppo.timesteps == timesteps  # independent acts record nothing
        with pytest.raises(ArgumentError, match=r"internals.*None unless independent=True"):
            ppo.act(np.zeros(4), internals={})
        with pytest.raises(ArgumentError, match=r"internals.*not recurrent.*\{'lstm'"):
            ppo.act(np.zeros(4), internals={"lstm": np.zeros(2)}, independent=True)
        with pytest.raises(ArgumentError, match=r"internals.*not recurrent"):
            ppo.experience(states=np.zeros((2, 4)), actions=np.zeros(2, np.int64),
                           terminal=[0, 1], reward=[0.0, 1.0], internals=[{}, {"h": 1}])
        ppo.experience(states=np.zeros((2, 4)), actions=np.zeros(2, np.int64), terminal=[0, 1],
                       reward=[0.0, 1.0], internals=[{}, {}])

    def test_failed_act_leaves_slot_free(self, ppo):
        with pytest.raises(InputError):
            ppo.act(np.zeros(5))
        ppo.act(np.zeros(4))
        ppo.observe(0.0, 1)

    def test_errors_are_kerasrl_errors(self):
        for cls in (ArgumentError, CallOrderError, InputError, SpecError, UnknownTypeError):
            assert issubclass(cls, KerasRLError)
