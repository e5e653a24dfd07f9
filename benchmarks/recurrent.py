"""Recurrent PPO on CartPole without velocities: kerasrl against sb3-contrib's RecurrentPPO.

Both sides train on `CartPoleNoVelocity-v1` (CartPole-v1 without the two
velocities, `kerasrl.environments.partial`) with the RL Zoo's RecurrentPPO
settings for `CartPoleNoVel-v1`: 8 environments, 32 steps each per update
(256), one minibatch of 256, 20 epochs, GAE λ 0.8, γ 0.98, learning rate
1e-3 and clipping 0.2 both decayed linearly to 0, no entropy bonus, value
loss weight 0.5, advantages normalized, gradient norm clipped at 0.5; an LSTM
of 64 units followed by a 64-unit ReLU layer, separate for the policy and the
value function (sb3-contrib: `lstm_hidden_size=64, enable_critic_lstm=True,
net_arch=dict(pi=[64], vf=[64]), activation_fn=ReLU, ortho_init=False`;
kerasrl: `[lstm(64, horizon=32, activation='none'), dense(64, relu)]` as `network` and
`baseline`). sb3-contrib backpropagates through each 32-step rollout; kerasrl
through sequences of `horizon=32` steps.

Every 10,000 steps a 10-episode deterministic evaluation runs (its time is not
counted, each side carries its LSTM state through the episodes). For each
seed the two sides run one after the other, in fresh processes, on the same
machine; the script prints the versions and, per side,

- env steps/s of training (wall clock, evaluation excluded),
- the steps until an evaluation first reaches a mean of 475,

and the ratio of the medians. Usage (the `benchmark_recurrent` nox session
installs both sides, `.[jax,peers]`):

    nox -s benchmark_recurrent -- --seeds 0 1 2
    python benchmarks/recurrent.py --seeds 0 --timesteps 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ENVIRONMENT = "CartPoleNoVelocity-v1"
EVALUATE_EVERY = 10_000
THRESHOLD = 475.0


class Evaluations:
    """Evaluates every `EVALUATE_EVERY` steps; keeps the means, the time spent and
    the steps at which the mean first reached `THRESHOLD`."""

    def __init__(self):
        self.next = EVALUATE_EVERY
        self.seconds = 0.0
        self.reached = None
        self.means = []

    def due(self, timesteps: int, evaluate) -> None:
        if timesteps < self.next:
            return
        self.next += EVALUATE_EVERY
        start = time.perf_counter()
        mean = evaluate()
        self.seconds += time.perf_counter() - start
        self.means.append(round(mean, 1))
        if mean >= THRESHOLD and self.reached is None:
            self.reached = timesteps


def run_kerasrl(seed: int, budget: int) -> dict:
    import keras

    import kerasrl
    from kerasrl import Agent
    from kerasrl.callbacks import Callback

    decay = dict(type="linear", unit="timesteps", num_steps=budget, final_value=0.0)
    network = [dict(type="lstm", size=64, horizon=32, activation="none"),
               dict(type="dense", size=64, activation="relu")]
    agent = Agent.create(
        agent="ppo", environment=ENVIRONMENT, parallel_interactions=8,
        update=dict(unit="timesteps", batch_size=256), multi_step=20, subsampling_fraction=1.0,
        learning_rate=dict(decay, initial_value=1e-3),
        likelihood_ratio_clipping=dict(decay, initial_value=0.2),
        discount=0.98, gae_decay=0.8, entropy_regularization=0.0, network=network,
        baseline=network, baseline_optimizer=0.5, advantage_processing="normalize",
        max_grad_norm=0.5, config=dict(seed=seed),
    )

    class EvaluateEvery(Callback):
        def __init__(self):
            super().__init__()
            self.schedule = Evaluations()

        def on_update_end(self, update, logs=None):
            self.schedule.due(self.agent.timesteps, lambda: self.agent.evaluate(
                ENVIRONMENT, episodes=10, seed=10_000 + seed)["mean_return"])

    callback = EvaluateEvery()
    start = time.perf_counter()
    agent.fit(ENVIRONMENT, timesteps=budget, num_parallel=8, seed=seed, verbose=0,
              callbacks=[callback])
    seconds = time.perf_counter() - start - callback.schedule.seconds
    return {"side": f"kerasrl {kerasrl.__version__} ({keras.backend.backend()})",
            "versions": {"keras": keras.__version__, **_backend_versions()},
            "seed": seed, "steps_per_second": agent.timesteps / seconds,
            "reached": callback.schedule.reached, "evaluations": callback.schedule.means}


def _backend_versions() -> dict:
    import keras

    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow"}.get(backend, backend)
    return {backend: __import__(module).__version__}


def run_sb3(seed: int, budget: int) -> dict:
    import gymnasium
    import numpy as np
    import sb3_contrib
    import stable_baselines3
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    import kerasrl.environments.partial  # noqa: F401 - registers the task with gymnasium

    def linear(initial):
        return lambda progress: progress * initial

    env = make_vec_env(ENVIRONMENT, n_envs=8, seed=seed)
    model = RecurrentPPO(
        "MlpLstmPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
        n_epochs=20, ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2),
        policy_kwargs=dict(ortho_init=False, activation_fn=torch.nn.ReLU, lstm_hidden_size=64,
                           enable_critic_lstm=True, net_arch=dict(pi=[64], vf=[64])),
        seed=seed, device="cpu", verbose=0,
    )

    def evaluate() -> float:
        evaluation = gymnasium.make(ENVIRONMENT)
        returns = []
        for episode in range(10):
            observation, _ = evaluation.reset(seed=10_000 + seed + episode)
            state, start, total, done = None, np.ones((1,), bool), 0.0, False
            while not done:
                action, state = model.predict(observation[None], state=state,
                                              episode_start=start, deterministic=True)
                observation, reward, terminated, truncated, _ = evaluation.step(int(action[0]))
                start = np.zeros((1,), bool)
                total += reward
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns))

    class EvaluateEvery(BaseCallback):
        def __init__(self):
            super().__init__()
            self.schedule = Evaluations()

        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:  # after the previous update, as on kerasrl's side
            self.schedule.due(self.num_timesteps, evaluate)

    callback = EvaluateEvery()
    start = time.perf_counter()
    model.learn(total_timesteps=budget, callback=callback)
    seconds = time.perf_counter() - start - callback.schedule.seconds
    return {"side": f"sb3-contrib {sb3_contrib.__version__} RecurrentPPO (torch)",
            "versions": {"stable-baselines3": stable_baselines3.__version__,
                         "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
            "seed": seed, "steps_per_second": model.num_timesteps / seconds,
            "reached": callback.schedule.reached, "evaluations": callback.schedule.means}


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--backend", default="jax", help="kerasrl's Keras backend")
    parser.add_argument("--side", choices=("kerasrl", "sb3"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side is not None:
        run = run_kerasrl if args.side == "kerasrl" else run_sb3
        print(json.dumps(run(args.seeds[0], args.timesteps)))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"python {platform.python_version()}; {ENVIRONMENT}, {args.timesteps} steps")
    results: dict[str, list] = {"kerasrl": [], "sb3": []}
    for seed in args.seeds:
        for side in ("kerasrl", "sb3"):  # alternately, each in a fresh process
            environment = dict(os.environ, KERAS_BACKEND=args.backend,
                               TF_CPP_MIN_LOG_LEVEL="3")
            command = [sys.executable, __file__, "--side", side, "--seeds", str(seed),
                       "--timesteps", str(args.timesteps)]
            output = subprocess.run(command, env=environment, capture_output=True, text=True)
            if output.returncode != 0:
                sys.exit(f"{side} seed {seed} failed:\n{output.stderr[-3000:]}")
            result = json.loads(output.stdout.strip().splitlines()[-1])
            results[side].append(result)
            print(f"{result['side']} seed {seed}: {result['steps_per_second']:,.0f} steps/s, "
                  f"475 reached at {result['reached']} steps; evaluations "
                  f"{result['evaluations']}; {result['versions']}", flush=True)
    print("\n| side | env steps/s (median) | steps to a 475 mean (median; seeds reaching) |")
    print("|---|---|---|")
    for rows in results.values():
        reached = [r["reached"] for r in rows]
        median_reached = _median(reached)
        print(f"| {rows[0]['side']} | {_median([r['steps_per_second'] for r in rows]):,.0f} | "
              f"{'-' if median_reached is None else f'{median_reached:,.0f}'} "
              f"({sum(r is not None for r in reached)}/{len(rows)}) |")
    ratio = _median([r["steps_per_second"] for r in results["kerasrl"]]) / _median(
        [r["steps_per_second"] for r in results["sb3"]])
    print(f"\nkerasrl / RecurrentPPO env steps/s (medians): {ratio:.2f}x")


if __name__ == "__main__":
    main()
