"""API tests of the continuous-action off-policy agents (DDPG, TD3, SAC):
arguments, action bounds and exploration, losses against NumPy references,
delayed/Polyak target updates, entropy tuning, metrics, saving and export.
(Learning tests: tests/test_learning_off_policy.py.)"""

from __future__ import annotations

import copy
import math

import keras
import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.agents.ddpg import DDPG
from kerasrl.agents.off_policy import ACTION_INPUT
from kerasrl.agents.sac import SAC
from kerasrl.agents.td3 import TD3
from kerasrl.errors import KerasRLError
from kerasrl.saving import named_weights

STATES = dict(type="float", shape=(3,))
ACTIONS = dict(type="float", shape=(), min_value=-2.0, max_value=2.0)
NETWORK = [dict(type="dense", size=8)]
KINDS = ["ddpg", "td3", "sac"]
METRICS = {
    "ddpg": {"critic_loss", "actor_loss", "q_value", "critic_gradient_norm",
             "actor_gradient_norm"},
    "sac": {"critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy", "q_value",
            "critic_gradient_norm", "actor_gradient_norm"},
}
METRICS["td3"] = METRICS["ddpg"]


def create(agent="sac", **kwargs):
    spec = dict(states=STATES, actions=ACTIONS, memory=100, batch_size=8, network=NETWORK,
                critic=NETWORK, config=dict(seed=0))
    spec.update(kwargs)
    return Agent.create(agent=agent, **spec)


def weights(model):
    return [np.array(w) for w in model.get_weights()]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def fill(agent, steps=24, rng=None):
    rng = rng or np.random.default_rng(0)
    for t in range(steps):
        agent.act(rng.normal(size=3))
        agent.observe(float(rng.normal()), 2 if t % 8 == 7 else 0)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x).astype(np.float64)


# ====================================================================== creation and arguments
@pytest.mark.parametrize("key, cls", [("ddpg", DDPG), ("dpg", DDPG), ("td3", TD3), ("sac", SAC)])
def test_registry_and_config_roundtrip(key, cls):
    agent = create(key)
    assert type(agent) is cls
    config = agent.get_config()
    again = Agent.create(config)
    assert type(again) is cls and again.get_config() == config
    assert isinstance(agent.policy_model, keras.Model)
    assert isinstance(agent.critic_model, keras.Model)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kwargs, argument", [
    (dict(actions=dict(type="int", num_values=3)), "actions"),
    (dict(actions=dict(type="bool")), "actions"),
    (dict(memory=None), "memory"),
    (dict(batch_size=101), "batch_size"),
    (dict(unknown_argument=3), "unknown_argument"),
    (dict(variable_noise=-0.5), "variable_noise"),
    (dict(target_update_weight=1.5), "target_update_weight"),
    (dict(critic_optimizer=-1.0), "critic_optimizer"),
    (dict(optimizer=dict(type="adam", multi_step=3)), "optimizer"),
])
def test_bad_arguments_raise_before_training(kind, kwargs, argument):
    with pytest.raises(KerasRLError, match=argument):
        create(kind, **kwargs)


@pytest.mark.parametrize("kind, kwargs, argument", [
    ("sac", dict(alpha=-0.1), "alpha"),
    ("sac", dict(initial_alpha=0.0), "initial_alpha"),
    ("sac", dict(target_entropy="high"), "target_entropy"),
    ("td3", dict(policy_delay=0), "policy_delay"),
    ("td3", dict(target_policy_noise=-0.2), "target_policy_noise"),
    ("ddpg", dict(return_processing=dict(type="clipping")), "return_processing"),
])
def test_algorithm_specific_bad_arguments(kind, kwargs, argument):
    with pytest.raises(KerasRLError, match=argument):
        create(kind, **kwargs)


# ====================================================================== acting
MIXED = dict(
    torque=dict(type="float", shape=(2,), min_value=[-1.0, 0.0], max_value=[1.0, 10.0]),
    free=dict(type="float", shape=()),
)


@pytest.mark.parametrize("kind", KINDS)
def test_actions_respect_bounds_in_every_mode(kind):
    agent = create(kind, actions=MIXED, exploration=0.5, parallel_interactions=32,
                   update_frequency=4, start_updating=32)
    rng = np.random.default_rng(1)
    slots = np.arange(32)
    for _ in range(3):
        actions = agent.act(rng.normal(size=(32, 3)) * 10, parallel=slots)
        assert actions["torque"].shape == (32, 2) and actions["free"].shape == (32,)
        assert actions["torque"].dtype == np.float32
        assert (actions["torque"] >= [-1.0, 0.0]).all() and (actions["torque"] <= [1.0, 10.0]).all()
        assert np.isfinite(actions["free"]).all()
        agent.observe(rng.normal(size=32), np.zeros(32, int), parallel=slots)
    # SAC also reports the entropy of each of the two actions.
    expected = METRICS[kind] | ({"entropy/torque", "entropy/free"} if kind == "sac" else set())
    assert agent.updates > 0 and set(agent.last_metrics) == expected
    assert all(np.isfinite(v) for v in agent.last_metrics.values())
    for deterministic in (True, False):
        actions = agent.act(rng.normal(size=(32, 3)) * 10, independent=True,
                            deterministic=deterministic)
        assert (actions["torque"] >= [-1.0, 0.0]).all() and (actions["torque"] <= [1.0, 10.0]).all()


@pytest.mark.parametrize("kind", ["ddpg", "td3"])
def test_exploration_noise_is_relative_to_the_action_range(kind):
    agent = create(kind, parallel_interactions=4000, exploration=0.1,
                   actions=dict(type="float", shape=(), min_value=0.0, max_value=10.0))
    states = np.zeros((4000, 3))
    mean = agent.act(states[:1], independent=True)
    noisy = agent.act(states, parallel=np.arange(4000))
    # σ = 0.1 in normalized units = 0.1 × half range (5) = 0.5 in action units.
    assert np.std(noisy) == pytest.approx(0.5, rel=0.1)
    assert np.mean(noisy) == pytest.approx(float(mean[0]), abs=0.05)
    repeated = agent.act(states[:10], independent=True)
    np.testing.assert_array_equal(repeated, agent.act(states[:10], independent=True))


def test_sac_samples_vary_and_mode_is_deterministic():
    agent = create("sac")
    states = np.zeros((200, 3))
    samples = agent.act(states, independent=True, deterministic=False)
    assert np.std(samples) > 0.3  # initial policy: std ≈ 1 before squashing
    mode = agent.act(states, independent=True)
    assert np.allclose(mode, mode[0]) and abs(mode[0]) < 0.1


# ====================================================================== losses against NumPy
def _sampled_batch(agent, noise_names=()):
    sampler = copy.deepcopy(agent._rng)
    batch = {k: v[0] for k, v in agent.memory.sample(sampler, agent.batch_size, 1).items()}
    shape = (agent.batch_size, agent.action_size)
    if agent.agent_type == "td3":
        noise = sampler.standard_normal((1,) + shape)[0]
        batch["noise/smoothing"] = np.clip(noise * agent.target_policy_noise,
                                           -agent.target_noise_clip, agent.target_noise_clip)
    if agent.agent_type == "sac":
        batch["noise/current"] = sampler.standard_normal((1,) + shape)[0]
        batch["noise/next"] = sampler.standard_normal((1,) + shape)[0]
    return batch


def _q(model, states, y):
    return to_numpy(model({"state": states.astype(np.float32),
                           ACTION_INPUT: y.astype(np.float32)}))


@pytest.mark.parametrize("kind", ["ddpg", "td3"])
def test_deterministic_critic_loss_matches_numpy(kind):
    agent = create(kind, update_frequency="never", discount=0.9)
    fill(agent)
    agent.update()
    agent.update()
    batch = _sampled_batch(agent)
    next_states = batch["next_states/state"]
    mean = to_numpy(agent.target_policy_model({"state": next_states})["action"]["mean"])
    next_y = np.tanh(mean).reshape(-1, 1)
    if kind == "td3":
        next_y = np.clip(next_y + batch["noise/smoothing"], -1.0, 1.0)
    next_q = _q(agent.target_critic_model, next_states, next_y)
    if kind == "td3":
        next_q = np.minimum(next_q, _q(agent.target_critic2_model, next_states, next_y))
    target = batch["reward"] + (1 - batch["terminal"]) * batch["discount"] * next_q
    y = (batch["actions/action"] / 2.0).reshape(-1, 1)
    q = _q(agent.critic_model, batch["states/state"], y)
    loss = 0.5 * np.mean((q - target) ** 2)
    if kind == "td3":
        loss += 0.5 * np.mean((_q(agent.critic2_model, batch["states/state"], y) - target) ** 2)
    agent.update()
    assert agent.last_metrics["critic_loss"] == pytest.approx(loss, rel=1e-4)
    assert agent.last_metrics["q_value"] == pytest.approx(q.mean(), rel=1e-4, abs=1e-6)


def _sac_sample(agent, states, noise):
    params = agent.policy_model({"state": states.astype(np.float32)})["action"]
    mean = to_numpy(params["mean"]).reshape(-1, 1)
    log_std = np.clip(to_numpy(params["log_stddev"]).reshape(-1, 1), -20, 2)
    u = mean + np.exp(log_std) * noise
    log_prob = -0.5 * noise**2 - log_std - 0.5 * math.log(2 * math.pi) - np.log(1 - np.tanh(u) ** 2)
    return np.tanh(u), log_prob.sum(-1)


def test_sac_losses_match_numpy():
    agent = create("sac", update_frequency="never", discount=0.9, initial_alpha=0.5)
    fill(agent)
    agent.update()
    batch = _sampled_batch(agent)
    alpha = agent.alpha
    states, next_states = batch["states/state"], batch["next_states/state"]
    next_y, next_log_prob = _sac_sample(agent, next_states, batch["noise/next"])
    next_q = np.minimum(_q(agent.target_critic_model, next_states, next_y),
                        _q(agent.target_critic2_model, next_states, next_y))
    target = batch["reward"] + (1 - batch["terminal"]) * batch["discount"] * (
        next_q - alpha * next_log_prob)
    y = (batch["actions/action"] / 2.0).reshape(-1, 1)
    critic_loss = sum(0.5 * np.mean((_q(m, states, y) - target) ** 2)
                      for m in (agent.critic_model, agent.critic2_model))
    agent.update()
    metrics = agent.last_metrics
    assert metrics["critic_loss"] == pytest.approx(critic_loss, rel=1e-4)
    # The actor step follows the critic step: only check its sign-free structure.
    assert np.isfinite(metrics["actor_loss"]) and metrics["alpha"] < 0.5


# ====================================================================== targets
def test_td3_delays_actor_and_target_updates():
    agent = create("td3", update_frequency="never", target_update_weight=0.5)
    fill(agent)
    actor, critic = weights(agent.policy_model), weights(agent.critic_model)
    targets = [weights(m) for m in agent._target_models()]
    agent.update()  # gradient step 1: critics only
    assert same(weights(agent.policy_model), actor)
    assert not same(weights(agent.critic_model), critic)
    assert all(same(weights(m), t) for m, t in zip(agent._target_models(), targets))
    agent._sync_weights()
    assert int(keras.ops.convert_to_numpy(agent.optimizer_spec.optimizer.iterations)) == 0
    agent.update()  # gradient step 2: actor and targets too
    assert not same(weights(agent.policy_model), actor)
    assert not any(same(weights(m), t) for m, t in zip(agent._target_models(), targets))
    agent._sync_weights()
    assert int(keras.ops.convert_to_numpy(agent.optimizer_spec.optimizer.iterations)) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_polyak_targets_after_every_step(kind):
    agent = create(kind, update_frequency="never", target_update_weight=0.3)
    fill(agent)
    pairs = [(agent.target_critic_model, agent.critic_model)]
    if kind != "sac":
        pairs.append((agent.target_policy_model, agent.policy_model))
    if kind == "td3":
        agent.update()  # TD3 moves its targets on every second gradient step only
    before = [weights(target) for target, _ in pairs]
    agent.update()
    for (target, online), old in zip(pairs, before):
        for new, source, previous in zip(weights(target), weights(online), old):
            np.testing.assert_allclose(new, 0.3 * source + 0.7 * previous, rtol=1e-5, atol=1e-6)
    shared = {id(w) for w in agent.critic_model.weights}
    assert not shared & {id(w) for w in agent.target_critic_model.weights}


# ====================================================================== entropy temperature
def test_sac_fixed_and_tuned_alpha():
    fixed = create("sac", alpha=0.2, update_frequency="never")
    tuned = create("sac", update_frequency="never", actions=MIXED)
    assert tuned.target_entropy == -3.0 and fixed.target_entropy == -1.0
    for agent in (fixed, tuned):
        fill(agent)
        for _ in range(3):
            agent.update()
    assert fixed.alpha == pytest.approx(0.2) and fixed.last_metrics["alpha_loss"] == 0.0
    assert tuned.alpha != pytest.approx(1.0)
    assert tuned.last_metrics["alpha"] == pytest.approx(tuned.alpha, rel=1e-5)
    assert "alpha_optimizer/0" in tuned._state_variables()
    assert "alpha/log_alpha" in fixed._state_variables()


# ====================================================================== saving and export
def _train(agent, rng, updates):
    for _ in range(updates):
        fill(agent, steps=8, rng=rng)
        agent.update()


def _all_state(agent):
    agent._sync_weights()
    values = {k: keras.ops.convert_to_numpy(v.value) for k, v in named_weights(agent).items()}
    values.update({k: keras.ops.convert_to_numpy(v.value)
                   for k, v in agent._state_variables().items()})
    return values


@pytest.mark.parametrize("kind", ["sac", "td3"])
def test_full_save_resumes_exactly(tmp_path, kind):
    spec = dict(update_frequency="never", multi_step=3)
    uninterrupted = create(kind, **spec)
    _train(uninterrupted, np.random.default_rng(2), 6)
    first = create(kind, **spec)
    rng = np.random.default_rng(2)
    _train(first, rng, 3)
    first.save(tmp_path)
    resumed = Agent.load(tmp_path)
    assert type(resumed) is type(first) and resumed.updates == 3
    _train(resumed, rng, 3)
    expected, actual = _all_state(uninterrupted), _all_state(resumed)
    assert expected.keys() == actual.keys()
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-6, err_msg=key)
    states = np.random.default_rng(3).normal(size=(20, 3))
    np.testing.assert_array_equal(resumed.act(states, independent=True),
                                  uninterrupted.act(states, independent=True))


@pytest.mark.parametrize("kind", ["sac", "ddpg"])
def test_export_gives_the_deterministic_actions(tmp_path, kind):
    agent = create(kind, update_frequency="never", actions=MIXED)
    fill(agent)
    agent.update()
    states = np.random.default_rng(4).normal(size=(16, 3)).astype(np.float32)
    expected = agent.act(states, independent=True)
    model = keras.saving.load_model(agent.export(str(tmp_path / "policy.keras")))
    exported = model({"state": states})
    for name in ("torque", "free"):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(exported[name]), expected[name],
                                   rtol=1e-5, atol=1e-6)
