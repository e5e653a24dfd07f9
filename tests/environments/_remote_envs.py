"""Small environments for tests/environments/test_remote.py.

They live in their own module (no keras import) so that environment child
processes can import them cheaply.
"""

import os
import time

import numpy as np

from kerasrl.environments import Environment


class BigObservation(Environment):
    """States of `size` x `size` float32 (4 MiB for size=1024); 5-step episodes."""

    def __init__(self, size=1024):
        super().__init__()
        self.size = size
        self.t = 0

    def states(self):
        return dict(type="float", shape=(self.size, self.size))

    def actions(self):
        return dict(type="int", num_values=2)

    def reset(self):
        self.t = 0
        return np.full((self.size, self.size), 0.5, dtype=np.float32)

    def execute(self, actions):
        self.t += 1
        state = np.arange(self.size * self.size, dtype=np.float32).reshape(self.size, self.size)
        return state + float(actions), self.t >= 5, 1.0


class Flaky(Environment):
    """Counts steps; crashes (process exit) or raises when a marker file exists."""

    def __init__(self, marker="", mode="exit", sleep=0.0, length=10):
        super().__init__()
        self.marker, self.mode, self.sleep, self.length = marker, mode, sleep, length
        self.t = 0

    def states(self):
        return dict(type="float", shape=(2,))

    def actions(self):
        return dict(type="int", num_values=2)

    def reset(self):
        self.t = 0
        return np.zeros(2, np.float32)

    def execute(self, actions):
        self.t += 1
        if self.sleep:
            time.sleep(self.sleep)
        if self.marker and self.t == 3 and self._claim_marker():
            if self.mode == "exit":
                os._exit(3)
            if self.mode == "hang":
                time.sleep(60)
            raise ValueError("flaky environment failed on purpose")
        return np.full(2, self.t, np.float32), self.t >= self.length, 1.0

    def _claim_marker(self):
        # Only one process may fail per marker: removing the file is atomic.
        try:
            os.remove(self.marker)
        except FileNotFoundError:
            return False
        return True
