"""Tests of `Runner`: limits, batched and in-turn stepping, callbacks,
evaluation, progress bar, custom environments and argument errors."""

from __future__ import annotations

import numpy as np
import pytest

from kerasrl import Agent, Environment, Runner
from kerasrl.errors import ArgumentError

PPO_SPEC = dict(agent="ppo", batch_size=2, network=[dict(type="dense", size=8)], multi_step=2)


class Counter(Environment):
    """Episodes of `length` steps; the reward is the action taken."""

    def __init__(self, length=5):
        super().__init__()
        self.length = length
        self.closed = False
        self.resets = 0
        self.t = 0

    def states(self):
        return dict(type="float", shape=(2,))

    def actions(self):
        return dict(type="int", num_values=3)

    def max_episode_timesteps(self):
        return 10

    def reset(self):
        self.resets += 1
        self.t = 0
        return np.zeros(2, np.float32)

    def execute(self, actions):
        self.t += 1
        return np.full(2, self.t, np.float32), self.t >= self.length, float(actions)

    def close(self):
        self.closed = True


@pytest.fixture(scope="module")
def runner():
    """A PPO runner on 3 CartPole copies (created from an agent spec dict)."""
    runner = Runner(agent=PPO_SPEC, environment="CartPole-v1", num_parallel=3,
                    max_episode_timesteps=30)
    yield runner
    runner.close()


def test_agent_from_spec(runner):
    agent = runner.agent
    assert agent.parallel_interactions == 3
    assert agent.max_episode_timesteps == 30
    assert agent.states_spec.get_config() == dict(type="float", shape=[4])


@pytest.mark.parametrize("batch_agent_calls", [True, False])
def test_num_episodes(runner, batch_agent_calls):
    returns = 0  # each run starts new statistics lists (Tensorforce)
    episodes = runner.agent.episodes
    runner.run(num_episodes=7, batch_agent_calls=batch_agent_calls, use_tqdm=False)
    assert runner.episodes == 7
    # The other environments' episodes still running when the 7th ends are
    # observed by the agent with terminal 2 (Tensorforce's Runner), but are
    # not counted by the runner: the agent holds no unfinished episode.
    assert episodes + 7 <= runner.agent.episodes <= episodes + 7 + runner.num_parallel - 1
    assert not runner.agent._episode_timesteps.any()
    assert not runner.agent._awaiting_observe.any()
    assert len(runner.episode_returns) == returns + 7
    assert len(runner.episode_timesteps) == len(runner.episode_returns)
    new = runner.episode_timesteps[returns:]
    assert all(1 <= n <= 30 for n in new)
    # CartPole pays 1 per step: the return is the episode length.
    assert runner.episode_returns[returns:] == [float(n) for n in new]


@pytest.mark.parametrize("batch_agent_calls", [True, False])
def test_num_timesteps(runner, batch_agent_calls):
    timesteps = runner.agent.timesteps
    runner.run(num_timesteps=45, batch_agent_calls=batch_agent_calls, use_tqdm=False)
    assert runner.timesteps == 45  # a multiple of num_parallel: exact
    assert runner.agent.timesteps == timesteps + 45


@pytest.mark.parametrize("batch_agent_calls", [True, False])
def test_num_updates(runner, batch_agent_calls):
    updates = runner.agent.updates
    runner.run(num_updates=2, batch_agent_calls=batch_agent_calls, use_tqdm=False)
    assert runner.updates == 2
    assert runner.agent.updates == updates + 2


@pytest.mark.parametrize("batch_agent_calls", [True, False])
def test_callback_stops_early(runner, batch_agent_calls):
    calls = []

    def callback(run, parallel):
        assert run is runner
        calls.append(parallel)
        return len(calls) < 2

    runner.run(num_episodes=100, callback=callback, batch_agent_calls=batch_agent_calls,
               use_tqdm=False)
    if batch_agent_calls:
        # Episodes that end in the same batched step as the stopping one still count:
        # the second call may be the first of up to 3 episodes ending together.
        assert 2 <= len(calls) <= 1 + 3
    else:
        assert len(calls) == 2
    assert runner.episodes == len(calls)
    assert all(0 <= p < 3 for p in calls)


def test_callback_timestep_frequency(runner):
    calls = []
    runner.run(num_timesteps=12, batch_agent_calls=False, use_tqdm=False,
               callback=lambda run, parallel: calls.append(run.timesteps),
               callback_timestep_frequency=2)
    assert len(calls) >= 3  # every 2nd step of each of the 3 environments


def test_evaluation_does_not_learn(runner):
    agent = runner.agent
    runner.run(num_episodes=1, use_tqdm=False)  # any unfinished episode is reset
    timesteps, episodes, updates = agent.timesteps, agent.episodes, agent.updates
    weights = [np.array(w) for w in agent.policy_model.get_weights()]
    training_returns = runner.episode_returns
    assert runner.evaluation_returns is training_returns  # Tensorforce shares them
    runner.run(num_episodes=4, evaluation=True, use_tqdm=False)
    assert runner.episodes == 4
    assert len(runner.evaluation_returns) == 4
    assert len(runner.evaluation_timesteps) == len(runner.evaluation_returns)
    # Tensorforce: after an evaluation run, episode_returns are the evaluation's.
    assert runner.episode_returns is runner.evaluation_returns
    assert runner.episode_timesteps is runner.evaluation_timesteps
    assert len(training_returns) == 1
    assert (agent.timesteps, agent.episodes, agent.updates) == (timesteps, episodes, updates)
    for before, after in zip(weights, agent.policy_model.get_weights()):
        np.testing.assert_array_equal(before, np.array(after))


def test_every_statistics_list_exists_before_the_first_run():
    from kerasrl.execution.runner import STATISTICS

    fresh = Runner(agent=PPO_SPEC, environment="CartPole-v1", max_episode_timesteps=30)
    for name in STATISTICS:
        assert getattr(fresh, f"episode_{name}") == []
        assert getattr(fresh, f"evaluation_{name}") == []
    fresh.close()


@pytest.mark.parametrize("batch_agent_calls", [True, False])
def test_time_statistics_per_episode(runner, batch_agent_calls):
    runner.run(num_episodes=3, batch_agent_calls=batch_agent_calls, use_tqdm=False)
    names = ("seconds", "agent_seconds", "env_seconds")
    for name in names:
        values = getattr(runner, f"episode_{name}")
        assert len(values) == 3 and all(v >= 0.0 for v in values)
        assert getattr(runner, f"evaluation_{name}") is values  # shared, as the returns
    for total, agent, env in zip(*(getattr(runner, f"episode_{n}") for n in names)):
        assert agent > 0.0 and env > 0.0
        assert agent + env <= total * 1.01 + 1e-6
    runner.run(num_episodes=2, evaluation=True, batch_agent_calls=batch_agent_calls,
               use_tqdm=False)
    for name in names:
        assert len(getattr(runner, f"evaluation_{name}")) == 2
        assert getattr(runner, f"episode_{name}") is getattr(runner, f"evaluation_{name}")
    assert all(v > 0.0 for v in runner.evaluation_agent_seconds)


def test_progress_bar_without_terminal(runner, capsys):
    runner.run(num_episodes=2, use_tqdm=True)
    runner.run(num_timesteps=6, use_tqdm=True, batch_agent_calls=False)
    runner.run(num_episodes=2, use_tqdm=True, evaluation=True)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err


def test_run_argument_errors(runner):
    with pytest.raises(ArgumentError, match="num_episodes"):
        runner.run(use_tqdm=False)
    with pytest.raises(ArgumentError, match="num_episodes"):
        runner.run(num_episodes=0, use_tqdm=False)
    with pytest.raises(ArgumentError, match="num_timesteps"):
        runner.run(num_timesteps=-5, use_tqdm=False)


def test_agent_instance_and_custom_environment():
    environment = Counter(length=5)
    agent = Agent.create(agent="constant", environment=environment, action_values=2)
    runner = Runner(agent=agent, environment=environment)
    assert runner.agent is agent
    runner.run(num_episodes=3, use_tqdm=False)
    assert runner.episode_timesteps == [5, 5, 5]
    assert runner.episode_returns == [10.0, 10.0, 10.0]
    assert agent.episodes == 3 and agent.timesteps == 15
    assert environment.resets >= 3
    runner.close()
    assert not environment.closed  # the user's instance stays open
    runner = Runner(agent=agent, environment=environment)
    runner.run(num_timesteps=4, use_tqdm=False)
    runner.close()
    assert not environment.closed


class Tracked(Counter):
    instances: list = []

    def __init__(self, length=5):
        super().__init__(length)
        Tracked.instances.append(self)


@pytest.mark.parametrize("batch_agent_calls", [True, False])
def test_created_environments_are_closed(batch_agent_calls):
    Tracked.instances.clear()
    runner = Runner(agent="random", environment=Tracked, num_parallel=2)
    runner.run(num_episodes=4, batch_agent_calls=batch_agent_calls, use_tqdm=False)
    assert runner.episodes == 4
    assert len(Tracked.instances) >= 2
    assert not any(env.closed for env in Tracked.instances)
    runner.close()
    assert all(env.closed for env in Tracked.instances)


def test_agent_spec_string_and_class_environment():
    runner = Runner(agent="random", environment=Counter, num_parallel=2)
    runner.run(num_episodes=4, batch_agent_calls=False, use_tqdm=False)
    assert runner.episode_timesteps == [5, 5, 5, 5]
    runner.close()


def test_constructor_errors():
    with pytest.raises(ArgumentError, match="num_parallel"):
        Runner(agent="random", environment="CartPole-v1", num_parallel=0)
    with pytest.raises(ArgumentError, match="num_parallel"):
        Runner(agent="random", environment="CartPole-v1", num_parallel=1.5)
    with pytest.raises(ArgumentError, match="environment"):
        Runner(agent="random", environment=Counter(), num_parallel=2)
    with pytest.raises(ArgumentError, match="environment"):
        Runner(agent="random")


def test_agent_with_too_few_slots_for_training():
    agent = Agent.create(agent="random", environment=Counter())
    runner = Runner(agent=agent, environment=Counter, num_parallel=2)
    with pytest.raises(ArgumentError, match="parallel_interactions"):
        runner.run(num_episodes=2, use_tqdm=False)
    runner.run(num_episodes=2, evaluation=True, use_tqdm=False)  # independent acting is fine
    assert len(runner.evaluation_returns) == 2
    runner.close()


def test_mismatching_agent_specs():
    agent = Agent.create(agent="random", states=dict(type="float", shape=(3,)),
                         actions=dict(type="int", num_values=3))
    with pytest.raises(ArgumentError, match="specs"):
        Runner(agent=agent, environment=Counter())


class Endless(Counter):
    def __init__(self):
        super().__init__(length=10**9)

    def max_episode_timesteps(self):
        return None


@pytest.mark.parametrize("batch_agent_calls", [True, False])
def test_environments_capped_at_agent_limit(batch_agent_calls):
    agent = Agent.create(agent="constant", environment=Endless(), max_episode_timesteps=8,
                         parallel_interactions=2)
    runner = Runner(agent=agent, environment=Endless, num_parallel=2)
    runner.run(num_episodes=2, batch_agent_calls=batch_agent_calls, use_tqdm=False)
    assert runner.episode_timesteps == [8, 8]
    runner.close()
    runner = Runner(agent=agent, environment=Endless, max_episode_timesteps=5)
    runner.run(num_episodes=1, use_tqdm=False)
    assert runner.episode_timesteps == [5]
    runner.close()
