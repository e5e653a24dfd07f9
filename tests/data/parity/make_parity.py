"""Reference values of the cross-backend parity test (tests/agents/test_parity.py).

For each case: an agent is created, its weights are set to stored initial
values, a fixed batch of experience (NumPy, seeded) is fed with
`agent.experience(...)`, the host sampling generator is reset to a fixed
seed, and one `agent.update()` runs. Randomness inside an update is fed
explicitly or switched off: replay minibatches and the SAC/TD3 noise are
drawn on the host with the agent's NumPy generator (identical on every
backend); PPO uses `subsampling_fraction=1.0` (no random subsets).

Run once, under any backend, to (re)write `<case>.npz` beside this file:

    KERAS_BACKEND=jax python tests/data/parity/make_parity.py

Each file holds `init/<weight>` (initial weights), `final/<weight>` (after
the update), `metrics/<name>` and `backend` (where it was generated).
The test module imports `CASES` and `run` from here.
"""

from __future__ import annotations

import os
import sys

import keras
import numpy as np

from kerasrl import Agent
from kerasrl.saving import named_weights

HERE = os.path.dirname(os.path.abspath(__file__))
STATES = dict(type="float", shape=(4,))
NETWORK = [dict(type="dense", size=16, activation="tanh"),
           dict(type="dense", size=16, activation="relu")]
INT_ACTION = dict(type="int", num_values=3)
MULTI_ACTIONS = dict(move=dict(type="int", shape=(2,), num_values=3), jump=dict(type="bool"))
FLOAT_ACTION = dict(type="float", shape=(2,), min_value=[-1.0, 0.0], max_value=[1.0, 4.0])
REPLAY = dict(states=STATES, memory=64, batch_size=16, multi_step=2, update_frequency="never",
              network=NETWORK, discount=0.9, config=dict(seed=0))
CONTINUOUS = dict(REPLAY, actions=FLOAT_ACTION, critic=NETWORK)

CASES = {
    "dqn": dict(REPLAY, agent="dqn", actions=INT_ACTION, horizon=2),
    "double_dqn": dict(REPLAY, agent="double_dqn", actions=INT_ACTION, huber_loss=1.0,
                       target_sync_frequency=2),
    "dueling_dqn": dict(REPLAY, agent="dueling_dqn", actions=INT_ACTION,
                        target_update_weight=0.5),
    "dqn_multi": dict(REPLAY, agent="dqn", actions=MULTI_ACTIONS),
    "ddpg": dict(CONTINUOUS, agent="ddpg", target_update_weight=0.1),
    "td3": dict(CONTINUOUS, agent="td3", target_update_weight=0.1),
    "sac": dict(CONTINUOUS, agent="sac", target_update_weight=0.1, l2_regularization=0.01),
    "ppo": dict(agent="ppo", states=STATES, actions=INT_ACTION, max_episode_timesteps=20, batch_size=3,
                network=NETWORK, baseline=NETWORK, baseline_optimizer=0.5, multi_step=2,
                subsampling_fraction=1.0, gae_decay=0.9, advantage_processing="normalize",
                entropy_regularization=0.01, config=dict(seed=0)),
}


def _episodes(spec: dict, rng: np.random.Generator) -> list[dict]:
    """Three seeded episodes of experience (with masks for int actions)."""
    episodes = []
    for length, terminal in ((7, 1), (5, 2), (9, 1)):
        states = {"state": rng.normal(size=(length, 4)).astype(np.float32)}
        actions = spec["actions"]
        if actions is INT_ACTION:
            masks = rng.random((length, 3)) < 0.6
            masks[np.arange(length), rng.integers(0, 3, size=length)] = True
            states["action_mask"] = masks
            action = np.array([rng.choice(np.nonzero(m)[0]) for m in masks])
        elif actions is MULTI_ACTIONS:
            masks = rng.random((length, 2, 3)) < 0.6
            masks[..., 0] = True
            states["move_mask"] = masks
            action = {"move": np.zeros((length, 2), np.int64),
                      "jump": rng.random(length) < 0.5}
        else:
            action = rng.uniform([-1.0, 0.0], [1.0, 4.0], size=(length, 2)).astype(np.float32)
        terminals = np.zeros(length, np.int64)
        terminals[-1] = terminal
        reward = rng.normal(size=length).astype(np.float32)
        episodes.append(dict(states=states, actions=action, terminal=terminals, reward=reward))
    return episodes


def _numpy(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable.value))


def run(name: str, initial: dict | None = None) -> tuple[dict, dict, dict]:
    """Runs one case; returns `(initial_weights, metrics, final_weights)`.

    With `initial` given (the stored reference), the agent's weights are
    set to it first; otherwise its own initial weights are used and returned.
    """
    spec = dict(CASES[name])
    agent = Agent.create(**spec)
    weights = named_weights(agent)
    if initial is None:
        initial = {key: _numpy(variable) for key, variable in weights.items()}
    else:
        for key, variable in weights.items():
            variable.assign(initial[key])
        agent._weights_loaded()  # the JAX engine re-reads the assigned values
    for episode in _episodes(spec, np.random.default_rng(42)):
        agent.experience(**episode)
    agent._rng = np.random.default_rng(1234)
    assert agent.update() == 1
    agent._sync_weights()
    final = {key: _numpy(variable) for key, variable in named_weights(agent).items()}
    metrics = {key: float(value) for key, value in agent.last_metrics.items()}
    return initial, metrics, final


def main(names: list[str]) -> None:
    for name in names or list(CASES):
        initial, metrics, final = run(name)
        arrays = {f"init/{k}": v for k, v in initial.items()}
        arrays.update({f"final/{k}": v for k, v in final.items()})
        arrays.update({f"metrics/{k}": np.float64(v) for k, v in metrics.items()})
        arrays["backend"] = np.array(keras.backend.backend())
        np.savez(os.path.join(HERE, f"{name}.npz"), **arrays)
        print(f"{name}: {metrics}")


if __name__ == "__main__":
    main(sys.argv[1:])
