"""`tracking`: the latest summary values of an agent, read with `agent.tracked_tensors()`."""

from __future__ import annotations

import pytest

from kerasrl import Agent, Runner
from kerasrl.errors import ArgumentError
from kerasrl.summaries import metric_tag

LEARNING_RATE = dict(type="linear", unit="updates", num_steps=10, initial_value=1e-3,
                     final_value=1e-4)


def ppo(**kwargs):
    return Agent.create(agent="ppo", environment="CartPole-v1", batch_size=2,
                        network=[dict(type="dense", size=8)], learning_rate=LEARNING_RATE,
                        max_episode_timesteps=50, config=dict(seed=0), **kwargs)


def test_all_tracks_the_update_metrics_episodes_and_parameters():
    agent = ppo(tracking="all")
    assert agent.tracked_tensors() == {}
    runner = Runner(agent=agent, environment="CartPole-v1", max_episode_timesteps=50)
    runner.run(num_updates=3, use_tqdm=False)
    tracked = agent.tracked_tensors()
    for key, value in agent.last_metrics.items():  # the last update's values, by summary tag
        assert tracked[metric_tag(key)[1]] == pytest.approx(value)
    assert {"loss/policy", "entropy/action", "kl-divergence/action"} <= set(tracked)
    assert tracked["reward/episode_return"] == runner.episode_returns[-1]
    assert tracked["reward/episode_length"] == runner.episode_timesteps[-1]
    assert tracked["parameters/learning_rate"] == pytest.approx(1e-3 - 9e-4 * 3 / 10)
    tracked["loss/policy"] = 1e9  # a copy
    assert agent.tracked_tensors()["loss/policy"] != 1e9
    runner.close()
    agent.close()


def test_a_list_of_labels_tracks_only_those():
    agent = ppo(tracking=["reward"])
    runner = Runner(agent=agent, environment="CartPole-v1", max_episode_timesteps=50)
    runner.run(num_updates=1, use_tqdm=False)
    assert set(agent.tracked_tensors()) == {"reward/episode_return", "reward/episode_length"}
    runner.close()
    agent.close()


def test_without_tracking_nothing_is_tracked():
    agent = ppo()
    assert agent.tracked_tensors() == {}
    agent.close()


@pytest.mark.parametrize("spec", ["variables", ["loss", "action-value"], [], 3, ["bogus"]])
def test_bad_tracking_names_the_argument(spec):
    with pytest.raises(ArgumentError, match="tracking"):
        ppo(tracking=spec)
