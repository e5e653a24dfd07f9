"""PPO on CartPole-v1 with the RL-Zoo settings: throughput, sample efficiency, latency.

Settings (as Stable-Baselines3's zoo): 8 environments, 32 steps each per update
(256), one minibatch of 256, 20 epochs, GAE λ 0.8, γ 0.98, learning rate 1e-3
and clipping 0.2 both decayed linearly to 0, no entropy bonus, separate 64-64
tanh policy and value networks (value loss weight 0.5), advantages
normalized, gradient norm clipped at 0.5.

Prints, for the backend in KERAS_BACKEND (or for all three with `--all`, each
in its own process):

- env steps/s of training (wall clock of `fit`, evaluation time excluded),
- steps and seconds until a 10-episode deterministic evaluation (run every
  10k steps) first scores 500,
- act latency (µs, one `agent.act(..., independent=True)` call) at batch 1 and 8,
- milliseconds per update (20 gradient steps on 256 timesteps).

With `--vs sb3`, Stable-Baselines3's PPO with the same settings (its RL-Zoo
hyper-parameters for CartPole-v1, `MlpPolicy`, torch on one thread) runs after
kerasrl for each seed, each in its own process, alternately on the same
machine; the script prints the versions and the ratio of the median steps/s.
SB3 is a benchmark dependency only (`pip install -e .[peers]`).

Usage:
    python benchmarks/ppo_cartpole.py --all --seeds 0 1 2
    KERAS_BACKEND=jax python benchmarks/ppo_cartpole.py --seeds 0
    python benchmarks/ppo_cartpole.py --vs sb3 --backends jax torch --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BACKENDS = ("jax", "tensorflow", "torch")


def make_agent(seed: int, budget: int):
    from kerasrl import Agent

    decay = dict(type="linear", unit="timesteps", num_steps=budget, final_value=0.0)
    return Agent.create(
        agent="ppo", environment="CartPole-v1", parallel_interactions=8,
        update=dict(unit="timesteps", batch_size=256), multi_step=20, subsampling_fraction=1.0,
        learning_rate=dict(decay, initial_value=1e-3),
        likelihood_ratio_clipping=dict(decay, initial_value=0.2),
        discount=0.98, gae_decay=0.8, entropy_regularization=0.0,
        baseline="auto", baseline_optimizer=0.5, advantage_processing="normalize",
        max_grad_norm=0.5, config=dict(seed=seed),
    )


def run_one(seed: int, budget: int) -> dict:
    """Measures one seed on the current backend."""
    import numpy as np

    from kerasrl.callbacks import Callback

    agent = make_agent(seed, budget)

    class EvaluateEvery(Callback):
        def __init__(self):
            super().__init__()
            self.next = 10_000
            self.eval_seconds = 0.0
            self.first_500 = None

        def on_update_end(self, update, logs=None):
            if self.agent.timesteps < self.next:
                return
            self.next += 10_000
            start = time.perf_counter()
            result = self.agent.evaluate("CartPole-v1", episodes=10, seed=10_000 + seed)
            self.eval_seconds += time.perf_counter() - start
            if result["mean_return"] >= 500 and self.first_500 is None:
                self.first_500 = (self.agent.timesteps,
                                  time.perf_counter() - self.train_start - self.eval_seconds)

    callback = EvaluateEvery()
    callback.train_start = time.perf_counter()
    start = time.perf_counter()
    agent.fit("CartPole-v1", timesteps=budget, num_parallel=8, seed=seed, verbose=0,
              callbacks=[callback])
    train_seconds = time.perf_counter() - start - callback.eval_seconds

    latencies = {}
    for batch in (1, 8):
        states = np.random.default_rng(0).random((batch, 4)).astype(np.float32)
        for _ in range(50):
            agent.act(states, independent=True, deterministic=False)
        repeats = 1000
        start = time.perf_counter()
        for _ in range(repeats):
            agent.act(states, independent=True, deterministic=False)
        latencies[batch] = (time.perf_counter() - start) / repeats * 1e6
    repeats = 20
    start = time.perf_counter()
    for _ in range(repeats):
        agent.update()
    update_ms = (time.perf_counter() - start) / repeats * 1e3
    return {
        "seed": seed,
        "steps_per_second": agent.timesteps / train_seconds,
        "first_500_steps": callback.first_500[0] if callback.first_500 else None,
        "first_500_seconds": callback.first_500[1] if callback.first_500 else None,
        "act_us_batch1": latencies[1],
        "act_us_batch8": latencies[8],
        "update_ms": update_ms,
    }


def run_sb3(seed: int, budget: int) -> dict:
    """Stable-Baselines3's PPO with the RL-Zoo settings, measured as `run_one` measures."""
    import gymnasium
    import numpy as np
    import stable_baselines3
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)

    def linear(initial: float):
        return lambda progress: progress * initial

    model = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=seed), n_steps=32,
                batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu",
                verbose=0)

    def evaluate() -> float:
        environment = gymnasium.make("CartPole-v1")
        returns = []
        for episode in range(10):
            observation, _ = environment.reset(seed=10_000 + seed + episode)
            total, done = 0.0, False
            while not done:
                action, _ = model.predict(observation, deterministic=True)
                observation, reward, terminated, truncated, _ = environment.step(int(action))
                total, done = total + reward, terminated or truncated
            returns.append(total)
        return float(np.mean(returns))

    class EvaluateEvery(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next, self.eval_seconds, self.first_500 = 10_000, 0.0, None

        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:  # after the previous update, as on kerasrl's side
            if self.num_timesteps < self.next:
                return
            self.next += 10_000
            start = time.perf_counter()
            mean = evaluate()
            self.eval_seconds += time.perf_counter() - start
            if mean >= 500 and self.first_500 is None:
                self.first_500 = (self.num_timesteps,
                                  time.perf_counter() - self.train_start - self.eval_seconds)

    callback = EvaluateEvery()
    callback.train_start = start = time.perf_counter()
    model.learn(total_timesteps=budget, callback=callback)
    train_seconds = time.perf_counter() - start - callback.eval_seconds
    latencies = {}
    for batch in (1, 8):
        states = np.random.default_rng(0).random((batch, 4)).astype(np.float32)
        for _ in range(50):
            model.predict(states)
        start = time.perf_counter()
        for _ in range(1000):
            model.predict(states)
        latencies[batch] = (time.perf_counter() - start) / 1000 * 1e6
    start = time.perf_counter()
    model.train()  # one update: 20 epochs over the last rollout
    update_ms = (time.perf_counter() - start) * 1e3
    return {
        "seed": seed, "steps_per_second": model.num_timesteps / train_seconds,
        "first_500_steps": callback.first_500[0] if callback.first_500 else None,
        "first_500_seconds": callback.first_500[1] if callback.first_500 else None,
        "act_us_batch1": latencies[1], "act_us_batch8": latencies[8], "update_ms": update_ms,
        "versions": {"stable-baselines3": stable_baselines3.__version__,
                     "torch": torch.__version__, "gymnasium": gymnasium.__version__},
    }


def _versions() -> dict:
    import gymnasium
    import keras

    import kerasrl

    backend = keras.backend.backend()
    module = {"jax": "jax", "torch": "torch"}.get(backend, "tensorflow")
    return {"kerasrl": kerasrl.__version__, "keras": keras.__version__,
            backend: __import__(module).__version__, "gymnasium": gymnasium.__version__}


def summarize(backend: str, results: list[dict]) -> str:
    def span(key: str, fmt: str) -> str:
        values = [r[key] for r in results if r[key] is not None]
        if not values:
            return "not reached"
        if len(values) == 1:
            return format(values[0], fmt)
        return "{} / {} / {}".format(*(format(v, fmt) for v in (
            min(values), statistics.median(values), max(values))))

    reached = sum(r["first_500_steps"] is not None for r in results)
    return (f"| {backend} | {span('steps_per_second', ',.0f')} | "
            f"{span('first_500_steps', ',.0f')} ({reached}/{len(results)} seeds) | "
            f"{span('first_500_seconds', '.1f')} | {span('act_us_batch1', '.0f')} | "
            f"{span('act_us_batch8', '.0f')} | {span('update_ms', '.1f')} |")


HEADER = ("| system | env steps/s (min / median / max) | steps to first eval-500 | "
          "seconds to first eval-500 | act µs, batch 1 | act µs, batch 8 | ms per update |\n"
          "|---|---|---|---|---|---|---|")


def _subprocess(arguments: list[str], backend: str | None) -> list[dict]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if backend:
        env["KERAS_BACKEND"] = backend
    output = subprocess.run([sys.executable, __file__, *arguments], env=env,
                            capture_output=True, text=True)
    if output.returncode:
        sys.exit(f"{arguments} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="run every backend (subprocesses)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print raw results as JSON")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS,
                        help="these backends (subprocesses)")
    parser.add_argument("--vs", choices=["sb3"], help="run Stable-Baselines3 alternately")
    parser.add_argument("--sb3", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    budget = ["--timesteps", str(args.timesteps)]
    if args.sb3:
        print(json.dumps([run_sb3(seed, args.timesteps) for seed in args.seeds]))
        return
    backends = list(BACKENDS) if args.all else args.backends or [None]
    if args.vs or backends != [None]:
        results: dict[str, list[dict]] = {}
        for seed in args.seeds if args.vs else [None]:  # --vs: alternate seed by seed
            seeds = ["--seeds", *map(str, args.seeds if seed is None else [seed])]
            for backend in backends:
                name = f"kerasrl, {backend or os.environ.get('KERAS_BACKEND', 'jax')}"
                results.setdefault(name, []).extend(
                    _subprocess(["--json", *budget, *seeds], backend))
            if args.vs:
                results.setdefault("Stable-Baselines3, torch", []).extend(
                    _subprocess(["--sb3", *budget, *seeds], None))
        for name, rows in results.items():
            print(f"{name}: {rows[0]['versions']}")
        print(HEADER)
        for name, rows in results.items():
            print(summarize(name, rows), flush=True)
        if args.vs:
            peer = statistics.median(
                r["steps_per_second"] for r in results.pop("Stable-Baselines3, torch"))
            for name, rows in results.items():
                ratio = statistics.median(r["steps_per_second"] for r in rows) / peer
                print(f"{name}: {ratio:.2f}x Stable-Baselines3's env steps/s (medians)")
        return
    import keras

    results = [dict(run_one(seed, args.timesteps), versions=_versions()) for seed in args.seeds]
    if args.json:
        print(json.dumps(results))
    else:
        print(HEADER)
        print(summarize(keras.backend.backend(), results))

if __name__ == "__main__":
    main()
