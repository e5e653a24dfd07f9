"""The vectorizable NumPy cart-pole registered as `'custom_cartpole'` (Tensorforce's
`custom_cartpole`): specs, physics, termination, randomization, seeding, the
vectorized protocol, `Environment.create` and the `Runner`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kerasrl import Environment, Runner
from kerasrl.environments import CartPole
from kerasrl.errors import ArgumentError, CallOrderError, InputError

# Fixed physics (gymnasium's classic values) for hand computations.
FIXED = dict(pole_mass=0.1, pole_length=0.5, cart_mass=1.0, relative_force=1.0)
# Observation order with both options: angle, angle velocity, cart velocity, location.
ANGLE, ANGLE_VELOCITY, VELOCITY, LOCATION = range(4)


def default_bounds():
    """The termination bounds of the default ranges, by hand: ten timesteps (0.02 s) of
    the largest accelerations at rest."""
    g = 9.8
    light, heavy = 0.5 + 0.05, 1.5 + 0.5
    max_angle_acc = 1.5 * g / light / 0.1 / (4 / 3 - 0.5 / light)
    min_angle_acc = 0.75 * g / heavy / 1.0 / (4 / 3 - 0.05 / heavy)
    max_acc = (1.5 * g - 0.05 * 0.1 * min_angle_acc) / light
    return dict(angle=math.pi / 4, angle_velocity=max_angle_acc * 0.2, velocity=max_acc * 0.2)


def step_by_hand(obs, force, pole_mass, pole_length, cart_mass, gravity=9.8, dt=0.02):
    """One explicit Euler step of the frictionless cart-pole (Florian 2007)."""
    angle, angle_vel, vel, loc = (float(v) for v in obs)
    total = cart_mass + pole_mass
    temp = (force + pole_mass * pole_length * angle_vel ** 2 * math.sin(angle)) / total
    angle_acc = (gravity * math.sin(angle) - math.cos(angle) * temp) / (
        pole_length * (4 / 3 - pole_mass * math.cos(angle) ** 2 / total))
    acc = temp - pole_mass * pole_length * angle_acc * math.cos(angle) / total
    return np.array([angle + dt * angle_vel, angle_vel + dt * angle_acc,
                     vel + dt * acc, loc + dt * vel])


# ---------------------------------------------------------------------- specs
@pytest.mark.parametrize("velocities,location,observed", [
    (True, False, ["angle", "angle_velocity", "velocity"]),
    (False, False, ["angle"]),
    (True, True, ["angle", "angle_velocity", "velocity", "location"]),
    (False, True, ["angle", "location"]),
])
def test_state_spec_per_option(velocities, location, observed):
    env = CartPole(state_velocities=velocities, state_location=location)
    spec = env.states()
    assert spec["type"] == "float" and spec["shape"] == (len(observed),)
    bounds = default_bounds()
    bounds["location"] = bounds["velocity"]  # Tensorforce's location bound
    expected = np.array([bounds[name] for name in observed])
    np.testing.assert_allclose(spec["max_value"], expected, rtol=1e-6)
    np.testing.assert_allclose(spec["min_value"], -expected, rtol=1e-6)
    state = env.reset()
    assert state.shape == (len(observed),) and state.dtype == np.float32


@pytest.mark.parametrize("continuous,noop,expected", [
    (False, True, dict(type="int", shape=(), num_values=3)),
    (False, False, dict(type="int", shape=(), num_values=2)),
    (True, True, dict(type="float", shape=())),
])
def test_action_spec_per_option(continuous, noop, expected):
    env = CartPole(action_continuous=continuous, action_noop=noop)
    assert env.actions() == expected
    assert env.is_vectorizable() and env.max_episode_timesteps() is None


def test_defaults_are_tensorforces():
    env = CartPole()
    assert env.states()["shape"] == (3,)
    assert env.actions() == dict(type="int", shape=(), num_values=3)
    config = env.get_config()
    assert config["pole_mass"] == [0.05, 0.5] and config["pole_length"] == [0.1, 1.0]
    assert config["cart_mass"] == [0.5, 1.5] and config["relative_force"] == [0.75, 1.5]
    assert config["gravity"] == 9.8 and config["action_timedelta"] == 0.02
    assert config["seed"] is None


def test_get_config_recreates_it():
    env = CartPole(**FIXED, state_location=True, seed=4)
    again = Environment.create(env.get_config())
    assert again.states()["shape"] == (4,)
    np.testing.assert_array_equal(again.reset(), env.reset())


# ---------------------------------------------------------------------- physics
@pytest.mark.parametrize("action,direction", [(0, -1.0), (1, 1.0), (2, 0.0)])
def test_one_step_matches_the_equations(action, direction):
    env = CartPole(**FIXED, state_location=True, state_initial_max_angle=0.2,
                   state_initial_max_angle_velocity=0.3, seed=1)
    obs = env.reset()
    assert obs[LOCATION] == 0.0  # episodes start at location 0
    state, terminal, reward = env.execute(action)
    expected = step_by_hand(obs, direction * 9.8, 0.1, 0.5, 1.0)
    np.testing.assert_allclose(state, expected, rtol=1e-5, atol=1e-6)
    assert terminal is False and reward == 1.0


def test_continuous_push_scales_the_force_and_leaves_the_action_alone():
    env = CartPole(**{**FIXED, "relative_force": 1.5}, state_location=True,
                   action_continuous=True, seed=2)
    obs = env.reset()
    action = np.array(-0.4, np.float32)
    state, _, _ = env.execute(action)
    expected = step_by_hand(obs, -0.4 * 1.5 * 9.8, 0.1, 0.5, 1.0)
    np.testing.assert_allclose(state, expected, rtol=1e-5, atol=1e-6)
    assert action == np.float32(-0.4)


def test_action_timedelta_and_gravity_enter_the_step():
    env = CartPole(**FIXED, gravity=3.0, action_timedelta=0.05, state_location=True, seed=3)
    obs = env.reset()
    state, _, _ = env.execute(1)
    expected = step_by_hand(obs, 3.0, 0.1, 0.5, 1.0, gravity=3.0, dt=0.05)
    np.testing.assert_allclose(state, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- termination
def test_terminal_exactly_when_a_bound_is_crossed_and_reward_one_per_step():
    env = CartPole(state_location=True, seed=5)
    bound = env.states()["max_value"]
    for episode in range(3):
        env.reset()
        steps = 0
        while True:
            state, terminal, reward = env.execute(episode % 3)  # left / right / no push
            steps += 1
            assert reward == 1.0
            assert terminal == bool(np.any(np.abs(state) > bound)), (steps, state, bound)
            if terminal:
                break
            assert steps < 1000


def _set_state(env, location=0.0, velocity=0.0, angle=0.0, angle_velocity=0.0):
    env._states[:] = [location, velocity, angle, angle_velocity]


@pytest.mark.parametrize("field,offset,ends", [
    ("angle", -0.01, False), ("angle", 0.01, True),
    ("angle_velocity", 0.05, True), ("velocity", 0.05, True),
])
def test_angle_and_velocity_bounds(field, offset, ends):
    env = CartPole(**FIXED, seed=0)
    env.reset()
    bounds = dict(angle=math.pi / 4, angle_velocity=env.states()["max_value"][1],
                  velocity=env.states()["max_value"][2])
    value = bounds[field] + offset
    _set_state(env, **{field: value})  # at rest otherwise: one step barely moves it
    assert env.execute(2)[1] is ends
    env.reset()
    _set_state(env, **{field: -value})
    assert env.execute(2)[1] is ends  # both sides


def test_location_bound_only_when_observed():
    observed = CartPole(**FIXED, state_location=True, seed=0)
    observed.reset()
    bound = float(observed.states()["max_value"][LOCATION])
    _set_state(observed, location=bound - 0.01)
    assert observed.execute(2)[1] is False
    _set_state(observed, location=bound + 0.01)
    assert observed.execute(2)[1] is True
    hidden = CartPole(**FIXED, seed=0)
    hidden.reset()
    _set_state(hidden, location=1e6)
    assert hidden.execute(2)[1] is False


# ---------------------------------------------------------------------- randomization
def test_physics_are_drawn_per_reset_within_the_ranges():
    env = CartPole(seed=3)
    assert env.physics is None
    draws = []
    for _ in range(20):
        env.reset()
        draws.append(env.physics)
    for name, (low, high) in dict(pole_mass=(0.05, 0.5), pole_length=(0.1, 1.0),
                                  cart_mass=(0.5, 1.5), relative_force=(0.75, 1.5)).items():
        values = [d[name] for d in draws]
        assert all(low <= v <= high for v in values) and len(set(values)) == 20, name
    assert {d["gravity"] for d in draws} == {9.8}


def test_fixed_values_and_list_ranges():
    env = CartPole(pole_mass=0.2, pole_length=[0.3, 0.3], cart_mass=[1.0, 2.0],
                   relative_force=1.0)
    for _ in range(3):
        env.reset()
        physics = env.physics
        assert physics["pole_mass"] == 0.2 and physics["pole_length"] == 0.3
        assert physics["relative_force"] == 1.0 and 1.0 <= physics["cart_mass"] <= 2.0


def test_initial_states_within_the_initial_ranges():
    env = CartPole(state_location=True, state_initial_max_angle=0.1,
                   state_initial_max_angle_velocity=0.0, state_initial_max_velocity=0.2,
                   seed=6)
    _, states = env.reset(num_parallel=200)
    assert np.all(np.abs(states[:, ANGLE]) <= 0.1) and np.abs(states[:, ANGLE]).max() > 0.05
    assert np.all(states[:, ANGLE_VELOCITY] == 0.0) and np.all(states[:, LOCATION] == 0.0)
    assert np.all(np.abs(states[:, VELOCITY]) <= 0.2)


# ---------------------------------------------------------------------- seeding
def _rollout(env, seed=None, steps=15):
    trace = [env.reset() if seed is None else env.reset(seed=seed)]
    for t in range(steps):
        state, terminal, _ = env.execute(t % 2)
        trace.append(state)
        if terminal:
            break
    return np.stack(trace), env.physics


def test_seed_makes_runs_reproducible():
    first, physics = _rollout(CartPole(seed=11))
    again, physics_again = _rollout(CartPole(seed=11))
    np.testing.assert_array_equal(first, again)
    assert physics == physics_again
    other, _ = _rollout(CartPole(seed=12))
    assert not np.array_equal(first[0], other[0])


def test_reset_seed_reseeds():
    env = CartPole()
    first, physics = _rollout(env, seed=5)
    _rollout(env)
    again, physics_again = _rollout(env, seed=5)
    np.testing.assert_array_equal(first, again)
    assert physics == physics_again
    np.testing.assert_array_equal(CartPole(seed=5).reset(), first[0])
    _, batch = CartPole().reset(num_parallel=3, seed=8)
    np.testing.assert_array_equal(CartPole(seed=8).reset(num_parallel=3)[1], batch)


# ---------------------------------------------------------------------- vectorized
def test_vectorized_reset_and_execute_drop_finished_indices():
    env = CartPole(seed=0)
    indices, states = env.reset(num_parallel=4)
    assert indices.tolist() == [0, 1, 2, 3] and states.shape == (4, 3)
    physics = env.physics  # one draw shared by the batch
    ended = []
    for _ in range(1000):
        acted = indices
        indices, states, terminal, reward = env.execute(np.ones(len(acted), np.int64))
        assert terminal.dtype == np.bool_ and terminal.shape == (len(acted),)
        assert reward.dtype == np.float32 and np.all(reward == 1.0)
        assert indices.tolist() == acted[~terminal].tolist()
        assert states.shape == (len(indices), 3)
        ended += acted[terminal].tolist()
        if len(indices) == 0:
            break
    assert sorted(ended) == [0, 1, 2, 3] and env.physics == physics
    indices, states = env.reset(num_parallel=2)
    assert indices.tolist() == [0, 1] and env.physics != physics


def test_vectorized_step_matches_the_single_step():
    env = CartPole(**FIXED, state_location=True, seed=9)
    _, states = env.reset(num_parallel=3)
    actions = np.array([0, 1, 2])
    _, next_states, terminal, _ = env.execute(actions)
    assert not terminal.any()
    for row, action in enumerate(actions):
        expected = step_by_hand(states[row], [-9.8, 9.8, 0.0][action], 0.1, 0.5, 1.0)
        np.testing.assert_allclose(next_states[row], expected, rtol=1e-5, atol=1e-6)


def test_vectorized_rows_follow_their_indices():
    env = CartPole(**FIXED, state_location=True, seed=0)
    env.reset(num_parallel=3)
    _set_state(env)
    env._states[1, 2] = 1.0  # index 1 is past the angle bound
    indices, states, terminal, _ = env.execute(np.array([1, 1, 0]))
    assert indices.tolist() == [0, 2] and terminal.tolist() == [False, True, False]
    assert states[0, VELOCITY] > 0 > states[1, VELOCITY]  # index 0 pushed right, 2 left
    indices, states, terminal, _ = env.execute(np.array([2, 2]))
    assert indices.tolist() == [0, 2] and len(terminal) == 2


def test_bad_actions_and_call_order():
    with pytest.raises(CallOrderError, match="reset"):
        CartPole().execute(0)
    env = CartPole(action_noop=False, seed=0)
    env.reset()
    with pytest.raises(InputError, match="actions"):
        env.execute(2)
    with pytest.raises(InputError, match="actions"):
        env.execute(np.array([0, 1]))
    env.reset(num_parallel=3)
    with pytest.raises(InputError, match="actions"):
        env.execute(np.zeros(2, np.int64))
    with pytest.raises(InputError, match="actions"):
        env.execute(np.array([0.5, 0.0, 1.0]))
    with pytest.raises(ArgumentError, match="num_parallel"):
        env.reset(num_parallel=0)
    with pytest.raises(ArgumentError, match="seed"):
        env.reset(seed=-1)


# ---------------------------------------------------------------------- create / Runner
def _balance(state):
    """Push towards the side the pole leans to."""
    return int(state[ANGLE] + 0.5 * state[ANGLE_VELOCITY] > 0)


def test_environment_create_ends_at_the_limit_with_terminal_two():
    env = Environment.create("custom_cartpole", max_episode_timesteps=20,
                             pole_length=(0.5, 1.0), seed=0)
    assert isinstance(env.environment, CartPole) and env.max_episode_timesteps() == 20
    state = env.reset()
    terminals, total = [], 0.0
    for _ in range(20):
        state, terminal, reward = env.execute(_balance(state))
        terminals.append(terminal)
        total += reward
    assert terminals == [0] * 19 + [2] and total == 20.0


def test_environment_create_runs_it_vectorized():
    env = Environment.create("custom_cartpole", max_episode_timesteps=5, seed=0)
    indices, states = env.reset(num_parallel=3)
    assert indices.tolist() == [0, 1, 2] and states.shape == (3, 3)
    terminals = []
    for _ in range(5):
        indices, states, terminal, reward = env.execute(np.full(len(indices), 2))
        terminals.append(terminal.tolist())
    assert terminals == [[0, 0, 0]] * 4 + [[2, 2, 2]] and len(indices) == 0
    assert states.shape == (0, 3) and reward.tolist() == [1.0, 1.0, 1.0]


def test_an_unbalanced_episode_ends_with_terminal_one():
    env = Environment.create("custom_cartpole", max_episode_timesteps=500)
    env.reset()
    steps, terminal = 0, 0
    while not terminal:
        _, terminal, reward = env.execute(1)  # always push right: the pole falls
        steps += 1
    assert terminal == 1 and steps < 500


def test_runner_steps_it_vectorized():
    runner = Runner(agent=dict(agent="ppo", batch_size=2,
                               network=dict(type="auto", size=8, depth=1)),
                    environment="custom_cartpole", max_episode_timesteps=20, num_parallel=3,
                    seed=0)
    assert runner.agent.parallel_interactions == 3
    runner.run(num_episodes=6, use_tqdm=False)
    assert runner.episodes == 6 and len(runner.episode_timesteps) == 6
    assert all(1 <= n <= 20 for n in runner.episode_timesteps)
    assert runner.episode_returns == [float(n) for n in runner.episode_timesteps]
    runner.close()


# ---------------------------------------------------------------------- arguments
@pytest.mark.parametrize("argument,value", [
    ("pole_mass", (0.5, 0.1)),
    ("pole_mass", (0.0, 0.5)),
    ("pole_length", (0.1, 0.5, 1.0)),
    ("pole_length", "long"),
    ("cart_mass", -1.0),
    ("cart_mass", (-1.0, 1.0)),
    ("relative_force", 0.0),
    ("relative_force", (1.0, float("inf"))),
    ("gravity", -9.8),
    ("gravity", (9.0, 10.0)),
    ("action_timedelta", 0.0),
    ("state_initial_max_angle", -0.1),
    ("state_velocities", "yes"),
    ("state_location", 1),
    ("action_continuous", None),
    ("seed", -3),
    ("seed", 1.5),
])
def test_invalid_arguments_name_themselves(argument, value):
    with pytest.raises(ArgumentError, match=argument):
        CartPole(**{argument: value})


def test_continuous_needs_the_noop():
    with pytest.raises(ArgumentError, match="action_noop"):
        CartPole(action_continuous=True, action_noop=False)


def test_impossible_physics_ranges_are_refused():
    # A pole far heavier than the cart: the bound formula turns negative.
    with pytest.raises(ArgumentError, match="pole_mass"):
        CartPole(pole_mass=(0.05, 5.0), cart_mass=0.5)


def test_invalid_arguments_through_create():
    with pytest.raises(ArgumentError, match="cart_mass"):
        Environment.create("custom_cartpole", cart_mass=(2.0, 1.0))
