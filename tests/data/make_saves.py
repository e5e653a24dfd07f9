"""Regenerates the cross-backend save fixtures in tests/data/saves/<backend>/.

Run once per backend (the files are committed):
    for b in jax tensorflow torch; do KERAS_BACKEND=$b python tests/data/make_saves.py; done

Each folder holds the same small PPO agent (trained for a few episodes) saved
in every format, plus the deterministic actions it takes on 100 fixed states.
"""

import os
import shutil
from pathlib import Path

import keras
import numpy as np

from kerasrl import Agent

SPEC = dict(
    agent="ppo", batch_size=2, network=[dict(type="dense", size=16)],
    baseline=[dict(type="dense", size=16)], baseline_optimizer=0.5, config=dict(seed=7),
)


def states() -> np.ndarray:
    return np.random.default_rng(0).uniform(-2.0, 2.0, size=(100, 4)).astype(np.float32)


def main() -> None:
    backend = keras.backend.backend()
    directory = Path(__file__).resolve().parent / "saves" / backend
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    agent = Agent.create(SPEC, environment="CartPole-v1")
    agent.fit("CartPole-v1", episodes=4, verbose=0, seed=0)
    for fmt in ("keras", "h5", "numpy"):
        agent.save(directory, format=fmt)
    np.save(directory / "expected_actions.npy", agent.act(states(), independent=True))
    print(f"wrote {sorted(os.listdir(directory))} to {directory}")


if __name__ == "__main__":
    main()
