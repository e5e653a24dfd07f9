"""Every agent on every backend: steps to threshold, final return, speed.

Runs each agent with the settings of the learning tests (`tests/test_learning.py`,
`tests/test_learning_off_policy.py`), evaluating 10 deterministic episodes at
a fixed interval until the threshold is reached or the budget is spent, and
writes a Markdown table (steps to threshold, last evaluation, env steps/s,
wall seconds) to stdout and, with `--write`, to `docs/benchmarks.md`.

Usage:
    python benchmarks/learning.py --write                 # all agents, all backends
    python benchmarks/learning.py --backends jax --agents ppo dqn sac
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BACKENDS = ("jax", "tensorflow", "torch")


def _dense(size, depth, activation="relu"):
    return [dict(type="dense", size=size, activation=activation) for _ in range(depth)]


_ZOO = dict(type="linear", unit="timesteps", num_steps=100_000, final_value=0.0)
CARTPOLE_DQN = dict(
    memory=100_000, batch_size=64, learning_rate=2.3e-3, update_frequency=256, multi_step=128,
    start_updating=1000, target_sync_frequency=128, discount=0.99, network=_dense(256, 2),
    exploration=dict(type="linear", unit="timesteps", num_steps=8000, initial_value=1.0,
                     final_value=0.04),
    parallel_interactions=4,
)
PENDULUM = dict(
    memory=100_000, batch_size=128, learning_rate=1e-3, update_frequency=16, multi_step=16,
    start_updating=1000, network=_dense(128, 2), critic=_dense(128, 1),
)

#: agent: (environment, threshold, budget, evaluation interval, arguments)
CONFIGS = {
    "ppo": ("CartPole-v1", 475, 100_000, 10_000, dict(
        parallel_interactions=8, update=dict(unit="timesteps", batch_size=256), multi_step=20,
        subsampling_fraction=1.0, learning_rate=dict(_ZOO, initial_value=1e-3),
        likelihood_ratio_clipping=dict(_ZOO, initial_value=0.2), discount=0.98, gae_decay=0.8,
        baseline="auto", baseline_optimizer=0.5, advantage_processing="normalize",
        max_grad_norm=0.5)),
    "a2c": ("CartPole-v1", 475, 100_000, 10_000, dict(
        parallel_interactions=8, batch_size=40, horizon=5, learning_rate=7e-4,
        critic_optimizer=0.5, advantage_processing="normalize", max_grad_norm=0.5)),
    "ac": ("CartPole-v1", 400, 200_000, 10_000, dict(
        parallel_interactions=8, batch_size=40, horizon=5, learning_rate=7e-4,
        critic_optimizer=0.5, advantage_processing="normalize", max_grad_norm=0.5)),
    "vpg": ("CartPole-v1", 400, 200_000, 10_000, dict(
        parallel_interactions=8, batch_size=8, learning_rate=3e-3, baseline="auto",
        baseline_optimizer=0.5, advantage_processing="normalize")),
    "trpo": ("CartPole-v1", 475, 100_000, 10_000, dict(
        parallel_interactions=8, update=dict(unit="timesteps", batch_size=1024),
        baseline="auto", gae_decay=0.98, advantage_processing="normalize",
        baseline_optimizer=dict(optimizer="adam", learning_rate=1e-3, multi_step=20,
                                subsampling_fraction=0.5))),
    "dqn": ("CartPole-v1", 475, 100_000, 5_000, CARTPOLE_DQN),
    "double_dqn": ("CartPole-v1", 475, 100_000, 5_000, CARTPOLE_DQN),
    "dueling_dqn": ("CartPole-v1", 475, 100_000, 5_000, CARTPOLE_DQN),
    "ddpg": ("Pendulum-v1", -250, 20_000, 2_000, PENDULUM),
    "td3": ("Pendulum-v1", -250, 20_000, 2_000, PENDULUM),
    "sac": ("Pendulum-v1", -250, 20_000, 2_000, PENDULUM),
}


NOTES = """\
How to read the table:

- *steps to threshold* is the agent's timestep count at the first 10-episode deterministic
  evaluation whose mean return reaches the threshold (in brackets). Evaluations run every
  10,000 timesteps for the policy-gradient agents, 5,000 for the DQN family and 2,000 on
  Pendulum, at the end of an update, so the counts are multiples of those intervals plus the
  rest of the update. Training stops there; *last evaluation* is that evaluation's mean return.
- The budgets are those of the learning tests (100,000 steps, 200,000 for VPG and AC,
  20,000 on Pendulum); the configurations are `CONFIGS` in `benchmarks/learning.py` (RL-Zoo
  settings where the zoo has them).
- The three backends run the same seed but not the same random numbers: each backend has its
  own random generators, so the runs differ from the first sampled action on and the steps to
  threshold differ by backend. That the update itself is the same computation on every
  backend is what the parity test (`tests/agents/test_parity.py`) checks.
- *env steps/s* is timesteps divided by the wall time without the evaluations, compilation
  included; *wall seconds* includes everything. The DQN family and the Pendulum agents make
  one small update every few steps, where the per-call overhead of TensorFlow and of eager
  PyTorch shows most.
"""


def run_one(name: str, seed: int) -> dict:
    from kerasrl import Agent
    from kerasrl.callbacks import Callback

    environment, threshold, budget, interval, arguments = CONFIGS[name]
    agent = Agent.create(agent=name, environment=environment, config=dict(seed=seed),
                         **arguments)

    class Evaluate(Callback):
        def __init__(self):
            super().__init__()
            self.next, self.seconds, self.reached, self.last = interval, 0.0, None, None

        def on_update_end(self, update, logs=None):
            if self.agent.timesteps < self.next:
                return
            self.next = self.agent.timesteps + interval
            start = time.perf_counter()
            self.last = self.agent.evaluate(environment, episodes=10, seed=1000 + seed)[
                "mean_return"]
            self.seconds += time.perf_counter() - start
            if self.reached is None and self.last >= threshold:
                self.reached = self.agent.timesteps
                self.agent.stop_training = True

    callback = Evaluate()
    start = time.perf_counter()
    agent.fit(environment, timesteps=budget, num_parallel=agent.parallel_interactions, seed=seed,
              verbose=0, callbacks=[callback])
    wall = time.perf_counter() - start
    return {"agent": name, "environment": environment, "threshold": threshold,
            "budget": budget, "reached_at": callback.reached, "last_evaluation": callback.last,
            "steps_per_second": agent.timesteps / max(wall - callback.seconds, 1e-9),
            "wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="+", default=list(CONFIGS))
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.json:
        print(json.dumps([run_one(name, args.seed) for name in args.agents]))
        return
    rows = []
    header = ("| agent | environment | backend | steps to threshold | last evaluation | "
              "env steps/s | wall seconds |\n|---|---|---|---|---|---|---|")
    print(header, flush=True)
    for backend in args.backends:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        for name in args.agents:
            output = subprocess.run(
                [sys.executable, __file__, "--json", "--seed", str(args.seed), "--agents", name],
                env=env, capture_output=True, text=True)
            if output.returncode != 0:
                row = f"| {name} | | {backend} | failed: {output.stderr.strip()[-120:]} | | | |"
            else:
                r = json.loads(output.stdout.strip().splitlines()[-1])[0]
                reached = (f"{r['reached_at']:,} (≥ {r['threshold']})" if r["reached_at"]
                           else f"not within {r['budget']:,}")
                last = "" if r["last_evaluation"] is None else f"{r['last_evaluation']:.1f}"
                row = (f"| {name} | {r['environment']} | {backend} | {reached} | {last} | "
                       f"{r['steps_per_second']:,.0f} | {r['wall_seconds']:.1f} |")
            rows.append(row)
            print(row, flush=True)
    if args.write:
        path = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
        path.write_text(
            "# Learning benchmarks\n\nGenerated by `python benchmarks/learning.py --write` "
            f"(seed {args.seed}; 10 deterministic evaluation episodes per check; 2-core machine)."
            "\n\n" + header + "\n" + "\n".join(rows) + "\n\n" + NOTES, encoding="utf-8")


if __name__ == "__main__":
    main()
