"""Tensorforce's published PPO benchmark, kerasrl and Tensorforce 0.6.5 side by side.

Tensorforce's `benchmarks/configs/ppo.json` (unchanged) on CartPole-v1 (its
`configs/cartpole.json`: 500-step episodes, state bounds ±3 for the
velocities), 100 episodes, one environment, `act`/`observe` per step through a
`Runner`, one repeat per seed. With `--vs tensorforce`, each seed runs
kerasrl and then Tensorforce, each in its own process (Tensorforce from its
own virtualenv, `--tensorforce-python` or `$TENSORFORCE_PYTHON`; the recipe is
in `docs/performance.md`), alternately on the same machine. Prints the
versions and, per system:

- env steps/s: timesteps over the Runner's episode seconds (agent creation
  and imports excluded, compilation and graph building included),
- the median (over seeds) episode at which the return first reaches 500, and
  the median wall seconds from the start of a repeat to the end of that episode,
- the median return at episodes 10/20/30/50,
- the share of time spent inside the agent,

and the ratio of kerasrl's steps/s to Tensorforce's. Without Tensorforce, it
says so and prints kerasrl's row next to Tensorforce's published run
(`shared/tensorforce-data/results/cartpole-ppo-returns.json`), whose seconds
come from another machine and are not comparable.

Usage:
    KERAS_BACKEND=jax python benchmarks/tensorforce_ppo.py --vs tensorforce --seeds 0 1 2 \\
        --tensorforce-python /path/to/tensorforce-venv/bin/python
    python benchmarks/tensorforce_ppo.py --all --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "tensorforce-data"
AGENT = str(SHARED / "configs" / "ppo.json")
ENVIRONMENT = str(SHARED / "configs" / "cartpole.json")
FIELDS = ("returns", "seconds", "agent_seconds", "timesteps")


def first_500(returns: np.ndarray) -> np.ndarray:
    """Episode index (1-based) where each repeat first reaches 500 (inf if never)."""
    hits = [np.nonzero(column >= 500)[0] for column in returns.T]
    return np.array([hit[0] + 1 if len(hit) else np.inf for hit in hits])


def steps_per_second(data: dict) -> float:
    return float(data["timesteps"].sum() / data["seconds"].sum())


def summarize(label: str, data: dict) -> str:
    """One table row; `data` holds `(episodes, repeats)` arrays of FIELDS."""
    returns, seconds = data["returns"], data["seconds"]
    firsts = first_500(returns)
    median = np.median(returns, axis=1)
    share = data["agent_seconds"].sum() / seconds.sum()
    reached = np.isfinite(firsts).sum()
    # Wall seconds from the start of a repeat to the end of its first 500 episode.
    elapsed = np.cumsum(seconds, axis=0)
    to_500 = np.array([elapsed[int(first) - 1, i] if np.isfinite(first) else np.inf
                       for i, first in enumerate(firsts)])
    return (f"| {label} | {steps_per_second(data):,.0f} | "
            f"{np.median(firsts):.0f} ({reached}/{len(firsts)} reached) | "
            f"{np.median(to_500):.1f} | "
            f"{median[9]:.0f} / {median[19]:.0f} / {median[29]:.0f} / {median[49]:.0f} | "
            f"{100 * share:.0f}% |")


HEADER = ("| system | env steps/s | median first episode with return 500 | "
          "median seconds to it | median return at episode 10 / 20 / 30 / 50 | time in agent |"
          "\n|---|---|---|---|---|---|")


def published() -> dict:
    data = json.loads((SHARED / "results" / "cartpole-ppo-returns.json").read_text())
    return {"returns": np.array(data["rewards"]), "seconds": np.array(data["seconds"]),
            "agent_seconds": np.array(data["agent_seconds"]),
            "timesteps": np.array(data["timesteps"])}


def run(system: str, seed: int, episodes: int) -> dict:
    """One repeat in this process: `system` is 'kerasrl' or 'tensorforce'."""
    if system == "kerasrl":
        import keras

        import kerasrl
        from kerasrl import Runner

        backend = keras.backend.backend()
        versions = {"kerasrl": kerasrl.__version__, "keras": keras.__version__,
                    backend: __import__({"torch": "torch", "jax": "jax"}.get(
                        backend, "tensorflow")).__version__}
    else:
        import tensorflow
        import tensorforce
        from tensorforce import Runner

        versions = {"tensorforce": tensorforce.__version__,
                    "tensorflow": tensorflow.__version__}
    kwargs = {"seed": seed} if system == "kerasrl" else {}  # Tensorforce seeds via config
    runner = Runner(agent=dict(agent=AGENT, config=dict(seed=seed)), environment=ENVIRONMENT,
                    **kwargs)
    runner.run(num_episodes=episodes, use_tqdm=False)
    runner.close()
    return {"versions": versions, "returns": list(runner.episode_returns),
            "seconds": list(runner.episode_seconds),
            "agent_seconds": list(runner.episode_agent_seconds),
            "timesteps": [int(t) for t in runner.episode_timesteps]}


def in_subprocess(python: str, system: str, seed: int, episodes: int,
                  backend: str | None) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if backend:
        env["KERAS_BACKEND"] = backend
    output = subprocess.run(
        [python, __file__, "--json", "--system", system, "--seeds", str(seed),
         "--episodes", str(episodes)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]
    return json.loads(output)


def stack(repeats: list[dict]) -> dict:
    return {key: np.array([r[key] for r in repeats]).T for key in FIELDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--all", action="store_true", help="every backend (subprocesses)")
    parser.add_argument("--vs", choices=["tensorforce"], help="run the peer alternately")
    parser.add_argument("--tensorforce-python", default=os.environ.get("TENSORFORCE_PYTHON"),
                        help="python of a virtualenv with Tensorforce 0.6.5")
    parser.add_argument("--system", default="kerasrl", choices=["kerasrl", "tensorforce"])
    parser.add_argument("--json", action="store_true", help="one repeat, raw JSON (internal)")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(run(args.system, args.seeds[0], args.episodes)))
        return
    peer = args.vs == "tensorforce"
    if peer and not (args.tensorforce_python and Path(args.tensorforce_python).exists()):
        print("Tensorforce skipped: no --tensorforce-python (or $TENSORFORCE_PYTHON) with "
              "Tensorforce 0.6.5; see docs/performance.md for the recipe.")
        peer = False
    backends = ["jax", "tensorflow", "torch"] if args.all else [None]
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:  # alternate: each seed runs every system before the next seed
        for backend in backends:
            name = f"kerasrl ({backend or os.environ.get('KERAS_BACKEND', 'default backend')})"
            results.setdefault(name, []).append(
                in_subprocess(sys.executable, "kerasrl", seed, args.episodes, backend))
        if peer:
            results.setdefault("Tensorforce 0.6.5 (TensorFlow)", []).append(
                in_subprocess(args.tensorforce_python, "tensorforce", seed, args.episodes, None))
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs; {args.episodes} episodes, "
          f"seeds {args.seeds}")
    for name, repeats in results.items():
        print(f"{name}: {repeats[0]['versions']}")
    print(HEADER)
    for name, repeats in results.items():
        print(summarize(name, stack(repeats)))
    if not peer:
        print(summarize("Tensorforce 0.6.5 (published, other machine)", published()))
        return
    base = steps_per_second(stack(results.pop("Tensorforce 0.6.5 (TensorFlow)")))
    for name, repeats in results.items():
        print(f"{name}: {steps_per_second(stack(repeats)) / base:.1f}x Tensorforce's env steps/s")


if __name__ == "__main__":
    main()
