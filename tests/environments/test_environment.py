"""Tests of `Environment.create`, custom environments and `EnvironmentWrapper`."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from kerasrl import Environment
from kerasrl.environments.environment import EnvironmentOutputError, EnvironmentWrapper
from kerasrl.environments.gymnasium import GymnasiumEnvironment
from kerasrl.errors import (
    ArgumentError,
    CallOrderError,
    EnvironmentFailure,
    InputError,
    KerasRLError,
    SpecError,
    UnknownTypeError,
)


# ---------------------------------------------------------------------- test environments
class MaskedGrid(Environment):
    """Dict states (nested) with an action mask; dict actions; seedable."""

    def __init__(self, size=5, length=None):
        super().__init__()
        self.size = size
        self.length = length
        self.custom_attribute = "grid"
        self.received_actions = []

    def states(self):
        return {
            "position": dict(type="float", shape=(2,), min_value=0.0, max_value=float(self.size)),
            "info": {"count": dict(type="int", shape=(), num_values=1000)},
        }

    def actions(self):
        return {
            "move": dict(type="int", num_values=4),
            "speed": dict(type="float", shape=(), min_value=0.0, max_value=1.0),
        }

    def max_episode_timesteps(self):
        return self.length

    def _states(self):
        mask = np.ones(4, dtype=bool)
        mask[self.count % 4] = False
        return {
            "position": self.position.copy(),
            "info": {"count": self.count},
            "move_mask": mask,
        }

    def reset(self, seed=None):
        rng = np.random.default_rng(seed)
        self.position = rng.uniform(0, self.size, size=2).astype(np.float32)
        self.count = 0
        return self._states()

    def execute(self, actions):
        self.received_actions.append(actions)
        step = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)[int(actions["move"])]
        self.position = np.clip(self.position + step * float(actions["speed"]), 0, self.size)
        self.count += 1
        terminal = bool(self.count >= 6)
        return self._states(), terminal, float(self.position.sum())


class Counter(Environment):
    """Singleton float state, singleton int action, no seed argument."""

    def __init__(self, episode_length=100, own_limit=None):
        super().__init__()
        self.episode_length = episode_length
        self.own_limit = own_limit

    def states(self):
        return dict(type="float", shape=(1,))

    def actions(self):
        return dict(type="int", num_values=2)

    def max_episode_timesteps(self):
        return self.own_limit

    def reset(self):
        self.t = 0
        return [0.0]  # a list: converted to an np.float32 array

    def execute(self, actions):
        self.t += 1
        return [float(self.t)], self.t >= self.episode_length, 1


class Faulty(Environment):
    """Returns what it is told to, at a given timestep."""

    def __init__(self, state=None, terminal=False, reward=0.0, at=1, reset_state=None):
        super().__init__()
        self.bad = dict(state=state, terminal=terminal, reward=reward)
        self.at = at
        self.reset_state = reset_state

    def states(self):
        return {"obs": dict(type="float", shape=(2,))}

    def actions(self):
        return dict(type="int", num_values=2)

    def reset(self):
        self.t = 0
        if self.reset_state is not None:
            return self.reset_state
        return {"obs": np.zeros(2, np.float32)}

    def execute(self, actions):
        self.t += 1
        if self.t == self.at:
            state = self.bad["state"] if self.bad["state"] is not None else {
                "obs": np.zeros(2, np.float32)
            }
            return state, self.bad["terminal"], self.bad["reward"]
        return {"obs": np.ones(2, np.float32)}, False, 0.0


def _find_cartpole_json(tmp_path):
    """The shared Tensorforce benchmark config (or an identical copy when not available)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "tensorforce-data" / "configs" / "cartpole.json"
        if candidate.is_file():
            return candidate
    path = tmp_path / "cartpole.json"
    path.write_text(json.dumps(dict(
        environment="gym", level="CartPole", max_episode_timesteps=500,
        min_value=-3.0, max_value=3.0,
    )))
    return path


# ---------------------------------------------------------------------- create: resolution
def test_create_gymnasium_id():
    env = Environment.create("CartPole-v1")
    assert isinstance(env, EnvironmentWrapper)
    assert isinstance(env.environment, GymnasiumEnvironment)
    assert env.states() == dict(type="float", shape=(4,))
    assert env.actions() == dict(type="int", shape=(), num_values=2)
    assert env.max_episode_timesteps() == 500
    env.close()


@pytest.mark.parametrize("key", ["gym", "gymnasium", "openai_gym", "default", "GYM"])
def test_create_registry_key_with_level(key):
    env = Environment.create(key, level="CartPole-v1")
    assert env.environment.level_id == "CartPole-v1"
    env.close()


def test_create_versionless_id():
    env = Environment.create("CartPole")
    assert env.environment.level_id == "CartPole-v1"  # the latest registered version
    assert env.max_episode_timesteps() == 500
    env.close()


def test_create_json_file(tmp_path):
    path = _find_cartpole_json(tmp_path)
    env = Environment.create(str(path))
    assert env.environment.level_id == "CartPole-v1"
    assert env.max_episode_timesteps() == 500
    spec = env.states()
    # infinite velocity bounds replaced by -3/3, finite bounds kept
    np.testing.assert_allclose(spec["min_value"], [-4.8, -3.0, -0.41887903, -3.0], rtol=1e-6)
    np.testing.assert_allclose(spec["max_value"], [4.8, 3.0, 0.41887903, 3.0], rtol=1e-6)
    states = env.reset()
    for _ in range(20):
        states, terminal, _ = env.execute(0)
        assert np.all(states >= np.asarray(spec["min_value"], np.float32))
        assert np.all(states <= np.asarray(spec["max_value"], np.float32))
        if terminal:
            break
    env.close()


def test_create_dict_spec():
    env = Environment.create(
        dict(environment="gym", level="CartPole-v1", max_episode_timesteps=50)
    )
    assert env.max_episode_timesteps() == 50
    env.close()
    env = Environment.create(dict(type=MaskedGrid, size=7))
    assert env.environment.size == 7
    env.close()
    with pytest.raises(ArgumentError, match="max_episode_timesteps"):
        Environment.create(dict(type=Counter, max_episode_timesteps=5), max_episode_timesteps=6)
    with pytest.raises(ArgumentError, match="environment"):
        Environment.create(dict(type=Counter, environment=Counter))


def test_create_custom_class_and_instance():
    env = Environment.create(MaskedGrid, size=3)
    assert isinstance(env, EnvironmentWrapper) and env.environment.size == 3
    instance = MaskedGrid()
    wrapped = Environment.create(instance, max_episode_timesteps=4)
    assert wrapped.environment is instance and wrapped.max_episode_timesteps() == 4
    with pytest.raises(ArgumentError, match="kwargs"):
        Environment.create(instance, size=3)
    with pytest.raises(ArgumentError, match="Invalid arguments"):
        Environment.create(MaskedGrid, unknown_argument=1)


def test_create_wrapped_returned_as_is():
    env = Environment.create(Counter, max_episode_timesteps=10)
    assert Environment.create(env) is env
    assert Environment.create(env, max_episode_timesteps=10) is env
    with pytest.raises(ArgumentError, match="max_episode_timesteps"):
        Environment.create(env, max_episode_timesteps=5)
    with pytest.raises(ArgumentError, match="kwargs"):
        Environment.create(env, episode_length=3)


def test_create_gymnasium_env_instance_and_class():
    import gymnasium as gym

    env = Environment.create(gym.make("CartPole-v1"))
    assert env.max_episode_timesteps() == 500
    env.close()
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    env = Environment.create(CartPoleEnv, max_episode_timesteps=30)
    assert env.max_episode_timesteps() == 30
    env.reset()
    env.close()


def test_create_import_path(tmp_path, monkeypatch):
    (tmp_path / "kerasrl_test_env_module.py").write_text(
        "from kerasrl import Environment\n"
        "class Constant(Environment):\n"
        "    def __init__(self, value=1.0):\n"
        "        super().__init__()\n"
        "        self.value = value\n"
        "    def states(self):\n"
        "        return dict(type='float', shape=())\n"
        "    def actions(self):\n"
        "        return dict(type='bool', shape=())\n"
        "    def reset(self):\n"
        "        return self.value\n"
        "    def execute(self, actions):\n"
        "        return self.value, True, 0.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    env = Environment.create("kerasrl_test_env_module.Constant", value=2.0)
    assert env.reset() == np.float32(2.0)
    env = Environment.create("kerasrl_test_env_module")  # module path: its one class
    assert type(env.environment).__name__ == "Constant"
    env = Environment.create("gymnasium.envs.classic_control.cartpole.CartPoleEnv")
    assert env.states()["shape"] == (4,)


def test_create_errors():
    with pytest.raises(UnknownTypeError, match="NoSuchEnv-v9"):
        Environment.create("NoSuchEnv-v9")
    with pytest.raises(UnknownTypeError, match="no_such_type"):
        Environment.create(dict(type="no_such_type"))
    with pytest.raises(ArgumentError, match="level"):
        Environment.create("gym")
    with pytest.raises(ArgumentError, match="missing.json"):
        Environment.create("/nonexistent/missing.json")
    with pytest.raises(ArgumentError, match="environment"):
        Environment.create(None)
    with pytest.raises(ArgumentError, match="environment"):
        Environment.create(42)
    with pytest.raises(ArgumentError, match="max_episode_timesteps"):
        Environment.create(Counter, max_episode_timesteps=0)
    with pytest.raises(ArgumentError, match="max_episode_timesteps"):
        Environment.create(Counter, max_episode_timesteps="ten")
    with pytest.raises(ArgumentError, match="EnvironmentWrapper"):
        Environment.create(EnvironmentWrapper)
    with pytest.raises(UnknownTypeError, match="Nope"):
        Environment.create("gym", level="Nope-v0")


# Remote modes themselves are tested in tests/environments/test_remote.py.


def test_remote_argument_errors():
    with pytest.raises(ArgumentError, match="remote"):
        Environment.create("CartPole-v1", remote="carrier-pigeon")
    with pytest.raises(ArgumentError, match="blocking"):
        Environment.create("CartPole-v1", blocking=True)
    with pytest.raises(ArgumentError, match="host"):
        Environment.create("CartPole-v1", host="localhost")
    with pytest.raises(ArgumentError, match="port"):
        Environment.create("CartPole-v1", port=1234)


def test_max_episode_timesteps_rules():
    # overrides the environment's own None
    env = Environment.create(Counter, max_episode_timesteps=3)
    assert env.max_episode_timesteps() == 3
    # smaller than the environment's own value is fine, larger is an error
    assert Environment.create(Counter, own_limit=10, max_episode_timesteps=5) \
        .max_episode_timesteps() == 5
    assert Environment.create(Counter, own_limit=10).max_episode_timesteps() == 10
    with pytest.raises(ArgumentError, match="max_episode_timesteps"):
        Environment.create(Counter, own_limit=10, max_episode_timesteps=20)
    # for gymnasium ids the TimeLimit follows max_episode_timesteps
    env = Environment.create("CartPole-v1", max_episode_timesteps=1000)
    assert env.max_episode_timesteps() == 1000
    env.close()


# ---------------------------------------------------------------------- wrapper behaviour
def test_custom_env_dict_states_and_masks():
    env = Environment.create(MaskedGrid)
    states = env.reset(seed=1)
    assert set(states) == {"position", "info", "move_mask"}
    assert states["position"].dtype == np.float32 and states["position"].shape == (2,)
    assert states["info"]["count"].dtype == np.int64
    assert states["move_mask"].dtype == np.bool_ and states["move_mask"].tolist() == [
        False, True, True, True
    ]
    states, terminal, reward = env.execute({"move": 2, "speed": 0.5})
    assert terminal == 0 and isinstance(terminal, int)
    assert isinstance(reward, float)
    assert states["info"]["count"] == 1
    # '/'-flattened action dicts are accepted too
    env.execute({"move": np.int64(0), "speed": np.float32(0.1)})
    env.execute({"move": 3, "speed": 1.0})
    env.execute({"move": 3, "speed": 1.0})
    env.execute({"move": 3, "speed": 1.0})
    states, terminal, reward = env.execute({"move": 1, "speed": 0.0})
    assert terminal == 1
    with pytest.raises(CallOrderError, match="reset"):
        env.execute({"move": 1, "speed": 0.0})


def test_singleton_state_converted_to_spec_dtype():
    env = Environment.create(Counter)
    states = env.reset()
    assert isinstance(states, np.ndarray) and states.dtype == np.float32 and states.shape == (1,)
    states, terminal, reward = env.execute(1)
    assert states.dtype == np.float32 and reward == 1.0 and isinstance(reward, float)


def test_seeding():
    a = Environment.create("CartPole-v1", seed=3)
    b = Environment.create("CartPole-v1", seed=3)
    c = Environment.create("CartPole-v1", seed=4)
    first = a.reset()
    np.testing.assert_array_equal(first, b.reset())
    assert not np.array_equal(first, c.reset())
    np.testing.assert_array_equal(a.reset(seed=11), c.reset(seed=11))
    grid = Environment.create(MaskedGrid)
    np.testing.assert_array_equal(grid.reset(seed=5)["position"], grid.reset(seed=5)["position"])
    with pytest.raises(ArgumentError, match="seed"):
        Environment.create(Counter).reset(seed=1)


def test_wrapper_time_limit_gives_terminal_2():
    env = Environment.create(Counter, max_episode_timesteps=3)
    env.reset()
    assert env.execute(0)[1] == 0
    assert env.execute(0)[1] == 0
    assert env.execute(0)[1] == 2
    with pytest.raises(CallOrderError):
        env.execute(0)
    # a true terminal at the limit stays 1
    env = Environment.create(Counter, episode_length=3, max_episode_timesteps=3)
    env.reset()
    env.execute(0)
    env.execute(0)
    assert env.execute(0)[1] == 1


def test_gymnasium_terminated_and_truncated():
    env = Environment.create("CartPole-v1", seed=0)
    env.reset()
    terminals = []
    for _ in range(100):
        _, terminal, _ = env.execute(1)  # always push right: the pole falls
        terminals.append(terminal)
        if terminal:
            break
    assert terminals[-1] == 1 and set(terminals[:-1]) == {0}
    env = Environment.create("CartPole-v1", max_episode_timesteps=4, seed=0)
    env.reset()
    assert [env.execute(i % 2)[1] for i in range(4)] == [0, 0, 0, 2]


def test_reward_shaping_callable():
    calls = []

    def shaping(states, actions, terminal, reward, next_states):
        calls.append((states.copy(), actions, terminal, reward, next_states.copy()))
        return reward * 10.0

    env = Environment.create(Counter, reward_shaping=shaping)
    env.reset()
    _, terminal, reward = env.execute(1)
    assert reward == 10.0
    previous, action, terminal, original, following = calls[0]
    assert previous.tolist() == [0.0] and action == 1 and original == 1.0
    assert following.tolist() == [1.0]
    _, _, _ = env.execute(0)
    assert calls[1][0].tolist() == [1.0]  # previous states advance

    def shaping_terminal(states, actions, terminal, reward, next_states):
        return -1.0, 1 if next_states[0] >= 2 else terminal

    env = Environment.create(Counter, reward_shaping=shaping_terminal)
    env.reset()
    assert env.execute(0)[1:] == (0, -1.0)
    assert env.execute(0)[1:] == (1, -1.0)


def test_reward_shaping_string():
    env = Environment.create(
        Counter, episode_length=2, reward_shaping="-5.0 if terminal else reward + math.sqrt(4)"
    )
    env.reset()
    assert env.execute(1)[1:] == (0, 3.0)
    assert env.execute(1)[1:] == (1, -5.0)
    env = Environment.create(
        "CartPole-v1", seed=0, reward_shaping="float(np.abs(next_states).sum() + 0 * random.random())"
    )
    states = env.reset()
    next_states, _, reward = env.execute(0)
    assert reward == pytest.approx(float(np.abs(next_states).sum()))
    assert not np.array_equal(states, next_states)


def test_reward_shaping_errors():
    with pytest.raises(ArgumentError, match="reward_shaping"):
        Environment.create(Counter, reward_shaping="reward +")
    with pytest.raises(ArgumentError, match="reward_shaping"):
        Environment.create(Counter, reward_shaping=3)
    with pytest.raises(ArgumentError, match="undefined_name"):
        Environment.create(Counter, reward_shaping="undefined_name")
    env = Environment.create(Counter, reward_shaping=lambda *args: float("nan"))
    env.reset()
    with pytest.raises(EnvironmentFailure, match="reward"):
        env.execute(0)


def test_attribute_forwarding():
    env = Environment.create(MaskedGrid)
    assert env.custom_attribute == "grid"
    env.custom_attribute = "changed"
    assert env.environment.custom_attribute == "changed"
    with pytest.raises(AttributeError):
        env.no_such_attribute  # noqa: B018
    gym_env = Environment.create("CartPole-v1")
    assert gym_env.reward_threshold == 475.0  # forwarded to GymnasiumEnvironment


def test_two_phase_interface():
    env = Environment.create(Counter)
    env.start_reset()
    states, terminal, reward = env.receive_execute()
    assert states.tolist() == [0.0] and terminal == -1 and reward is None
    env.start_execute(1)
    with pytest.raises(CallOrderError):
        env.start_execute(1)
    states, terminal, reward = env.receive_execute()
    assert states.tolist() == [1.0] and terminal == 0 and reward == 1.0
    with pytest.raises(CallOrderError):
        env.receive_execute()


def test_get_config_recreates():
    env = Environment.create("CartPole", max_episode_timesteps=100, min_value=-2.0, max_value=2.0)
    config = env.get_config()
    json.dumps(config)
    again = Environment.create(config)
    assert again.states() == env.states() and again.max_episode_timesteps() == 100
    custom = Environment.create(MaskedGrid, max_episode_timesteps=9)
    assert custom.get_config()["max_episode_timesteps"] == 9


# ---------------------------------------------------------------------- error cases
def _expect_output_error(env, match, function="execute"):
    with pytest.raises(EnvironmentOutputError, match=match) as info:
        env.reset()
        if function == "execute":
            env.execute(0)
    assert isinstance(info.value, InputError) and isinstance(info.value, EnvironmentFailure)
    return str(info.value)


def test_nan_state_named():
    env = Environment.create(Faulty, state={"obs": np.array([0.0, np.nan])})
    message = _expect_output_error(env, "obs")
    assert "Faulty" in message and "nan" in message.lower()
    # also after the first (fully checked) calls
    env = Environment.create(Faulty, state={"obs": np.array([np.inf, 0.0], np.float32)}, at=8)
    env.reset()
    for _ in range(7):
        env.execute(0)
    with pytest.raises(EnvironmentOutputError, match="obs"):
        env.execute(0)
    env = Environment.create(Faulty, reset_state={"obs": [np.nan, 1.0]})
    _expect_output_error(env, "obs", function="reset")


def test_unknown_and_missing_state_keys():
    env = Environment.create(
        Faulty, state={"obs": np.zeros(2), "extra": np.zeros(1)}
    )
    assert "extra" in _expect_output_error(env, "extra")
    env = Environment.create(Faulty, state={"other": np.zeros(2)})
    _expect_output_error(env, "other")
    env = Environment.create(Faulty, reset_state={})
    _expect_output_error(env, "missing", function="reset")
    # masks must belong to an int action and have the right shape
    env = Environment.create(Faulty, state={"obs": np.zeros(2), "nothing_mask": [True, True]})
    _expect_output_error(env, "nothing_mask")
    env = Environment.create(Faulty, state={"obs": np.zeros(2), "action_mask": [True] * 3})
    _expect_output_error(env, "action_mask")
    env = Environment.create(Faulty, state={"obs": np.zeros(2), "action_mask": [True, False]})
    env.reset()
    states, _, _ = env.execute(0)
    assert states["action_mask"].dtype == np.bool_


def test_bad_state_shape_and_type():
    env = Environment.create(Faulty, state={"obs": np.zeros(3)})
    _expect_output_error(env, "shape")
    env = Environment.create(Faulty, state=np.zeros(2))
    _expect_output_error(env, "dict")
    env = Environment.create(Faulty, state={"obs": np.array(["a", "b"])})
    _expect_output_error(env, "obs")
    # a wrong shape is caught after the first calls too
    env = Environment.create(Faulty, state={"obs": np.zeros(3)}, at=9)
    env.reset()
    for _ in range(8):
        env.execute(0)
    with pytest.raises(EnvironmentOutputError, match="shape"):
        env.execute(0)


@pytest.mark.parametrize("terminal", [3, -1, 1.0, "yes", None, np.array([0, 1])])
def test_bad_terminal(terminal):
    env = Environment.create(Faulty, terminal=terminal)
    _expect_output_error(env, "terminal")


@pytest.mark.parametrize("terminal, expected", [
    (True, 1), (np.bool_(False), 0), (np.int64(2), 2), (np.array(1), 1), (0, 0)
])
def test_good_terminal_values(terminal, expected):
    env = Environment.create(Faulty, terminal=terminal)
    env.reset()
    result = env.execute(0)[1]
    assert result == expected and type(result) is int


@pytest.mark.parametrize("reward", [float("nan"), math.inf, "1.0", None, [1.0], True])
def test_bad_reward(reward):
    env = Environment.create(Faulty, reward=reward)
    _expect_output_error(env, "reward")


def test_good_reward_values():
    for reward in (1, np.float32(0.5), np.array(2.0), np.int64(3)):
        env = Environment.create(Faulty, reward=reward)
        env.reset()
        value = env.execute(0)[2]
        assert type(value) is float and value == float(reward)


def test_execute_before_reset():
    env = Environment.create(Counter)
    with pytest.raises(CallOrderError, match="reset"):
        env.execute(0)


@pytest.mark.parametrize("action", [5, -1, 1.5, np.array([0, 1]), "a", {"action": 7}])
def test_action_outside_spec_singleton(action):
    env = Environment.create(Counter)
    env.reset()
    with pytest.raises(InputError, match="an action outside the spec returned to an environment"):
        env.execute(action)


@pytest.mark.parametrize("actions", [
    {"move": 4, "speed": 0.5},  # int out of range
    {"move": 1, "speed": 1.5},  # float above max_value
    {"move": 1, "speed": np.nan},
    {"move": 1, "speed": [0.1, 0.2]},  # wrong shape
    {"move": 1},  # missing
    {"move": 1, "speed": 0.5, "jump": 1},  # unknown
    3,  # not a dict
])
def test_action_outside_spec_dict(actions):
    env = Environment.create(MaskedGrid)
    env.reset()
    with pytest.raises(InputError, match="an action outside the spec returned to an environment"):
        env.execute(actions)
    assert env.environment.received_actions == []  # never reached the environment


def test_invalid_specs():
    class BadSpec(Counter):
        def states(self):
            return dict(type="complex", shape=(1,))

    with pytest.raises(SpecError, match="BadSpec"):
        Environment.create(BadSpec)


def test_all_errors_are_kerasrl_errors():
    for call in (
        lambda: Environment.create("NoSuchEnv-v9"),
        lambda: Environment.create(Counter).execute(0),
    ):
        with pytest.raises(KerasRLError):
            call()
