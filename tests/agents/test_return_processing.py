"""`return_processing`: clipping per return, and Tensorforce's `batch_normalization` per batch.

`batch_normalization` standardizes the returns over the update batch,
`R̂ = (R - mean(R)) / sqrt(max(var(R), 1e-4))`, before the baseline is fitted
to them and, without an estimated advantage, before the policy trains on them.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.errors import ArgumentError

SPACES = dict(states=dict(type="float", shape=(3,)), actions=dict(type="int", num_values=2),
              max_episode_timesteps=12)


def _episodes(seed: int, count: int = 2, length: int = 12) -> list[dict]:
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(count):
        terminal = np.zeros(length, np.int64)
        terminal[-1] = 1
        episodes.append(dict(states=rng.normal(size=(length, 3)).astype(np.float32),
                             actions=rng.integers(0, 2, length), terminal=terminal,
                             reward=rng.uniform(2.0, 8.0, length)))
    return episodes


def _weights_after_update(**kwargs) -> list[np.ndarray]:
    agent = Agent.create(agent="vpg", batch_size=2, network=[dict(type="dense", size=8)],
                         learning_rate=1e-2, config=dict(seed=0), **SPACES, **kwargs)
    for episode in _episodes(1):
        agent.experience(**episode)
    agent.update()
    weights = [np.array(w) for w in agent.policy_model.get_weights()]
    agent.close()
    return weights


def test_normalized_returns_are_the_policy_gradients_weights_without_a_baseline():
    # VPG trains on the return: normalizing it equals normalizing the advantage.
    by_return = _weights_after_update(return_processing="batch_normalization")
    by_advantage = _weights_after_update(advantage_processing="batch_normalization")
    plain = _weights_after_update()
    for a, b in zip(by_return, by_advantage):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(a, b, atol=1e-6) for a, b in zip(by_return, plain))


@pytest.mark.parametrize("processing, expected_mean", [
    ("batch_normalization", 0.0),
    (None, None),
])
def test_the_baseline_is_fitted_to_normalized_returns(processing, expected_mean):
    agent = Agent.create(agent="ppo", batch_size=2, network=[dict(type="dense", size=8)],
                         baseline=[dict(type="dense", size=8)],
                         baseline_optimizer=dict(optimizer="adam", learning_rate=3e-2,
                                                 multi_step=20),
                         discount=0.9, return_processing=processing, config=dict(seed=0),
                         **SPACES)
    episodes = _episodes(2)
    for _ in range(15):  # the same batch again and again
        for episode in episodes:
            agent.experience(**episode)
        agent.update()
    states = np.concatenate([e["states"] for e in episodes])
    predicted = keras.ops.convert_to_numpy(agent.baseline_model(dict(state=states))).reshape(-1)
    if expected_mean is None:  # the raw discounted returns are around 5 / (1 - 0.9) at most
        assert predicted.mean() > 10.0
    else:
        assert abs(predicted.mean() - expected_mean) < 0.3
        assert predicted.std() < 2.0
    agent.close()


def test_clipping_and_normalization_together():
    agent = Agent.create(agent="ppo", batch_size=2, network=[dict(type="dense", size=8)],
                         return_processing=[dict(type="clipping", lower=-5.0, upper=5.0),
                                            dict(type="batch_normalization", only_mean=True)],
                         **SPACES)
    assert agent._return_processing.upper == 5.0
    assert agent._return_normalization.only_mean
    for episode in _episodes(3):
        agent.experience(**episode)
    agent.update()
    agent.close()


@pytest.mark.parametrize("spec", [
    "layer_normalization", dict(type="batch_normalization", decay=0.9),
    [dict(type="batch_normalization"), dict(type="clipping", lower=0.0, upper=1.0)],
    dict(type="batch_normalization", min_variance=0.0),
])
def test_bad_return_processing_names_the_argument(spec):
    with pytest.raises(ArgumentError, match="return_processing"):
        Agent.create(agent="ppo", batch_size=2, return_processing=spec, **SPACES)


def test_the_generic_agent_takes_it_in_reward_estimation():
    agent = Agent.create(
        agent="tensorforce", update=dict(unit="episodes", batch_size=2),
        optimizer=dict(optimizer="adam", learning_rate=1e-3), objective="policy_gradient",
        reward_estimation=dict(horizon="episode", return_processing="batch_normalization"),
        **SPACES)
    assert agent._return_normalization is not None
    assert agent.spec["reward_estimation"]["return_processing"] == "batch_normalization"
    agent.close()
