"""Tests of the vectorized environments (gymnasium vector and local)."""

import numpy as np
import pytest

from kerasrl import Environment
from kerasrl.environments.vectorized import (
    GymnasiumVectorEnvironment,
    LocalVectorEnvironment,
    VectorEnvironment,
)
from kerasrl.errors import ArgumentError, CallOrderError, EnvironmentFailure, InputError

N = 4


class MaskedWalk(Environment):
    """Nested dict states with an action mask, random episode lengths, seedable."""

    def states(self):
        return {"position": dict(type="float", shape=(2,)), "info": {"t": dict(type="int", shape=())}}

    def actions(self):
        return {"move": dict(type="int", num_values=3), "scale": dict(type="float", shape=(2,))}

    def reset(self, seed=None):
        if seed is not None or not hasattr(self, "rng"):
            self.rng = np.random.default_rng(seed)
        self.t = 0
        self.length = int(self.rng.integers(2, 6))
        self.position = self.rng.normal(size=2).astype(np.float32)
        return self._states()

    def _states(self):
        mask = np.array([True, self.t % 2 == 0, True])
        return {"position": self.position.copy(), "info": {"t": self.t}, "move_mask": mask}

    def execute(self, actions):
        self.t += 1
        self.position = self.position + (int(actions["move"]) - 1) * np.asarray(actions["scale"])
        return self._states(), self.t >= self.length, float(self.position.sum())


class Seedless(Environment):
    def states(self):
        return dict(type="float", shape=())

    def actions(self):
        return dict(type="int", num_values=2)

    def reset(self):
        return 0.0

    def execute(self, actions):
        return 1.0, True, 0.0


def _random_actions(steps, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(steps, N))


def _run_vector(venv, actions):
    trajectory = [(venv.reset()["state"].copy(), None, None)]
    for action in actions:
        states, terminal, reward = venv.execute({"action": action})
        trajectory.append((states["state"].copy(), terminal.copy(), reward.copy()))
    return trajectory


def _run_separately(actions, seed, **kwargs):
    envs = [Environment.create("CartPole-v1", seed=seed + i, **kwargs) for i in range(N)]
    trajectory = [(np.stack([env.reset() for env in envs]), None, None)]
    for action in actions:
        states, terminals, rewards = [], [], []
        for i, env in enumerate(envs):
            state, terminal, reward = env.execute(int(action[i]))
            if terminal:
                state = env.reset()
            states.append(state)
            terminals.append(terminal)
            rewards.append(reward)
        trajectory.append((np.stack(states), np.array(terminals), np.array(rewards, np.float32)))
    return trajectory


def _assert_same(first, second):
    assert len(first) == len(second)
    for (s1, t1, r1), (s2, t2, r2) in zip(first, second):
        np.testing.assert_array_equal(s1, s2)
        if t1 is not None:
            np.testing.assert_array_equal(t1, t2)
            np.testing.assert_array_equal(r1, r2)


@pytest.mark.parametrize("mode", [None, "local"])
def test_cartpole_shapes_dtypes_and_implementation(mode):
    venv = VectorEnvironment.create("CartPole-v1", num_parallel=N, seed=0, vectorization_mode=mode)
    expected = GymnasiumVectorEnvironment if mode is None else LocalVectorEnvironment
    assert type(venv) is expected
    assert venv.num_parallel == N and venv.max_episode_timesteps == 500
    assert list(venv.states_spec) == ["state"] and list(venv.actions_spec) == ["action"]
    assert venv.actions_spec["action"].num_values == 2
    states = venv.reset()
    assert list(states) == ["state"]
    assert states["state"].shape == (N, 4) and states["state"].dtype == np.float32
    states, terminal, reward = venv.execute({"action": np.zeros(N, np.int64)})
    assert states["state"].shape == (N, 4) and states["state"].dtype == np.float32
    assert terminal.shape == (N,) and terminal.dtype == np.int64
    assert reward.shape == (N,) and reward.dtype == np.float32
    # an array is accepted for a singleton action
    venv.execute(np.ones(N, np.int64))
    venv.close()


@pytest.mark.parametrize("mode", [None, "local"])
def test_auto_reset_and_terminal_codes(mode):
    # always pushing right: every pole falls (terminal 1) after ~10 steps
    venv = VectorEnvironment.create("CartPole", num_parallel=N, seed=1, vectorization_mode=mode)
    previous = venv.reset()["state"]
    lengths = np.zeros(N, int)
    seen_terminal = np.zeros(N, bool)
    for _ in range(30):
        states, terminal, reward = venv.execute({"action": np.ones(N, np.int64)})
        lengths += 1
        assert set(terminal.tolist()) <= {0, 1}
        done = terminal == 1
        if done.any():
            # the returned states of finished sub-envs are fresh reset states
            assert np.all(np.abs(states["state"][done]) <= 0.05)
            assert np.all(lengths[done] < 30)
            lengths[done] = 0
            seen_terminal |= done
        # running sub-envs continue from their previous states
        running = terminal == 0
        assert np.all(np.abs(states["state"][running, 0] - previous[running, 0]) < 0.1)
        previous = states["state"]
    assert seen_terminal.all()
    venv.close()
    # the time limit gives terminal 2 and resets too
    venv = VectorEnvironment.create(
        "CartPole-v1", num_parallel=N, seed=1, max_episode_timesteps=3, vectorization_mode=mode
    )
    assert venv.max_episode_timesteps == 3
    venv.reset()
    terminals = [venv.execute({"action": np.arange(N) % 2})[1] for _ in range(6)]
    np.testing.assert_array_equal(terminals, [[0] * N, [0] * N, [2] * N] * 2)
    venv.close()


@pytest.mark.parametrize("mode", [None, "local"])
def test_seeded_determinism_and_equality_with_single_envs(mode):
    actions = _random_actions(120)
    first = _run_vector(
        VectorEnvironment.create("CartPole-v1", num_parallel=N, seed=5, vectorization_mode=mode),
        actions,
    )
    second = _run_vector(
        VectorEnvironment.create("CartPole-v1", num_parallel=N, seed=5, vectorization_mode=mode),
        actions,
    )
    _assert_same(first, second)
    terminals = np.array([t for _, t, _ in first[1:]])
    assert (terminals == 1).any()  # some episodes ended within the run
    _assert_same(first, _run_separately(actions, seed=5))
    other = _run_vector(
        VectorEnvironment.create("CartPole-v1", num_parallel=N, seed=6, vectorization_mode=mode),
        actions,
    )
    assert not np.array_equal(first[0][0], other[0][0])


def test_gymnasium_and_local_implementations_agree_with_options():
    actions = _random_actions(60, seed=3)
    kwargs = dict(num_parallel=N, seed=2, max_episode_timesteps=7, min_value=-0.2, max_value=0.2)
    fast = VectorEnvironment.create("gym", level="CartPole", **kwargs)
    local = VectorEnvironment.create("gym", level="CartPole", vectorization_mode="local", **kwargs)
    assert isinstance(fast, GymnasiumVectorEnvironment)
    assert fast.states_spec == local.states_spec
    trajectory = _run_vector(fast, actions)
    _assert_same(trajectory, _run_vector(local, actions))
    assert max(np.abs(s).max() for s, _, _ in trajectory) <= np.float32(4.8)
    assert np.abs(np.stack([s for s, _, _ in trajectory])[..., 1]).max() <= np.float32(0.2)


def test_json_and_dict_specs_use_gymnasium_vector():
    venv = VectorEnvironment.create(dict(environment="gym", level="CartPole-v1"), num_parallel=2)
    assert isinstance(venv, GymnasiumVectorEnvironment)
    venv.close()


def test_reward_shaping_and_custom_envs_use_local():
    venv = VectorEnvironment.create(
        "CartPole-v1", num_parallel=N, seed=0, reward_shaping="reward * 2"
    )
    assert isinstance(venv, LocalVectorEnvironment)
    venv.reset()
    _, _, reward = venv.execute({"action": np.zeros(N, np.int64)})
    np.testing.assert_array_equal(reward, np.full(N, 2.0, np.float32))
    with pytest.raises(ArgumentError, match="vectorization_mode"):
        VectorEnvironment.create(MaskedWalk, num_parallel=2, vectorization_mode="sync")


def test_local_dict_states_masks_and_seeding():
    venv = VectorEnvironment.create(MaskedWalk, num_parallel=N, seed=10)
    assert isinstance(venv, LocalVectorEnvironment)
    assert list(venv.states_spec) == ["position", "info/t"]
    states = venv.reset()
    assert set(states) == {"position", "info/t", "move_mask"}
    assert states["position"].shape == (N, 2) and states["position"].dtype == np.float32
    assert states["info/t"].shape == (N,) and states["info/t"].dtype == np.int64
    assert states["move_mask"].shape == (N, 3) and states["move_mask"].dtype == np.bool_
    singles = [Environment.create(MaskedWalk) for _ in range(N)]
    expected = [single.reset(seed=10 + i) for i, single in enumerate(singles)]
    np.testing.assert_array_equal(states["position"], [e["position"] for e in expected])
    rng = np.random.default_rng(0)
    saw_reset = False
    for _ in range(12):
        moves = rng.integers(0, 3, N)
        scales = rng.normal(size=(N, 2)).astype(np.float32)
        states, terminal, reward = venv.execute({"move": moves, "scale": scales})
        for i, single in enumerate(singles):
            state, single_terminal, single_reward = single.execute(
                {"move": int(moves[i]), "scale": scales[i]}
            )
            assert terminal[i] == single_terminal and reward[i] == np.float32(single_reward)
            if single_terminal:
                state = single.reset()
                saw_reset = True
                assert states["info/t"][i] == 0
            np.testing.assert_array_equal(states["position"][i], state["position"])
            np.testing.assert_array_equal(states["move_mask"][i], state["move_mask"])
    assert saw_reset
    # nested action dicts are accepted too
    venv.execute({"move": np.zeros(N, int), "scale": np.zeros((N, 2), np.float32)})
    venv.close()


def test_list_of_environments():
    venv = VectorEnvironment.create([MaskedWalk, MaskedWalk()], seed=0)
    assert isinstance(venv, LocalVectorEnvironment) and venv.num_parallel == 2
    states = venv.reset()
    assert states["position"].shape == (2, 2)
    with pytest.raises(ArgumentError, match="num_parallel"):
        VectorEnvironment.create([MaskedWalk, MaskedWalk], num_parallel=3)
    with pytest.raises(ArgumentError, match="equal specs"):
        VectorEnvironment.create([MaskedWalk, Seedless])


def test_vector_errors():
    with pytest.raises(ArgumentError, match="remote"):
        VectorEnvironment.create("CartPole-v1", num_parallel=2, remote="socket-server")
    with pytest.raises(ArgumentError, match="num_parallel"):
        VectorEnvironment.create("CartPole-v1", num_parallel=0)
    with pytest.raises(ArgumentError, match="seed"):
        VectorEnvironment.create("CartPole-v1", num_parallel=2, seed=-1)
    with pytest.raises(ArgumentError, match="vectorization_mode"):
        VectorEnvironment.create("CartPole-v1", num_parallel=2, vectorization_mode="threads")
    # gymnasium 1.4's CartPole vector entry point only has next-step autoreset
    with pytest.raises(ArgumentError, match="same-step"):
        VectorEnvironment.create("CartPole-v1", num_parallel=2, vectorization_mode="vector_entry_point")
    with pytest.raises(ArgumentError, match="seed"):
        VectorEnvironment.create(Seedless, num_parallel=2, seed=0)
    with pytest.raises(ArgumentError, match="instance"):
        VectorEnvironment.create(Seedless(), num_parallel=2)
    single = VectorEnvironment.create(Seedless(), num_parallel=1)
    assert single.num_parallel == 1


@pytest.mark.parametrize("mode", [None, "local"])
def test_vector_action_and_call_order_errors(mode):
    venv = VectorEnvironment.create("CartPole-v1", num_parallel=N, vectorization_mode=mode)
    with pytest.raises(CallOrderError, match="reset"):
        venv.execute({"action": np.zeros(N, np.int64)})
    venv.reset()
    message = "an action outside the spec returned to an environment"
    with pytest.raises(InputError, match=message):
        venv.execute({"action": np.full(N, 5)})
    with pytest.raises(InputError, match=message):
        venv.execute({"action": np.zeros(N + 1, np.int64)})
    with pytest.raises(InputError, match=message):
        venv.execute({"action": np.zeros((N, 2), np.int64)})
    with pytest.raises(InputError, match=message):
        venv.execute({"other": np.zeros(N, np.int64)})
    venv.close()
    with pytest.raises(CallOrderError, match="close"):
        venv.reset()


def test_local_vector_nan_state_raises():
    class NaNWalk(MaskedWalk):
        def _states(self):
            states = super()._states()
            if self.t == 2:
                states["position"] = np.array([np.nan, 0.0], np.float32)
            return states

    venv = VectorEnvironment.create(NaNWalk, num_parallel=2, seed=0)
    venv.reset()
    actions = {"move": np.ones(2, int), "scale": np.zeros((2, 2), np.float32)}
    venv.execute(actions)
    with pytest.raises(EnvironmentFailure, match="position"):
        venv.execute(actions)


def test_get_config():
    venv = VectorEnvironment.create("CartPole-v1", num_parallel=2, min_value=-1.0, max_value=1.0)
    config = venv.get_config()
    assert config["level"] == "CartPole-v1" and config["num_parallel"] == 2
    assert config["min_value"] == -1.0
    venv.close()
    local = VectorEnvironment.create(MaskedWalk, num_parallel=2)
    assert local.get_config()["vectorization_mode"] == "local"


def test_async_mode_matches_sync():
    actions = _random_actions(40, seed=1)[:, :2]
    trajectories = []
    for mode in ("async", "sync"):
        venv = VectorEnvironment.create(
            "CartPole-v1", num_parallel=2, seed=3, max_episode_timesteps=15,
            vectorization_mode=mode,
        )
        assert venv.vectorization_mode == mode
        trajectory = [venv.reset()["state"].copy()]
        for action in actions:
            states, terminal, reward = venv.execute({"action": action})
            trajectory.append((states["state"].copy(), terminal.tolist(), reward.tolist()))
        venv.close()
        trajectories.append(trajectory)
    np.testing.assert_array_equal(trajectories[0][0], trajectories[1][0])
    for (s1, t1, r1), (s2, t2, r2) in zip(trajectories[0][1:], trajectories[1][1:]):
        np.testing.assert_array_equal(s1, s2)
        assert t1 == t2 and r1 == r2
    assert any(2 in t for _, t, _ in trajectories[0][1:])


# ---------------------------------------------------------------------- registered test envs
class _SpacesEnv:
    """Factory of a gymnasium env with Dict/Tuple spaces (registered below)."""

    @staticmethod
    def make(nan_at=None, **kwargs):
        import gymnasium as gym
        from gymnasium import spaces

        class SpacesEnv(gym.Env):
            observation_space = spaces.Dict({
                "pos": spaces.Box(-1.0, 1.0, shape=(2,)),
                "pair": spaces.Tuple((spaces.Discrete(3, start=1), spaces.MultiBinary(2))),
            })
            action_space = spaces.Tuple((
                spaces.Discrete(2), spaces.Dict({"force": spaces.Box(-2.0, 2.0, shape=(1,))})
            ))

            def reset(self, *, seed=None, options=None):
                super().reset(seed=seed)
                self.t = 0
                self.total = 0.0
                return self._observation(), {}

            def _observation(self):
                pos = self.np_random.uniform(-1, 1, size=2).astype(np.float32)
                if nan_at is not None and self.t == nan_at:
                    pos[0] = np.nan
                return {"pos": pos, "pair": (int(self.np_random.integers(1, 4)),
                                             self.np_random.integers(0, 2, 2).astype(np.int8))}

            def step(self, action):
                assert self.action_space.contains(action), action
                self.t += 1
                self.total += action[0] + float(action[1]["force"][0])
                return self._observation(), self.total, self.t >= 4, False, {}

        return SpacesEnv()


def _register():
    import gymnasium as gym

    if "KerasRLTest/Spaces-v0" not in gym.registry:
        gym.register("KerasRLTest/Spaces-v0", entry_point=_SpacesEnv.make, max_episode_steps=50)


def test_gymnasium_vector_dict_and_tuple_spaces():
    _register()
    fast = VectorEnvironment.create("KerasRLTest/Spaces", num_parallel=3, seed=4)
    local = VectorEnvironment.create(
        "KerasRLTest/Spaces-v0", num_parallel=3, seed=4, vectorization_mode="local"
    )
    assert isinstance(fast, GymnasiumVectorEnvironment) and fast.max_episode_timesteps == 50
    assert list(fast.states_spec) == ["pair/gymtpl0", "pair/gymtpl1", "pos"]
    assert list(fast.actions_spec) == ["gymtpl0", "gymtpl1/force"]
    assert fast.states_spec == local.states_spec and fast.actions_spec == local.actions_spec
    first, second = fast.reset(), local.reset()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    assert first["pair/gymtpl0"].dtype == np.int64 and first["pair/gymtpl1"].dtype == np.bool_
    assert np.all((first["pair/gymtpl0"] >= 0) & (first["pair/gymtpl0"] < 3))
    rng = np.random.default_rng(0)
    for _ in range(8):
        actions = {
            "gymtpl0": rng.integers(0, 2, 3),
            "gymtpl1/force": rng.uniform(-2, 2, (3, 1)).astype(np.float32),
        }
        s1, t1, r1 = fast.execute(actions)
        s2, t2, r2 = local.execute(actions)
        for name in s1:
            np.testing.assert_array_equal(s1[name], s2[name])
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_allclose(r1, r2, rtol=1e-6)
    assert (t1 == 1).all()  # the 4-step episodes ended at step 4 and 8
    fast.close()
    local.close()


def test_gymnasium_vector_nan_state_raises():
    _register()
    venv = VectorEnvironment.create("KerasRLTest/Spaces-v0", num_parallel=2, nan_at=2)
    venv.reset()
    actions = {"gymtpl0": np.zeros(2, int), "gymtpl1": {"force": np.zeros((2, 1), np.float32)}}
    venv.execute(actions)
    with pytest.raises(EnvironmentFailure, match="pos"):
        venv.execute(actions)
    venv.close()


def test_seed_kwarg_in_spec_means_seed_plus_i():
    for mode in (None, "local"):
        venv = VectorEnvironment.create(
            dict(environment="gym", level="CartPole-v1", seed=9), num_parallel=2,
            vectorization_mode=mode,
        )
        states = venv.reset()["state"]
        expected = [Environment.create("CartPole-v1", seed=9 + i).reset() for i in range(2)]
        np.testing.assert_array_equal(states, expected)
        venv.close()


class TypeRecorder(MaskedWalk):
    """Records the Python types of the actions it receives."""

    received: list = []

    def execute(self, actions):
        TypeRecorder.received.append((type(actions["move"]), type(actions["scale"])))
        return super().execute(actions)


def test_local_environments_get_python_scalars_for_scalar_actions():
    # what an unbatched act returns (and Tensorforce's Runner gives an environment)
    venv = VectorEnvironment.create(TypeRecorder, num_parallel=2, seed=0)
    venv.reset()
    TypeRecorder.received.clear()
    venv.execute({"move": np.array([0, 2]), "scale": np.ones((2, 2), np.float32)})
    assert TypeRecorder.received == [(int, np.ndarray)] * 2
    venv.close()
