"""Tensorforce 0.6.5's public surface outside the agents: names and submodule
imports, the error and `util`, environment keys, and the Runner's end-of-run,
statistics and saved-agent semantics (reference §2.3, §4.1, §4.3)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from kerasrl import Agent, Environment, Runner
from kerasrl.errors import ArgumentError, KerasRLError, NotSupportedError

STATES = dict(type="float", shape=(4,))
ACTIONS = dict(type="int", num_values=2)
SMALL = dict(network=dict(type="auto", size=8, depth=1))

#: Every public name Tensorforce 0.6.5 exports from these modules.
TENSORFORCE_NAMES = {
    "kerasrl": ["Agent", "Environment", "Runner", "TensorforceError", "util"],
    "kerasrl.agents": [
        "Agent", "agents", "A2C", "A2CAgent", "AdvantageActorCritic", "AC", "ACAgent",
        "ActorCritic", "Constant", "ConstantAgent", "DPG", "DDPG", "DPGAgent",
        "DeterministicPolicyGradient", "DDQN", "DoubleDQNAgent", "DoubleDQN", "DQN", "DQNAgent",
        "DeepQNetwork", "DuelingDQN", "DuelingDQNAgent", "PPO", "PPOAgent",
        "ProximalPolicyOptimization", "Random", "RandomAgent", "Recorder", "Tensorforce",
        "TensorforceAgent", "TRPO", "TRPOAgent", "TrustRegionPolicyOptimization", "VPG",
        "REINFORCE", "VPGAgent", "VanillaPolicyGradient",
    ],
    "kerasrl.execution": ["Runner"],
    "kerasrl.environments": ["Environment", "RemoteEnvironment", "MultiprocessingEnvironment",
                             "SocketEnvironment", "OpenAIGym"],
}


@pytest.mark.parametrize("module", sorted(TENSORFORCE_NAMES))
def test_every_tensorforce_name_imports_from_its_module(module):
    imported = importlib.import_module(module)
    for name in TENSORFORCE_NAMES[module]:
        assert getattr(imported, name) is not None, f"{module}.{name}"
        assert name in imported.__all__, f"{name} missing from {module}.__all__"


def test_agent_aliases_name_the_class_agent_create_builds():
    from kerasrl import agents

    assert agents.PPO is agents.PPOAgent is agents.ProximalPolicyOptimization
    assert agents.VPG is agents.REINFORCE is agents.VanillaPolicyGradient
    assert agents.DQN is agents.DeepQNetwork and agents.DDQN is agents.DoubleDQN
    for key, cls in agents.agents.items():
        assert isinstance(cls, type) and issubclass(cls, Agent), key
    ppo = Agent.create(agent="ppo", states=STATES, actions=ACTIONS, max_episode_timesteps=10,
                       batch_size=2, **SMALL)
    assert type(ppo) is agents.agents["ppo"] is agents.PPOAgent


def test_agents_by_class_and_by_constructor():
    from kerasrl.agents import PPOAgent, TensorforceAgent

    env = Environment.create("CartPole-v1", max_episode_timesteps=20)
    by_class = Agent.create(agent=PPOAgent, environment=env, batch_size=2, **SMALL)
    direct = PPOAgent(states=STATES, actions=ACTIONS, max_episode_timesteps=20, batch_size=2,
                      **SMALL)
    assert type(by_class) is type(direct) is PPOAgent
    assert by_class.spec == direct.spec
    generic = dict(states=STATES, actions=ACTIONS, max_episode_timesteps=20,
                   update=dict(unit="episodes", batch_size=1),
                   optimizer=dict(type="adam", learning_rate=1e-3),
                   objective="policy_gradient", reward_estimation=dict(horizon=1),
                   policy=SMALL)
    composed = TensorforceAgent(**generic)
    assert composed.spec["agent"] == "tensorforce"
    assert composed.spec == Agent.create(agent="tensorforce", **generic).spec
    assert Agent.create(agent=TensorforceAgent, **generic).spec == composed.spec
    env.close()


def test_tensorforce_error_catches_every_kerasrl_error():
    from kerasrl import TensorforceError

    assert TensorforceError is KerasRLError
    with pytest.raises(TensorforceError, match="num_values"):
        Agent.create(agent="random", states=STATES, actions=dict(type="int", num_values=0))


def test_util_helpers():
    from kerasrl import util

    assert util.np_dtype("float") is np.float32 and util.np_dtype("long") is np.int64
    assert util.py_dtype("bool") is bool and util.py_dtype("int") is int
    assert util.product((2, 3, 4)) == 24 and util.product(()) == 1
    assert util.is_iterable([1]) and not util.is_iterable("ab") and not util.is_iterable(3)
    assert 0 < util.epsilon < 1e-3
    with pytest.raises(ArgumentError, match="dtype.*util.np_dtype.*'double'"):
        util.np_dtype("double")


@pytest.mark.parametrize("key", ["ale", "arcade_learning_environment", "retro", "osim", "ple",
                                 "vizdoom", "carla"])
def test_unprovided_environment_keys_say_why(key):
    with pytest.raises(NotSupportedError, match=f"'{key}'.*not provided by kerasrl: .+"):
        Environment.create(environment=key, level="x")


def test_unprovided_adapter_classes_fail_to_import_with_the_reason():
    with pytest.raises(ImportError, match="OpenAIRetro.*gym-retro is unmaintained"):
        from kerasrl.environments import OpenAIRetro  # noqa: F401
    with pytest.raises(NotSupportedError, match="ale-py"):
        from kerasrl.environments import ArcadeLearningEnvironment  # noqa: F401
    with pytest.raises(ImportError):
        from kerasrl.environments import NoSuchEnvironment  # noqa: F401


# ---------------------------------------------------------------- runs stopped mid-episode
def _episode(env, agent, length=4):
    """One recorded episode from independent acts, ending with terminal 1."""
    states, actions, terminal, reward = [], [], [], []
    state = env.reset()
    for t in range(length):
        action = agent.act(state, independent=True)
        states.append(state)
        actions.append(action)
        state, _, r = env.execute(action)
        terminal.append(1 if t == length - 1 else 0)
        reward.append(r)
    return dict(states=states, actions=actions, terminal=terminal, reward=reward)


@pytest.mark.parametrize("mode", ["single", "batched", "in_turn", "updates"])
def test_a_run_stopped_mid_episode_leaves_no_unfinished_episode(mode):
    spec = dict(agent="ppo", batch_size=2, **SMALL)
    num_parallel = 1 if mode == "single" else 3
    # Seeded, so that each backend runs the same episodes every time.
    runner = Runner(agent=dict(spec, config=dict(seed=0)), environment="CartPole-v1",
                    max_episode_timesteps=50, num_parallel=num_parallel, seed=0)
    agent = runner.agent
    if mode == "updates":
        runner.run(num_updates=1, use_tqdm=False)
        assert runner.updates == 1  # the cut episodes add no update
    else:
        runner.run(num_timesteps=9, batch_agent_calls=mode == "batched", use_tqdm=False)
        assert runner.timesteps == agent.timesteps == 9
    # Every running episode ended as if observed with terminal 2 (Tensorforce's
    # Runner): the agent counts it, the runner does not.
    running = num_parallel if mode != "updates" else None
    if mode == "single" and sum(runner.episode_timesteps) == runner.timesteps:
        running = 0  # its episode ended on the last step (3 steps, in the others, never end one)
    assert not agent._episode_timesteps.any() and not agent._awaiting_observe.any()
    if running is not None:
        assert agent.episodes == runner.episodes + running
    assert len(runner.episode_returns) == runner.episodes
    assert list(runner.episode_timestep) == [0] * num_parallel
    # So the act-experience-update interface works right away (§2.3).
    env = Environment.create("CartPole-v1", max_episode_timesteps=50)
    agent.experience(**_episode(env, agent))
    updates = agent.updates
    assert agent.update() == 1 and agent.updates == updates + 1
    env.close()
    runner.close()


def test_timestep_callbacks_read_the_current_episode_timestep():
    seen = []

    def callback(runner, parallel):
        seen.append(int(runner.episode_timestep[parallel]))
        return True

    runner = Runner(agent="random", environment="CartPole-v1", num_parallel=2)
    runner.run(num_episodes=3, callback=callback, callback_timestep_frequency=3,
               use_tqdm=False)
    assert seen and all(t % 3 == 0 and t > 0 for t in seen)
    runner.close()


def test_statistics_are_per_run_and_an_evaluation_run_fills_episode_returns():
    runner = Runner(agent="random", environment="CartPole-v1")
    runner.run(num_episodes=3, use_tqdm=False)
    training = runner.episode_returns
    assert len(training) == 3 and runner.evaluation_returns is training
    runner.run(num_episodes=2, evaluation=True, use_tqdm=False)
    assert len(runner.episode_returns) == len(runner.evaluation_returns) == 2
    assert runner.episode_returns is runner.evaluation_returns
    assert runner.episode_timesteps is runner.evaluation_timesteps
    assert runner.episode_returns == [float(n) for n in runner.episode_timesteps]
    assert len(training) == 3  # the training run's list is kept as it was
    runner.close()


# ---------------------------------------------------------------- saved agents
def test_runner_loads_a_saved_agent_from_a_directory(tmp_path):
    agent = Agent.create(agent="ppo", environment="CartPole-v1", batch_size=2, **SMALL)
    weights = [np.array(w) for w in agent.policy_model.get_weights()]
    agent.save(str(tmp_path))
    agent.close()
    runner = Runner(agent=dict(directory=str(tmp_path)), environment="CartPole-v1",
                    num_parallel=2)
    loaded = runner.agent
    assert loaded.parallel_interactions == 2
    for before, after in zip(weights, loaded.policy_model.get_weights()):
        np.testing.assert_array_equal(before, np.array(after))
    runner.run(num_episodes=2, use_tqdm=False)
    assert runner.episodes == 2
    runner.close()
    with pytest.raises(KerasRLError):
        Runner(agent=dict(directory=str(tmp_path / "missing")), environment="CartPole-v1")


# ---------------------------------------------------------------- vectorized through create
class Countdown(Environment):
    """Vectorizable: interaction i ends (terminal 1) after `3 + i` steps."""

    def states(self):
        return dict(type="float", shape=(1,))

    def actions(self):
        return dict(type="int", num_values=2)

    def is_vectorizable(self):
        return True

    def reset(self, num_parallel=None):
        self.left = 3 + np.arange(num_parallel or 1)
        self.running = np.arange(num_parallel or 1)
        states = self.left[:, None].astype(np.float32)
        return (self.running, states) if num_parallel else states[0]

    def execute(self, actions):
        self.left[self.running] -= 1
        terminal = (self.left[self.running] == 0).astype(np.int64)
        self.running = self.running[terminal == 0]
        states = self.left[self.running][:, None].astype(np.float32)
        return self.running, states, terminal, np.ones(len(terminal), np.float32)


def test_created_vectorizable_environment_steps_the_indexed_protocol():
    # Tensorforce's examples/act_observe_vectorized.py: reset(num_parallel=n) on
    # the environment Environment.create returns (indices, states batch).
    env = Environment.create(environment=Countdown, max_episode_timesteps=4)
    assert env.is_vectorizable()
    indices, states = env.reset(num_parallel=3)
    assert indices.tolist() == [0, 1, 2] and states.shape == (3, 1)
    finished = {}
    step = 0
    while len(indices):
        step += 1
        indices_before = indices
        indices, states, terminal, reward = env.execute(np.zeros(len(indices), np.int64))
        assert len(terminal) == len(reward) == len(indices_before)
        finished.update({int(i): int(t) for i, t in zip(indices_before, terminal) if t})
    # 0 and 1 end by themselves; 2 reaches max_episode_timesteps first: terminal 2.
    assert finished == {0: 1, 1: 1, 2: 2} and step == 4
    assert env.reset().shape == (1,)  # an ordinary reset goes back to one episode
    with pytest.raises(ArgumentError, match="num_parallel.*not vectorizable"):
        Environment.create("CartPole-v1").reset(num_parallel=2)
    runner = Runner(agent="random", environment=env, num_parallel=3)
    runner.run(num_episodes=6, use_tqdm=False)
    assert runner.episodes == 6 and runner.agent.parallel_interactions == 3
    runner.close()


def test_architecture_specification_and_summaries_of_an_agent():
    agent = Agent.create(agent="ppo", environment="CartPole-v1", batch_size=2,
                         network=[dict(type="dense", size=8)],
                         baseline=[dict(type="dense", size=8)])
    architecture = agent.model.get_architecture()  # Tensorforce's test harness asks the model
    assert agent.model is agent
    assert architecture.startswith("policy:") and "\nbaseline:" in architecture
    assert "Total params" in architecture
    assert agent.get_specification() == agent.get_config()
    assert {"loss", "reward", "entropy"} <= set(agent.get_available_summaries())
    agent.close()
    random = Agent.create(agent="random", environment="CartPole-v1")
    assert random.get_architecture() == "Agent 'random' has no networks."
