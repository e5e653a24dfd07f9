"""Atari games through the `'atari'` environment type (extra `kerasrl[atari]`).

Without ale-py and OpenCV these tests are skipped, saying so, except in the
`atari` nox session (`KERASRL_REQUIRE_ATARI=1`), where a missing extra fails.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from kerasrl import Agent, Environment
from kerasrl.errors import NotSupportedError

HAVE_ATARI = all(importlib.util.find_spec(name) for name in ("ale_py", "cv2"))
REQUIRED = os.environ.get("KERASRL_REQUIRE_ATARI") == "1"
needs_atari = pytest.mark.skipif(
    not HAVE_ATARI and not REQUIRED,
    reason="the extra kerasrl[atari] (ale-py, opencv-python-headless) is not installed; "
           "`nox -s atari` runs these tests")


@pytest.mark.skipif(HAVE_ATARI, reason="the extra is installed")
def test_atari_without_the_extra_says_what_to_install():
    with pytest.raises(NotSupportedError, match=r"kerasrl\[atari\]"):
        Environment.create("atari", level="ALE/Pong-v5")


@needs_atari
def test_atari_observations_are_stacked_grayscale_frames():
    env = Environment.create("atari", level="ALE/Pong-v5", seed=0)
    assert env.states() == {"type": "float", "shape": (84, 84, 4), "min_value": 0.0,
                            "max_value": 255.0}
    assert env.actions()["num_values"] == 6
    states = env.reset()
    assert states.shape == (84, 84, 4) and states.dtype == np.float32
    for _ in range(5):
        states, terminal, reward = env.execute(0)
    # The newest frame is the last channel; the stack shifts by one per step.
    previous = states
    states, _, _ = env.execute(0)
    np.testing.assert_array_equal(states[..., :3], previous[..., 1:])
    assert env.get_config()["environment"] == "atari"
    env.close()


@needs_atari
def test_ppo_atari_preset_trains_and_reloads(tmp_path):
    from kerasrl.cli import PRESETS

    spec = dict(PRESETS["ppo-atari"], update=dict(unit="timesteps", batch_size=64),
                multi_step=2)
    environment = dict(environment="atari", level="ALE/Pong-v5")
    agent = Agent.create(spec, environment=environment, parallel_interactions=2)
    agent.fit(environment, timesteps=160, num_parallel=2, verbose=0, seed=0)
    assert agent.updates >= 2
    path = agent.save(str(tmp_path / "pong.keras"))
    states = Environment.create(**environment).reset()
    assert Agent.load(path).predict(states[None]).tolist() == agent.predict(states[None]).tolist()
