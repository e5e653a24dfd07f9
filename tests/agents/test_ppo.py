"""API-level tests of the PPO agent: update scheduling, arguments, models,
metrics and configs (the learning test lives elsewhere)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.agents.ppo import PPO
from kerasrl.errors import ArgumentError, KerasRLError

STATES = dict(type="float", shape=(4,))
ACTIONS = dict(type="int", num_values=3)
NETWORK = [dict(type="dense", size=8)]
BASE = dict(states=STATES, actions=ACTIONS, max_episode_timesteps=20, network=NETWORK,
            multi_step=2)


def create(**kwargs):
    return Agent.create(agent="ppo", **{**BASE, **kwargs})


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]


def changed(before, after):
    return any(not np.array_equal(a, b) for a, b in zip(before, after))


def run_episode(agent, length, terminal=1, rng=None, parallel=0):
    rng = rng or np.random.default_rng(0)
    updates = 0
    for t in range(length):
        agent.act(rng.normal(size=4), parallel=parallel)
        updates += agent.observe(1.0, terminal if t == length - 1 else 0, parallel=parallel)
    return updates


@pytest.fixture(scope="module")
def baseline_agent():
    agent = create(batch_size=2, baseline="auto", parallel_interactions=2)
    yield agent
    agent.close()


@pytest.fixture
def baselined(baseline_agent):
    baseline_agent.reset()
    yield baseline_agent
    baseline_agent.reset()


# ====================================================================== update scheduling
class TestUpdateSchedule:
    def test_episode_batches(self):
        agent = create(batch_size=2)
        counts = [run_episode(agent, 3) for _ in range(6)]
        assert counts == [0, 1, 0, 1, 0, 1]
        assert agent.updates == 3

    def test_episode_update_frequency(self):
        agent = create(batch_size=3, update_frequency=1)
        counts = [run_episode(agent, 2) for _ in range(4)]
        assert counts == [1, 1, 1, 1]  # from the first episode on, after every episode

    def test_timesteps_unit_parallel_slots(self):
        """Timesteps count over all slots; without a baseline, observe updates at once."""
        agent = create(update=dict(unit="timesteps", batch_size=8, frequency=4),
                       parallel_interactions=2)
        rng = np.random.default_rng(1)
        returned = []
        for _ in range(12):
            agent.act(rng.normal(size=(2, 4)), parallel=[0, 1])
            returned.append(agent.observe([1.0, 1.0], [0, 0], parallel=[0, 1]))
        assert agent.timesteps == 24
        assert returned == [0, 1] * 6  # every 4 timesteps = every 2 batched steps
        assert agent.updates == 6

    def test_timesteps_unit_with_baseline_is_deferred(self):
        """With a baseline, a rollout cut mid-episode updates at the next observe, not in act."""
        agent = create(update=dict(unit="timesteps", batch_size=8, frequency=4),
                       parallel_interactions=2, baseline=NETWORK)
        rng = np.random.default_rng(2)
        returned, updates_after_act = [], []
        for _ in range(12):
            agent.act(rng.normal(size=(2, 4)), parallel=[0, 1])
            updates_after_act.append(agent.updates)
            returned.append(agent.observe([1.0, 1.0], [0, 0], parallel=[0, 1]))
        assert agent.timesteps == 24
        assert returned == [0, 0] + [1, 0] * 5
        assert updates_after_act == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
        assert agent.updates == sum(returned) == 5
        agent.act(rng.normal(size=(2, 4)), parallel=[0, 1])  # closes the 6th cut: act never updates
        assert agent.updates == 5
        assert agent.observe([1.0, 1.0], [1, 1], parallel=[0, 1]) == 1
        assert agent.updates == 6

    def test_timesteps_unit_episode_end_not_deferred(self):
        agent = create(update=dict(unit="timesteps", batch_size=4), baseline=NETWORK)
        # An update due exactly at an episode end needs no bootstrap value.
        assert run_episode(agent, 4) == 1
        assert agent.updates == 1

    def test_update_int_means_timesteps(self):
        agent = create(update=3)
        counts = [run_episode(agent, 3, terminal=0 if i < 2 else 1) for i in range(3)]
        assert counts == [1, 1, 1]

    def test_update_never(self):
        agent = create(update=dict(unit="episodes", batch_size=1, frequency="never"))
        assert agent.update() == 0  # nothing stored yet
        for _ in range(3):
            assert run_episode(agent, 5) == 0
        assert agent.updates == 0

    def test_update_never_then_manual_update(self):
        agent = create(update=dict(unit="episodes", batch_size=1, frequency="never"))
        run_episode(agent, 5)
        assert agent.update() == 1
        assert agent.updates == 1
        assert run_episode(agent, 5) == 0  # still no automatic update

    def test_manual_update(self):
        agent = create(batch_size=2)
        run_episode(agent, 3)
        before = weights_of(agent.policy_model)
        updates = agent.updates
        assert agent.update() == 1
        assert agent.updates == updates + 1
        assert changed(before, weights_of(agent.policy_model))
        assert run_episode(agent, 3) == 1  # the scheduled update still happens

    def test_update_and_batch_size_exclusive(self):
        with pytest.raises(ArgumentError, match="batch_size") as info:
            create(batch_size=2, update=dict(unit="timesteps", batch_size=4))
        assert "update" in str(info.value)

    def test_batch_size_missing(self):
        with pytest.raises(ArgumentError, match="batch_size"):
            create()

    @pytest.mark.parametrize("update, name", [
        (dict(unit="steps", batch_size=4), "unit"),
        (dict(unit="timesteps", batch_size=0), "batch_size"),
        (dict(unit="timesteps", batch_size=4, frequency=0), "frequency"),
        (dict(unit="timesteps", batch_size=4, every=2), "every"),
        ("often", "update"),
    ])
    def test_bad_update(self, update, name):
        with pytest.raises(ArgumentError, match=name):
            create(update=update)


# ====================================================================== arguments
class TestArguments:
    def test_schedules(self):
        agent = create(
            batch_size=1,
            learning_rate=dict(type="linear", unit="updates", num_steps=10,
                               initial_value=1e-2, final_value=1e-4),
            likelihood_ratio_clipping=dict(type="linear", unit="timesteps", num_steps=100,
                                           initial_value=0.3, final_value=0.1),
            entropy_regularization=dict(type="exponential", unit="episodes", num_steps=5,
                                        initial_value=0.1, decay_rate=0.5),
        )
        for _ in range(3):
            assert run_episode(agent, 4) == 1
        assert agent.updates == 3
        assert all(np.isfinite(v) for v in agent.last_metrics.values())
        config = agent.get_config()
        assert config["learning_rate"]["type"] == "linear"
        assert config["entropy_regularization"]["type"] == "exponential"

    def test_bad_schedule(self):
        with pytest.raises(KerasRLError, match="learning_rate"):
            create(batch_size=1, learning_rate=dict(type="no_such_schedule"))

    def test_weights_change_after_update(self, baselined):
        policy = weights_of(baselined.policy_model)
        baseline = weights_of(baselined.baseline_model)
        updates = baselined.updates
        run_episode(baselined, 5)
        run_episode(baselined, 5)
        assert baselined.updates == updates + 1
        assert changed(policy, weights_of(baselined.policy_model))
        assert changed(baseline, weights_of(baselined.baseline_model))

    def test_models(self, baselined):
        assert isinstance(baselined.policy_model, keras.Model)
        assert [t.name for t in baselined.policy_model.inputs] == ["state"]
        assert isinstance(baselined.baseline_model, keras.Model)
        value = baselined.baseline_model(dict(state=np.zeros((3, 4), np.float32)))
        assert tuple(value.shape) == (3,)
        assert create(batch_size=1).baseline_model is None

    def test_metrics(self, baselined):
        run_episode(baselined, 4)
        run_episode(baselined, 4)
        metrics = baselined.last_metrics
        for key in ("policy_loss", "entropy", "approx_kl", "clip_fraction", "value_loss"):
            assert np.isfinite(metrics[key]), key
        assert 0.0 <= metrics["clip_fraction"] <= 1.0
        assert metrics["entropy"] > 0.0
        assert metrics["approx_kl"] >= -1e-6

    def test_metrics_without_baseline(self):
        agent = create(batch_size=1)
        run_episode(agent, 3)
        for key in ("policy_loss", "entropy", "approx_kl", "clip_fraction"):
            assert np.isfinite(agent.last_metrics[key]), key
        assert "value_loss" not in agent.last_metrics

    @pytest.mark.parametrize("baseline_optimizer", [
        0.5, dict(optimizer="adam", learning_rate=1e-3, multi_step=3),
    ])
    def test_update_norm_is_the_parameter_change(self, baseline_optimizer):
        agent = create(batch_size=1, baseline=NETWORK, baseline_optimizer=baseline_optimizer)
        policy, baseline = weights_of(agent.policy_model), weights_of(agent.baseline_model)
        assert run_episode(agent, 4) == 1

        def norm(before, model):
            return np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(weights_of(model), before)))

        metrics = agent.last_metrics
        if isinstance(baseline_optimizer, float):  # one optimizer for both networks
            expected = np.sqrt(norm(policy, agent.policy_model) ** 2
                               + norm(baseline, agent.baseline_model) ** 2)
            assert "baseline_update_norm" not in metrics
        else:
            expected = norm(policy, agent.policy_model)
            assert metrics["baseline_update_norm"] == pytest.approx(
                norm(baseline, agent.baseline_model), rel=1e-4)
        assert expected > 0 and metrics["update_norm"] == pytest.approx(expected, rel=1e-4)

    @pytest.mark.parametrize("baseline_optimizer", [
        0.5, dict(optimizer="adam", learning_rate=1e-3, multi_step=2),
    ])
    def test_baseline_optimizer(self, baseline_optimizer):
        agent = create(batch_size=1, baseline=NETWORK, baseline_optimizer=baseline_optimizer)
        before = weights_of(agent.baseline_model)
        assert run_episode(agent, 4) == 1
        assert np.isfinite(agent.last_metrics["value_loss"])
        assert changed(before, weights_of(agent.baseline_model))

    def test_baseline_optimizer_without_baseline(self):
        with pytest.raises(ArgumentError, match="baseline_optimizer"):
            create(batch_size=1, baseline_optimizer=1.0)

    def test_aborted_episodes(self, baselined):
        episodes = baselined.episodes
        for _ in range(2):
            run_episode(baselined, 3, terminal=2)
        assert baselined.episodes == episodes + 2
        assert np.isfinite(baselined.last_metrics["value_loss"])

    def test_aborted_episode_bootstraps_from_value(self):
        agent = create(update=dict(unit="episodes", batch_size=1, frequency=1000),
                       baseline=NETWORK, discount=0.5)
        state = np.full(4, 0.5, np.float32)
        value = keras.ops.convert_to_numpy(agent.baseline_model(dict(state=state[None])))
        value = float(value[0])
        assert value != 0.0
        for terminal in (1, 2):
            agent.act(state)
            agent.observe(1.0, terminal)
            returns = agent.memory.latest_episodes(1)["return"]
            expected = 1.0 if terminal == 1 else 1.0 + 0.5 * value
            np.testing.assert_allclose(returns[-1], expected, rtol=1e-4, atol=1e-5)


# ====================================================================== configs
class TestConfig:
    def test_get_config_roundtrip(self, baselined):
        config = baselined.get_config()
        text = json.dumps(config)
        assert config["agent"] == "ppo"
        assert config["baseline"] == "auto"
        assert config["parallel_interactions"] == 2
        again = Agent.create(agent=json.loads(text))
        assert isinstance(again, PPO)
        assert again.get_config() == config
        assert again.baseline_model is not None
        assert again.act(np.zeros(4), independent=True) in (0, 1, 2)
        spread = Agent.create(**config)
        assert spread.get_config() == config

    def test_get_config_with_optimizer_dicts(self):
        agent = create(batch_size=1, baseline=NETWORK,
                       baseline_optimizer=dict(optimizer="adam", learning_rate=1e-3,
                                               multi_step=2),
                       learning_rate=dict(type="linear", unit="updates", num_steps=10,
                                          initial_value=1e-2, final_value=1e-4))
        config = agent.get_config()
        again = Agent.create(agent=json.loads(json.dumps(config)))
        assert again.get_config() == config
