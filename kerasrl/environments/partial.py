"""Partially observed gymnasium tasks: `CartPoleNoVelocity-v1`.

`CartPoleNoVelocity-v1` is gymnasium's `CartPole-v1` (the same dynamics,
rewards, termination and 500-step time limit) whose observation keeps only
the cart position and the pole angle: the two velocities are removed, so a
policy must infer them from the past observations. A feed-forward policy
cannot balance the pole for long; a recurrent one can (`docs/recurrent.md`).
It is the task sb3-contrib's `RecurrentPPO` is benchmarked on
(`CartPoleNoVel-v1` in the RL Zoo).

Importing this module registers the id with gymnasium (kerasrl imports it
when it resolves a gymnasium id), so `Agent.create(environment=
'CartPoleNoVelocity-v1')`, and `gymnasium.make(...)` after `import
kerasrl.environments.partial`, give the same task to kerasrl and to other
libraries (`benchmarks/recurrent.py` runs sb3-contrib on it).

Example:

>>> import gymnasium, kerasrl.environments.partial
>>> env = gymnasium.make('CartPoleNoVelocity-v1')
>>> observation, _ = env.reset(seed=0)
>>> observation.shape, env.spec.max_episode_steps
((2,), 500)
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

ID = "CartPoleNoVelocity-v1"
#: The observation entries kept: cart position and pole angle (not the velocities).
KEPT = (0, 2)


class ObservationSubset(gymnasium.ObservationWrapper):
    """Keeps the entries `indices` of a 1-d `Box` observation.

    Args:
        env: The environment.
        indices: The observation entries to keep.
    """

    def __init__(self, env: gymnasium.Env, indices: tuple[int, ...]):
        super().__init__(env)
        self.indices = np.asarray(indices)
        space = env.observation_space
        self.observation_space = gymnasium.spaces.Box(
            space.low[self.indices], space.high[self.indices], dtype=space.dtype)

    def observation(self, observation: Any) -> np.ndarray:
        return np.asarray(observation)[self.indices]


def cartpole_no_velocity(**kwargs: Any) -> gymnasium.Env:
    """CartPole without velocities (the id's entry point; `kwargs` go to `CartPoleEnv`)."""
    from gymnasium.envs.classic_control import CartPoleEnv

    return ObservationSubset(CartPoleEnv(**kwargs), KEPT)


def register() -> None:
    """Registers `CartPoleNoVelocity-v1` with gymnasium (once)."""
    if ID not in gymnasium.registry:
        gymnasium.register(ID, entry_point=cartpole_no_velocity, max_episode_steps=500,
                           reward_threshold=475.0)


register()

__all__ = ["ID", "ObservationSubset", "cartpole_no_velocity", "register"]
