"""A gymnasium environment that registers itself on import (for `import_modules` tests)."""

import gymnasium as gym
import numpy as np

ID = "KerasRLCorridor-v0"


class Corridor(gym.Env):
    """Five steps along a corridor; action 1 is rewarded."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.t = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(1, self.t / 5, np.float32), float(action), self.t >= 5, False, {}

    def render(self):
        return np.full((16, 16, 3), 40 * self.t, np.uint8)


if ID not in gym.registry:
    gym.register(id=ID, entry_point=Corridor, max_episode_steps=10)
