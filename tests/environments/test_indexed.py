"""Tests of vectorizable and multi-actor custom environments (`IndexedEnvironment`)
and of the `Runner` stepping them."""

from __future__ import annotations

import numpy as np
import pytest

from kerasrl import Agent, Environment, Runner
from kerasrl.environments.environment import EnvironmentOutputError
from kerasrl.environments.indexed import IndexedEnvironment, is_indexed
from kerasrl.errors import ArgumentError, CallOrderError, InputError


class SignGame(Environment):
    """Vectorizable: the state is a sign s in {-1, +1}; action 1 is right for s > 0.

    Reward 1 for the right action, else 0. Each interaction ends (terminal 1)
    with probability `end_probability` per step.
    """

    def __init__(self, end_probability=0.0, seed=0):
        super().__init__()
        self.end_probability = end_probability
        self.rng = np.random.default_rng(seed)
        self.plain_resets = 0
        self.vector_resets = 0

    def states(self):
        return dict(type="float", shape=(1,))

    def actions(self):
        return dict(type="int", num_values=2)

    def is_vectorizable(self):
        return True

    def _draw(self, n):
        return self.rng.choice([-1.0, 1.0], size=(n, 1)).astype(np.float32)

    def reset(self, num_parallel=None):
        self.vectorized = num_parallel is not None
        n = num_parallel if self.vectorized else 1
        self.indices = np.arange(n)
        self.signs = self._draw(n)
        if not self.vectorized:
            self.plain_resets += 1
            return self.signs[0]
        self.vector_resets += 1
        return self.indices.copy(), self.signs.copy()

    def execute(self, actions):
        actions = np.atleast_1d(actions)
        reward = (actions == (self.signs[:, 0] > 0)).astype(np.float32)
        terminal = self.rng.random(len(self.indices)) < self.end_probability
        self.indices = self.indices[~terminal]
        self.signs = self._draw(len(self.indices))
        if not self.vectorized:
            return self.signs[0] if len(self.signs) else np.ones(1, np.float32), \
                bool(terminal[0]), float(reward[0])
        return self.indices.copy(), self.signs.copy(), terminal, reward


class Relay(Environment):
    """Multi-actor: three actors share an episode; actor 2 leaves after 3 steps.

    Every actor's state is (its index, the shared step count); every step
    rewards each acting actor 1. The episode ends for all after 6 steps.
    """

    def __init__(self):
        super().__init__()
        self.resets = 0

    def states(self):
        return dict(type="float", shape=(2,))

    def actions(self):
        return dict(type="int", num_values=2)

    def num_actors(self):
        return 3

    def _states(self):
        return np.stack([[float(i), float(self.t)] for i in self.indices]).astype(np.float32) \
            if len(self.indices) else np.zeros((0, 2), np.float32)

    def reset(self):
        self.resets += 1
        self.t = 0
        self.indices = np.arange(3)
        return self.indices.copy(), self._states()

    def execute(self, actions):
        assert len(actions) == len(self.indices)
        self.t += 1
        terminal = np.array([self.t >= 6 or (i == 2 and self.t >= 3) for i in self.indices])
        reward = np.ones(len(self.indices), np.float32)
        self.indices = self.indices[~terminal]
        return self.indices.copy(), self._states(), terminal, reward


PPO = dict(agent="ppo", batch_size=4, network=[dict(type="dense", size=16)], learning_rate=3e-3)


# ---------------------------------------------------------------------- IndexedEnvironment
def test_is_indexed():
    assert is_indexed(SignGame())
    assert is_indexed(Relay())
    assert not is_indexed("CartPole-v1")


def test_vectorized_reset_and_execute():
    env = IndexedEnvironment(SignGame(end_probability=0.5, seed=1), num_parallel=6)
    indices, states = env.reset()
    assert indices.tolist() == list(range(6))
    assert states["state"].shape == (6, 1) and states["state"].dtype == np.float32
    seen = 0
    while len(indices):
        acted = indices
        indices, states, terminal, reward = env.execute({"action": np.ones(len(acted), np.int64)})
        assert terminal.shape == reward.shape == (len(acted),)
        assert terminal.dtype == np.int64 and reward.dtype == np.float32
        assert indices.tolist() == acted[terminal == 0].tolist()
        assert states["state"].shape == (len(indices), 1)
        seen += 1
    assert seen >= 1
    with pytest.raises(CallOrderError, match="reset"):
        env.execute({"action": np.ones(1, np.int64)})


def test_time_limit_ends_every_interaction_with_terminal_2():
    env = IndexedEnvironment(SignGame(), num_parallel=3, max_episode_timesteps=2)
    indices, _ = env.reset()
    indices, _, terminal, _ = env.execute(np.zeros(3, np.int64))
    assert terminal.tolist() == [0, 0, 0] and len(indices) == 3
    indices, states, terminal, _ = env.execute(np.zeros(3, np.int64))
    assert terminal.tolist() == [2, 2, 2] and len(indices) == 0
    assert states["state"].shape == (0, 1)


def test_multi_actor_states_aligned_with_acted_indices_are_accepted():
    class ActedRows(Relay):
        def execute(self, actions):
            before = self._states()
            indices, _, terminal, reward = super().execute(actions)
            return indices, before, terminal, reward  # one row per acted actor

    env = IndexedEnvironment(ActedRows())
    assert env.num_parallel == 3 and env.multi_actor
    env.reset()
    for _ in range(2):
        indices, states, _, _ = env.execute(np.zeros(3, np.int64))
    indices, states, terminal, _ = env.execute(np.zeros(3, np.int64))
    assert terminal.tolist() == [0, 0, 1]
    assert indices.tolist() == [0, 1] and states["state"].shape == (2, 2)


class Faulty(SignGame):
    def __init__(self, fault):
        super().__init__()
        self.fault = fault

    def execute(self, actions):
        indices, states, terminal, reward = super().execute(actions)
        if self.fault == "order":
            indices = indices[::-1]
        elif self.fault == "rows":
            states = states[:1]
        elif self.fault == "terminal":
            terminal = np.full(len(terminal), 3)
        elif self.fault == "nan":
            reward = np.full(len(reward), np.nan)
        elif self.fault == "tuple":
            return states, terminal, reward
        return indices, states, terminal, reward


@pytest.mark.parametrize("fault, match", [
    ("order", "parallel indices"), ("rows", "state 'state'"), ("terminal", "terminal"),
    ("nan", "finite rewards"), ("tuple", "4-tuple"),
])
def test_invalid_outputs_name_what_was_expected(fault, match):
    env = IndexedEnvironment(Faulty(fault), num_parallel=3)
    env.reset()
    with pytest.raises(EnvironmentOutputError, match=match):
        env.execute(np.zeros(3, np.int64))


def test_invalid_actions_and_arguments():
    env = IndexedEnvironment(SignGame(), num_parallel=3)
    env.reset()
    with pytest.raises(InputError, match="batch of 3"):
        env.execute(np.zeros(2, np.int64))
    with pytest.raises(InputError, match=r"\[0, 2\)"):
        env.execute(np.full(3, 5))
    with pytest.raises(ArgumentError, match="num_parallel"):
        IndexedEnvironment(SignGame())
    with pytest.raises(ArgumentError, match="num_parallel"):
        IndexedEnvironment(Relay(), num_parallel=2)
    with pytest.raises(ArgumentError, match="vectorizable"):
        IndexedEnvironment(Environment())


def test_multi_actor_environment_is_rejected_by_environment_create():
    with pytest.raises(ArgumentError, match="multi-actor"):
        Environment.create(Relay)


# ---------------------------------------------------------------------- Runner
def test_runner_steps_a_vectorizable_environment_as_one_batch():
    env = SignGame(end_probability=0.3, seed=2)
    runner = Runner(PPO, environment=env, num_parallel=4, max_episode_timesteps=8)
    assert runner.agent.parallel_interactions == 4
    runner.run(num_episodes=20, use_tqdm=False)
    assert runner.episodes == 20 and len(runner.episode_returns) == 20
    assert env.vector_resets >= 5 and env.plain_resets == 0
    assert all(1 <= n <= 8 for n in runner.episode_timesteps)
    assert all(0 <= r <= n for r, n in zip(runner.episode_returns, runner.episode_timesteps))
    runner.close()


def test_runner_uses_a_vectorizable_environment_plainly_without_num_parallel():
    runner = Runner(PPO, environment=dict(environment=SignGame, end_probability=0.5),
                    max_episode_timesteps=8)
    runner.run(num_episodes=5, use_tqdm=False)
    inner = runner._probe.environments[0].environment
    assert inner.plain_resets >= 5 and inner.vector_resets == 0
    runner.close()


def test_runner_multi_actor_counts_each_actor_as_an_interaction():
    env = Relay()
    runner = Runner(PPO, environment=env, max_episode_timesteps=10)
    assert runner.num_parallel == 3 and runner.agent.parallel_interactions == 3
    runner.run(num_episodes=9, use_tqdm=False)
    assert runner.episodes == 9 and env.resets == 3
    # Per shared episode: actor 2 leaves after 3 steps, actors 0 and 1 after 6.
    assert sorted(runner.episode_timesteps) == [3] * 3 + [6] * 6
    assert runner.episode_returns == [float(n) for n in runner.episode_timesteps]
    assert runner.timesteps == 3 * (3 + 6 + 6)
    runner.run(num_episodes=3, evaluation=True, use_tqdm=False)
    assert runner.evaluation_timesteps[-3:] == [3, 6, 6]
    runner.close()


def test_runner_rejects_invalid_indexed_setups():
    with pytest.raises(ArgumentError, match="num_parallel"):
        Runner(PPO, environment=Relay, num_parallel=2, max_episode_timesteps=10)
    with pytest.raises(ArgumentError, match="evaluation"):
        Runner(PPO, environment=SignGame, num_parallel=3, evaluation=True,
               max_episode_timesteps=10)
    with pytest.raises(ArgumentError, match="reward_shaping"):
        Runner(PPO, environment=dict(environment=SignGame, reward_shaping="reward"),
               num_parallel=3, max_episode_timesteps=10)
    # the same shaping on Environment.create's wrapper is refused, not dropped
    shaped = Environment.create(environment=SignGame, reward_shaping="reward",
                                max_episode_timesteps=10)
    with pytest.raises(ArgumentError, match="reward_shaping"):
        Runner(PPO, environment=shaped, num_parallel=3)
    with pytest.raises(ArgumentError, match="reward_shaping"):
        shaped.reset(num_parallel=3)
    shaped.close()
    agent = Agent.create(agent=PPO, states=Relay().states(), actions=Relay().actions(),
                         max_episode_timesteps=10)
    runner = Runner(agent, environment=Relay())
    with pytest.raises(ArgumentError, match="parallel_interactions"):
        runner.run(num_episodes=1, use_tqdm=False)
    runner.close()
    agent.close()


def test_ppo_learns_a_vectorizable_environment():
    runner = Runner(dict(PPO, batch_size=8, config=dict(seed=0)), environment=SignGame(seed=3), num_parallel=8,
                    max_episode_timesteps=10)
    runner.run(num_timesteps=6000, use_tqdm=False)
    first, last = runner.episode_returns[:16], runner.episode_returns[-16:]
    assert np.mean(first) < 7.5 and np.mean(last) >= 9.0, (np.mean(first), np.mean(last))
    runner.close()


def test_fit_and_evaluate_use_indexed_environments():
    agent = Agent.create(agent=PPO, states=Relay().states(), actions=Relay().actions(),
                         max_episode_timesteps=10, parallel_interactions=3)
    history = agent.fit(Relay(), episodes=6, verbose=0)
    assert sorted(history.history["episode_length"]) == [3, 3, 6, 6, 6, 6]
    result = agent.evaluate(Relay(), episodes=3)
    assert result["mean_return"] == pytest.approx(5.0)  # (3 + 6 + 6) / 3
    agent.close()
    vector = Agent.create(agent=PPO, states=SignGame().states(), actions=SignGame().actions(),
                          max_episode_timesteps=6, parallel_interactions=4)
    history = vector.fit(SignGame(end_probability=0.2), episodes=10, verbose=0)
    assert len(history.history["episode_return"]) == 10
    vector.close()
