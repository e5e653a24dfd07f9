"""Tensorforce's published PPO benchmark, reproduced with kerasrl.

Tensorforce's `benchmarks/configs/ppo.json` (unchanged) on CartPole-v1 (its
`configs/cartpole.json`: 500-step episodes, state bounds ±3 for the
velocities), 100 episodes, one environment, `act`/`observe` per step through a
`Runner`, repeated with several seeds. Prints, next to Tensorforce 0.6.5's
published run (`shared/tensorforce-data/results/cartpole-ppo-returns.json`,
10 repeats):

- the median (over repeats) episode at which the return first reaches 500, and
  the median wall seconds from the start of a repeat to the end of that episode,
- the median return at episodes 10/20/30/50,
- seconds per 500-step episode and the share of time spent inside the agent.

Usage:
    KERAS_BACKEND=jax python benchmarks/tensorforce_ppo.py --repeats 5
    python benchmarks/tensorforce_ppo.py --all --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "tensorforce-data"


def first_500(returns: np.ndarray) -> float:
    """Episode index (1-based) where each repeat first reaches 500 (inf if never)."""
    hits = [np.nonzero(column >= 500)[0] for column in returns.T]
    return np.array([hit[0] + 1 if len(hit) else np.inf for hit in hits])


def summarize(label: str, returns: np.ndarray, seconds: np.ndarray, agent_seconds: np.ndarray,
              timesteps: np.ndarray) -> str:
    firsts = first_500(returns)
    median = np.median(returns, axis=1)
    per_500 = 500.0 * seconds.sum() / timesteps.sum()
    share = agent_seconds.sum() / seconds.sum()
    reached = np.isfinite(firsts).sum()
    # Wall seconds from the start of a repeat to the end of its first 500 episode.
    elapsed = np.cumsum(seconds, axis=0)
    to_500 = np.array([elapsed[int(first) - 1, i] if np.isfinite(first) else np.inf
                       for i, first in enumerate(firsts)])
    return (f"| {label} | {np.median(firsts):.0f} ({reached}/{len(firsts)} reached) | "
            f"{np.median(to_500):.1f} | "
            f"{median[9]:.0f} / {median[19]:.0f} / {median[29]:.0f} / {median[49]:.0f} | "
            f"{per_500:.3f} | {100 * share:.0f}% |")


HEADER = ("| system | median first episode with return 500 | median seconds to it | "
          "median return at episode 10 / 20 / 30 / 50 | seconds per 500 steps | time in agent |"
          "\n|---|---|---|---|---|---|")


def tensorforce_row() -> str:
    data = json.loads((SHARED / "results" / "cartpole-ppo-returns.json").read_text())
    return summarize("Tensorforce 0.6.5 (published)", np.array(data["rewards"]),
                     np.array(data["seconds"]), np.array(data["agent_seconds"]),
                     np.array(data["timesteps"]))


def run(repeats: int, episodes: int) -> dict:
    from kerasrl import Runner

    results = {"rewards": [], "seconds": [], "agent_seconds": [], "timesteps": []}
    for seed in range(repeats):
        runner = Runner(agent=dict(agent=str(SHARED / "configs" / "ppo.json"),
                                   config=dict(seed=seed)),
                        environment=str(SHARED / "configs" / "cartpole.json"), seed=seed)
        runner.run(num_episodes=episodes, use_tqdm=False)
        runner.close()
        results["rewards"].append(runner.episode_returns)
        results["seconds"].append(runner.episode_seconds)
        results["agent_seconds"].append(runner.episode_agent_seconds)
        results["timesteps"].append(runner.episode_timesteps)
    return {key: np.array(value).T.tolist() for key, value in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--all", action="store_true", help="every backend (subprocesses)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(run(args.repeats, args.episodes)))
        return
    print(HEADER)
    print(tensorforce_row())
    backends = ["jax", "tensorflow", "torch"] if args.all else [None]
    for backend in backends:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        if backend:
            env["KERAS_BACKEND"] = backend
        output = subprocess.run(
            [sys.executable, __file__, "--json", "--repeats", str(args.repeats),
             "--episodes", str(args.episodes)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]
        data = {k: np.array(v) for k, v in json.loads(output).items()}
        name = backend or env.get("KERAS_BACKEND", "default backend")
        print(summarize(f"kerasrl ({name})", data["rewards"], data["seconds"],
                        data["agent_seconds"], data["timesteps"]), flush=True)


if __name__ == "__main__":
    main()
