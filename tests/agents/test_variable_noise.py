"""Tensorforce's `variable_noise`: Gaussian noise on the policy weights while sampling.

The act program reads every trainable policy weight `w` as `w + σ·ε`,
`ε ~ N(0, I)` drawn from the act seed generator, one draw per act call; the
weights themselves never change, and deterministic acting has no noise.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasrl import Agent, Environment
from kerasrl.errors import KerasRLError

PENDULUM = dict(environment="Pendulum-v1", memory=1000, batch_size=8)
CARTPOLE = dict(environment="CartPole-v1")
AGENTS = {
    "ppo": dict(CARTPOLE, batch_size=2),
    "dqn": dict(CARTPOLE, memory=1000, batch_size=8),
    "ddpg": PENDULUM,
    "sac": PENDULUM,
}


def _policy(agent):
    return agent.q_model if hasattr(agent, "q_model") else agent.policy_model


def _states(environment_id: str):
    environment = Environment.create(environment=environment_id)
    states = environment.reset(seed=0)
    environment.close()
    return states


def _perturbed_weights(model, seed_state, stddev):
    """The weights the act program used: the same draws, from a copy of the act seed."""
    generator = keras.random.SeedGenerator(0)
    generator.state.assign(seed_state)
    weights = []
    for variable in model.variables:
        value = keras.ops.convert_to_numpy(variable.value)
        if variable.trainable:
            noise = keras.random.normal(tuple(variable.shape), dtype=variable.dtype,
                                        seed=generator)
            value = value + keras.ops.convert_to_numpy(noise) * stddev
        weights.append(value)
    return weights


@pytest.mark.parametrize("kind", ["ddpg", "dqn"])
def test_sampled_action_is_the_mode_of_the_perturbed_policy(kind):
    # exploration=0: the noise is the act program's only random draw.
    agent = Agent.create(agent=kind, variable_noise=0.3, exploration=0.0,
                         config=dict(seed=3), **AGENTS[kind])
    model = _policy(agent)
    states = _states(AGENTS[kind]["environment"])
    before = [w.copy() for w in model.get_weights()]
    seed_state = keras.ops.convert_to_numpy(agent._act_seed.state.value).copy()
    noisy = agent.act(states, independent=True, deterministic=False)
    # the weights are unchanged by acting
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    clean = agent.act(states, independent=True, deterministic=True)
    model.set_weights(_perturbed_weights(model, seed_state, 0.3))
    perturbed = agent.act(states, independent=True, deterministic=True)
    np.testing.assert_allclose(np.asarray(noisy, np.float64), np.asarray(perturbed, np.float64),
                               rtol=1e-5, atol=1e-5)
    if kind == "ddpg":
        assert not np.allclose(noisy, clean)
    agent.close()


@pytest.mark.parametrize("kind", sorted(AGENTS))
def test_noise_spreads_sampled_actions_and_not_deterministic_ones(kind):
    spreads = {}
    states = _states(AGENTS[kind]["environment"])
    for stddev in (0.0, 1e-4, 3.0):
        agent = Agent.create(agent=kind, variable_noise=stddev, config=dict(seed=1),
                             **{"exploration": 0.0, **AGENTS[kind]})
        sampled = np.asarray([agent.act(states, independent=True, deterministic=False)
                              for _ in range(40)], np.float64)
        deterministic = np.asarray([agent.act(states, independent=True) for _ in range(3)],
                                   np.float64)
        assert np.ptp(deterministic) == 0.0
        spreads[stddev] = sampled.std()
        agent.close()
    if kind in ("ddpg", "dqn"):  # actions are deterministic without the noise
        assert spreads[0.0] == 0.0
    if kind == "ddpg":  # (a new DQN's Q-values are so close that any noise flips the argmax)
        assert spreads[1e-4] < 0.05
        assert spreads[3.0] > spreads[1e-4]
    assert spreads[3.0] > 0.3


def test_scheduled_noise_uses_the_final_value_when_independent():
    schedule = dict(type="linear", unit="timesteps", num_steps=1000, initial_value=1.0,
                    final_value=0.0)
    agent = Agent.create(agent="ddpg", variable_noise=schedule, exploration=0.0,
                         config=dict(seed=0), **PENDULUM)
    states = _states("Pendulum-v1")
    independent = {float(agent.act(states, independent=True, deterministic=False)[0])
                   for _ in range(5)}
    assert len(independent) == 1  # final value 0: no noise
    dependent = set()
    for _ in range(5):  # timesteps 0-4: σ ≈ 1
        dependent.add(float(agent.act(states)[0]))
        agent.observe(reward=0.0, terminal=False)
    assert len(dependent) == 5
    agent.close()


@pytest.mark.parametrize("value", [-0.1, "much", dict(type="linear", unit="timesteps",
                                                      num_steps=10, initial_value=0.5,
                                                      final_value=-0.5)])
@pytest.mark.parametrize("kind", ["ppo", "dqn"])
def test_bad_variable_noise_names_the_argument(kind, value):
    with pytest.raises(KerasRLError, match="variable_noise"):
        Agent.create(agent=kind, variable_noise=value, **AGENTS[kind])


def test_variable_noise_is_saved_with_the_agent(tmp_path):
    agent = Agent.create(agent="ppo", variable_noise=0.25, **AGENTS["ppo"])
    agent.save(directory=str(tmp_path), format="numpy")
    agent.close()
    loaded = Agent.load(directory=str(tmp_path))
    assert loaded.variable_noise.value() == 0.25
    assert loaded.spec["variable_noise"] == 0.25
    loaded.close()


def test_zero_noise_adds_nothing_to_the_act_program():
    agent = Agent.create(agent="ppo", **AGENTS["ppo"])
    assert agent.variable_noise is None
    assert set(agent._exploration_values(False)) == {"action"}
    agent.close()
