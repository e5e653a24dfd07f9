"""Tests of the gymnasium adapter: space mappings, conversions, terminals."""

import os

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from kerasrl import Environment
from kerasrl.environments.gymnasium import GymnasiumEnvironment
from kerasrl.errors import ArgumentError, UnknownTypeError
from kerasrl.specs import Specs


class SpaceEnv(gym.Env):
    """A gymnasium env with given spaces; records the actions it receives."""

    def __init__(self, observation_space, action_space, length=3, truncate=False, observation=None):
        self.observation_space = observation_space
        self.action_space = action_space
        self.length = length
        self.truncate = truncate
        self.observation = observation
        self.actions = []

    def _observation(self):
        if self.observation is not None:
            return self.observation
        return self.observation_space.sample()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.observation_space.seed(seed)
        self.t = 0
        return self._observation(), {}

    def step(self, action):
        assert self.action_space.contains(action), (action, self.action_space)
        self.actions.append(action)
        self.t += 1
        done = self.t >= self.length
        return self._observation(), 0.5, done and not self.truncate, done and self.truncate, {}


def _make(observation_space, action_space=None, **kwargs):
    gym_env = SpaceEnv(
        observation_space, spaces.Discrete(2) if action_space is None else action_space, **kwargs
    )
    return Environment.create(gym_env), gym_env


def test_discrete_with_start():
    env, gym_env = _make(spaces.Discrete(3, start=2, seed=0), spaces.Discrete(4, start=-1))
    assert env.states() == dict(type="int", shape=(), num_values=3)
    assert env.actions() == dict(type="int", shape=(), num_values=4)
    for _ in range(5):
        state = env.reset()
        assert state.dtype == np.int64 and state.shape == () and 0 <= state < 3
    env.execute(0)
    env.execute(3)
    assert gym_env.actions == [-1, 2]


def test_multi_discrete_equal_and_unequal():
    env, gym_env = _make(
        spaces.MultiDiscrete([3, 3], start=[1, 1], seed=0), spaces.MultiDiscrete([[2, 2], [2, 2]])
    )
    assert env.states() == dict(type="int", shape=(2,), num_values=3)
    assert env.actions() == dict(type="int", shape=(2, 2), num_values=2)
    for _ in range(5):
        state = env.reset()
        assert state.dtype == np.int64 and np.all((state >= 0) & (state < 3))
    env.execute(np.array([[0, 1], [1, 1]]))
    np.testing.assert_array_equal(gym_env.actions[0], [[0, 1], [1, 1]])

    env, gym_env = _make(spaces.MultiDiscrete([2, 5], seed=0), spaces.MultiDiscrete([2, 3]))
    assert env.states() == {
        "gymmdc0_2": dict(type="int", shape=(), num_values=2),
        "gymmdc1_2": dict(type="int", shape=(), num_values=5),
    }
    state = env.reset()
    assert set(state) == {"gymmdc0_2", "gymmdc1_2"} and state["gymmdc1_2"].dtype == np.int64
    env.execute({"gymmdc0_2": 1, "gymmdc1_2": 2})
    np.testing.assert_array_equal(gym_env.actions[0], [1, 2])
    with pytest.raises(Exception, match="outside the spec"):
        env.execute({"gymmdc0_2": 1, "gymmdc1_2": 3})


def test_multi_binary():
    env, gym_env = _make(spaces.MultiBinary(4, seed=0), spaces.MultiBinary([2, 3]))
    assert env.states() == dict(type="bool", shape=(4,))
    assert env.actions() == dict(type="bool", shape=(2, 3))
    state = env.reset()
    assert state.dtype == np.bool_ and state.shape == (4,)
    env.execute(np.ones((2, 3), bool))
    assert gym_env.actions[0].dtype == np.int8 and gym_env.actions[0].sum() == 6


def test_box_bounds():
    env, gym_env = _make(
        spaces.Box(-1.0, 2.0, shape=(3,), seed=0),
        spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, 5.0]), dtype=np.float64),
    )
    assert env.states() == dict(type="float", shape=(3,), min_value=-1.0, max_value=2.0)
    assert env.actions() == dict(
        type="float", shape=(2,), min_value=[-1.0, 0.0], max_value=[1.0, 5.0]
    )
    state = env.reset()
    assert state.dtype == np.float32
    env.execute(np.array([0.5, 4.0], np.float32))
    assert gym_env.actions[0].dtype == np.float64
    with pytest.raises(Exception, match="outside the spec"):
        env.execute(np.array([0.5, 6.0], np.float32))
    # infinite or huge bounds are absent
    env, _ = _make(spaces.Box(np.array([-np.inf, 0.0], np.float32), np.array([np.inf, 1e7], np.float32), seed=0))
    assert env.states() == dict(type="float", shape=(2,))
    # a bool Box is a bool spec
    env, _ = _make(spaces.Box(0, 1, shape=(2,), dtype=np.bool_, seed=0))
    assert env.states() == dict(type="bool", shape=(2,))


def test_box_min_max_value_clip_and_bound():
    big = np.array([100.0, -100.0, 0.5], np.float32)
    gym_env = SpaceEnv(
        spaces.Box(
            np.array([-np.inf, -np.inf, -1.0], np.float32),
            np.array([np.inf, np.inf, 1.0], np.float32),
        ),
        spaces.Discrete(2), observation=big,
    )
    env = Environment.create(gym_env, min_value=-3.0, max_value=3.0)
    spec = env.states()
    assert spec["min_value"] == [-3.0, -3.0, -1.0] and spec["max_value"] == [3.0, 3.0, 1.0]
    np.testing.assert_array_equal(env.reset(), [3.0, -3.0, 0.5])
    np.testing.assert_array_equal(big, [100.0, -100.0, 0.5])  # the env's array is untouched
    with pytest.raises(ArgumentError, match="min_value"):
        Environment.create("CartPole-v1", min_value=-3.0)
    with pytest.raises(ArgumentError, match="max_value"):
        Environment.create("CartPole-v1", min_value=3.0, max_value=-3.0)


def test_drop_states_indices():
    env = Environment.create("CartPole-v1", drop_states_indices=[1, 3], seed=0)
    assert env.states()["shape"] == (2,)
    full = Environment.create("CartPole-v1", seed=0)
    np.testing.assert_array_equal(env.reset(), full.reset()[[0, 2]])
    np.testing.assert_array_equal(env.execute(1)[0], full.execute(1)[0][[0, 2]])
    with pytest.raises(ArgumentError, match="drop_states_indices"):
        Environment.create("CartPole-v1", drop_states_indices=[7])


def test_dict_and_tuple_spaces():
    observation_space = spaces.Dict({
        "pos": spaces.Box(-1.0, 1.0, shape=(2,)),
        "inner": spaces.Dict({"flag": spaces.MultiBinary(1), "id": spaces.Discrete(4)}),
        "pair": spaces.Tuple((spaces.Discrete(2), spaces.Box(0.0, 1.0, shape=()))),
    }, seed=0)
    action_space = spaces.Tuple((
        spaces.Discrete(3), spaces.Dict({"force": spaces.Box(-2.0, 2.0, shape=(1,))})
    ))
    env, gym_env = _make(observation_space, action_space)
    assert env.states() == {
        "pos": dict(type="float", shape=(2,), min_value=-1.0, max_value=1.0),
        "inner": {
            "flag": dict(type="bool", shape=(1,)),
            "id": dict(type="int", shape=(), num_values=4),
        },
        "pair": {
            "gymtpl0": dict(type="int", shape=(), num_values=2),
            "gymtpl1": dict(type="float", shape=(), min_value=0.0, max_value=1.0),
        },
    }
    # gymnasium sorts the keys of a Dict space built from a plain dict
    assert list(Specs(env.states())) == [
        "inner/flag", "inner/id", "pair/gymtpl0", "pair/gymtpl1", "pos"
    ]
    assert list(Specs(env.actions(), "actions")) == ["gymtpl0", "gymtpl1/force"]
    state = env.reset()
    assert state["inner"]["id"].dtype == np.int64 and state["pair"]["gymtpl1"].dtype == np.float32
    env.execute({"gymtpl0": 2, "gymtpl1": {"force": np.array([1.5], np.float32)}})
    env.execute({"gymtpl0": 1, "gymtpl1/force": np.array([-1.0], np.float32)})  # flat names
    first, second = gym_env.actions
    assert isinstance(first, tuple) and first[0] == 2 and isinstance(first[1], dict)
    np.testing.assert_allclose(first[1]["force"], [1.5])
    np.testing.assert_allclose(second[1]["force"], [-1.0])


def test_unsupported_space():
    gym_env = SpaceEnv(spaces.Text(5), spaces.Discrete(2))
    with pytest.raises(ArgumentError, match="Text"):
        Environment.create(gym_env)


def test_terminated_gives_1_with_terminal_reward_and_truncated_gives_2():
    env, _ = _make(spaces.Discrete(2, seed=0), length=2)
    env.reset()
    assert env.execute(0)[1:] == (0, 0.5)
    assert env.execute(0)[1:] == (1, 0.5)
    gym_env = SpaceEnv(spaces.Discrete(2, seed=0), spaces.Discrete(2), length=2)
    env = Environment.create(gym_env, terminal_reward=-10.0)
    env.reset()
    assert env.execute(0)[1:] == (0, 0.5)
    assert env.execute(0)[1:] == (1, -9.5)
    gym_env = SpaceEnv(spaces.Discrete(2, seed=0), spaces.Discrete(2), length=2, truncate=True)
    env = Environment.create(gym_env, terminal_reward=-10.0)
    env.reset()
    env.execute(0)
    assert env.execute(0)[1:] == (2, 0.5)


def test_time_limit_of_registered_and_class_envs():
    env = Environment.create("gym", level="Pendulum-v1")
    assert env.max_episode_timesteps() == 200
    assert env.actions() == dict(type="float", shape=(1,), min_value=-2.0, max_value=2.0)
    env.reset(seed=0)
    states, terminal, reward = env.execute(np.array([0.5], np.float32))
    assert states.shape == (3,) and terminal == 0
    env = Environment.create(SpaceEnv, observation_space=spaces.Discrete(2),
                             action_space=spaces.Discrete(2), length=100, max_episode_steps=2)
    assert env.max_episode_timesteps() == 2
    env.reset()
    env.execute(0)
    assert env.execute(0)[1] == 2


def test_gymnasium_environment_errors():
    with pytest.raises(UnknownTypeError, match="NoSuchLevel"):
        GymnasiumEnvironment("NoSuchLevel-v0")
    with pytest.raises(ArgumentError, match="level"):
        GymnasiumEnvironment(123)
    with pytest.raises(ArgumentError, match="Invalid arguments"):
        GymnasiumEnvironment("CartPole-v1", not_an_argument=3)
    with pytest.raises(ArgumentError, match="gym_kwargs"):
        GymnasiumEnvironment(gym.make("CartPole-v1"), max_episode_steps=3)


def test_gym_seed_argument_and_nan_action():
    env = Environment.create("CartPole-v1", seed=7)
    first = env.reset()
    again = Environment.create("CartPole-v1")
    np.testing.assert_array_equal(again.reset(seed=7), first)
    env = Environment.create("Pendulum-v1")
    env.reset()
    with pytest.raises(Exception, match="outside the spec"):
        env.execute(np.array([np.nan], np.float32))


def test_import_modules_registers_a_level_before_make():
    env = GymnasiumEnvironment("KerasRLCorridor-v0", import_modules="_gym_registration")
    assert env.max_episode_timesteps() == 10
    env.reset()
    states, terminal, reward = env.execute(1)
    assert states.tolist() == [pytest.approx(0.2)] and terminal == 0 and reward == 1.0
    env.close()
    for bad in ("no_such_module_for_kerasrl", "os; rm", 3):
        with pytest.raises(ArgumentError, match="import_modules"):
            GymnasiumEnvironment("CartPole-v1", import_modules=bad)


def test_import_modules_read_from_a_file_needs_trust(tmp_path):
    from kerasrl.errors import UnsafeSpecError

    path = tmp_path / "environment.json"
    path.write_text('{"environment": "gym", "level": "KerasRLCorridor-v0", '
                    '"import_modules": ["_gym_registration"]}')
    with pytest.raises(UnsafeSpecError, match="import_modules"):
        Environment.create(environment=str(path))
    env = Environment.create(environment=str(path), safe_mode=False)
    assert env.max_episode_timesteps() == 10
    env.close()


def test_visualize_directory_records_episodes_or_names_the_missing_dependency(tmp_path):
    import importlib.util

    directory = tmp_path / "videos"
    if importlib.util.find_spec("moviepy") is None:
        with pytest.raises(ArgumentError, match="visualize_directory.*moviepy"):
            GymnasiumEnvironment("KerasRLCorridor-v0", import_modules="_gym_registration",
                                 visualize_directory=str(directory))
    else:
        env = GymnasiumEnvironment("KerasRLCorridor-v0", import_modules="_gym_registration",
                                   visualize_directory=str(directory))
        env.reset()
        terminal = 0
        while not terminal:
            _, terminal, _ = env.execute(1)
        env.close()
        assert any(name.endswith(".mp4") for name in os.listdir(directory))
    with pytest.raises(ArgumentError, match="visualize_directory"):
        GymnasiumEnvironment("CartPole-v1", visualize=True, visualize_directory=str(directory))
