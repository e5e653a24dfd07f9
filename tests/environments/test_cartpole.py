"""The vectorizable NumPy cart-pole registered as `'custom_cartpole'` (Tensorforce's)."""

from __future__ import annotations

import numpy as np
import pytest

from kerasrl import Environment, Runner
from kerasrl.environments import CartPole
from kerasrl.errors import ArgumentError


@pytest.mark.parametrize("velocities,location,size", [(True, False, 3), (False, False, 1),
                                                      (True, True, 4), (False, True, 2)])
def test_state_and_action_specs(velocities, location, size):
    env = CartPole(state_velocities=velocities, state_location=location)
    assert env.states()["shape"] == (size,) and env.states()["type"] == "float"
    assert env.actions() == dict(type="int", shape=(), num_values=3)
    assert CartPole(action_noop=False).actions()["num_values"] == 2
    assert CartPole(action_continuous=True).actions()["type"] == "float"


def test_physics_are_drawn_per_reset_within_the_ranges_and_seeded():
    env = CartPole(seed=3)
    draws = []
    for _ in range(5):
        env.reset()
        draws.append(env.physics)
    assert len({d["pole_mass"] for d in draws}) == 5
    assert all(0.05 <= d["pole_mass"] <= 0.5 and 0.1 <= d["pole_length"] <= 1.0 for d in draws)
    again = CartPole(seed=3)
    again.reset()
    assert again.physics == draws[0]
    assert CartPole(pole_mass=0.2).reset() is not None


def test_single_episode_pays_one_per_step_and_ends():
    env = Environment.create("custom_cartpole", max_episode_timesteps=500)
    env.reset()
    steps, terminal, total = 0, 0, 0.0
    while not terminal:
        _, terminal, reward = env.execute(1)  # always push right: the pole falls
        steps += 1
        total += reward
    assert terminal == 1 and total == steps and steps < 500
    short = Environment.create("custom_cartpole", max_episode_timesteps=3)
    short.reset()
    assert [short.execute(2)[1] for _ in range(3)] == [0, 0, 2]


def test_vectorized_reset_and_execute_drop_finished_indices():
    env = CartPole(seed=0)
    indices, states = env.reset(num_parallel=4)
    assert list(indices) == [0, 1, 2, 3] and np.asarray(states).shape == (4, 3)
    seen = set()
    for _ in range(500):
        acted = indices
        indices, states, terminal, reward = env.execute(np.ones(len(acted), np.int64))
        assert len(terminal) == len(reward) == len(acted)
        assert list(indices) == list(np.asarray(acted)[np.asarray(terminal) == 0])
        seen.update(int(i) for i in np.asarray(acted)[np.asarray(terminal) != 0])
        if len(indices) == 0:
            break
    assert seen == {0, 1, 2, 3}


def test_bad_arguments_name_themselves():
    with pytest.raises(ArgumentError, match="pole_mass"):
        CartPole(pole_mass=(0.5, 0.1))
    with pytest.raises(ArgumentError, match="cart_mass"):
        CartPole(cart_mass=-1.0)


def test_runner_steps_it_vectorized():
    runner = Runner(agent=dict(agent="ppo", batch_size=2,
                               network=dict(type="auto", size=8, depth=1)),
                    environment="custom_cartpole", max_episode_timesteps=20, num_parallel=3)
    runner.run(num_episodes=6, use_tqdm=False)
    assert runner.episodes == 6 and runner.agent.parallel_interactions == 3
    assert all(1 <= n <= 20 for n in runner.episode_timesteps)
    runner.close()
