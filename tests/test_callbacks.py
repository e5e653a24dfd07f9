"""Tests of the Keras-style layer: `agent.fit`, `agent.evaluate` and callbacks."""

from __future__ import annotations

import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.callbacks import Callback, History, LambdaCallback
from kerasrl.errors import ArgumentError


@pytest.fixture(scope="module")
def agent():
    agent = Agent.create(agent="ppo", environment="CartPole-v1", max_episode_timesteps=40,
                         batch_size=2, network=[dict(type="dense", size=8)], multi_step=2)
    yield agent
    agent.close()


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin", logs))

    def on_episode_end(self, episode, logs=None):
        self.events.append(("episode_end", episode, logs))

    def on_update_end(self, update, logs=None):
        self.events.append(("update_end", update, logs))

    def on_train_end(self, logs=None):
        self.events.append(("train_end", logs))

    def of(self, kind):
        return [event for event in self.events if event[0] == kind]


def test_fit_returns_history(agent):
    episodes = agent.episodes
    history = agent.fit("CartPole-v1", episodes=5, verbose=0)
    assert isinstance(history, History)
    assert len(history.history["episode_return"]) >= 5
    assert len(history.history["episode_length"]) == len(history.history["episode_return"])
    assert all(1 <= n <= 40 for n in history.history["episode_length"])
    assert agent.episodes >= episodes + 5


def test_fit_timesteps(agent):
    timesteps = agent.timesteps
    history = agent.fit("CartPole-v1", timesteps=60, verbose=0)
    assert agent.timesteps == timesteps + 60
    assert sum(history.history["episode_length"]) <= 60


def test_fit_parallel_environments():
    agent = Agent.create(agent="random", environment="CartPole-v1", parallel_interactions=3)
    history = agent.fit("CartPole-v1", episodes=6, verbose=0)
    assert len(history.history["episode_return"]) >= 6
    assert agent.episodes >= 6


def test_evaluate(agent):
    timesteps, updates = agent.timesteps, agent.updates
    weights = [np.array(w) for w in agent.policy_model.get_weights()]
    result = agent.evaluate("CartPole-v1", episodes=4)
    assert {"mean_return", "std_return", "mean_length", "episodes"} <= set(result)
    assert result["episodes"] == 4
    assert 1.0 <= result["mean_length"] <= 40.0
    assert result["mean_return"] == pytest.approx(result["mean_length"])  # 1 per step
    assert result["std_return"] >= 0.0
    assert (agent.timesteps, agent.updates) == (timesteps, updates)
    for before, after in zip(weights, agent.policy_model.get_weights()):
        np.testing.assert_array_equal(before, np.array(after))


def test_evaluate_stochastic(agent):
    result = agent.evaluate("CartPole-v1", episodes=3, deterministic=False, num_parallel=1)
    assert result["episodes"] == 3


def test_callback_hooks(agent):
    recorder = Recorder()
    updates = agent.updates
    history = agent.fit("CartPole-v1", episodes=4, verbose=0, callbacks=[recorder])
    assert recorder.agent is agent and recorder.model is agent
    assert recorder.events[0] == ("train_begin", {})
    assert recorder.events[-1][0] == "train_end"
    episode_events = recorder.of("episode_end")
    assert len(episode_events) == len(history.history["episode_return"]) >= 4
    assert [event[1] for event in episode_events] == list(range(len(episode_events)))
    for _, _, logs in episode_events:
        assert {"episode_return", "episode_length", "parallel", "timesteps"} <= set(logs)
    assert [logs["episode_return"] for _, _, logs in episode_events] == \
        history.history["episode_return"]
    update_events = recorder.of("update_end")
    assert len(update_events) == agent.updates - updates >= 1
    for _, _, logs in update_events:
        assert {"policy_loss", "entropy"} <= set(logs)
        assert all(np.isfinite(v) for v in logs.values())
    assert [event[1] for event in update_events] == list(range(updates, agent.updates))


def test_single_callback_not_in_list(agent):
    recorder = Recorder()
    agent.fit("CartPole-v1", episodes=1, verbose=0, callbacks=recorder)
    assert recorder.of("episode_end")


def test_stop_training(agent):
    class Stop(Callback):
        def on_episode_end(self, episode, logs=None):
            if episode >= 1:
                self.agent.stop_training = True

    history = agent.fit("CartPole-v1", episodes=50, verbose=0, callbacks=[Stop()])
    assert len(history.history["episode_return"]) == 2
    # The flag does not stick: the next fit runs normally.
    history = agent.fit("CartPole-v1", episodes=2, verbose=0)
    assert len(history.history["episode_return"]) >= 2


def test_stop_training_keras_style(agent):
    class Stop(Callback):
        def on_episode_end(self, episode, logs=None):
            self.model.stop_training = True

    history = agent.fit("CartPole-v1", episodes=50, verbose=0, callbacks=[Stop()])
    assert len(history.history["episode_return"]) == 1


def test_lambda_callback(agent):
    seen = {"begin": 0, "episodes": [], "updates": 0, "end": 0}
    callback = LambdaCallback(
        on_train_begin=lambda logs: seen.__setitem__("begin", seen["begin"] + 1),
        on_episode_end=lambda episode, logs: seen["episodes"].append(logs["episode_return"]),
        on_update_end=lambda update, logs: seen.__setitem__("updates", seen["updates"] + 1),
        on_train_end=lambda logs: seen.__setitem__("end", seen["end"] + 1),
    )
    history = agent.fit("CartPole-v1", episodes=3, verbose=0, callbacks=[callback])
    assert seen["begin"] == 1 and seen["end"] == 1
    assert seen["episodes"] == history.history["episode_return"]
    assert seen["updates"] >= 1


@pytest.mark.parametrize("bad", [object(), lambda runner, parallel: True, "history"])
def test_non_callback_rejected(agent, bad):
    timesteps = agent.timesteps
    with pytest.raises(ArgumentError, match="callbacks"):
        agent.fit("CartPole-v1", episodes=1, verbose=0, callbacks=[bad])
    assert agent.timesteps == timesteps


def test_fit_with_progress_bar(agent):
    history = agent.fit("CartPole-v1", episodes=2, verbose=1)
    assert len(history.history["episode_return"]) >= 2
    result = agent.evaluate("CartPole-v1", episodes=2, verbose=1)
    assert result["episodes"] == 2


def test_fit_argument_errors(agent):
    with pytest.raises(ArgumentError):
        agent.fit("CartPole-v1", verbose=0)
    with pytest.raises(ArgumentError, match="num_parallel"):
        agent.fit("CartPole-v1", episodes=2, num_parallel=4, verbose=0)
