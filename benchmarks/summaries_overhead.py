"""Cost of TensorBoard summaries: PPO CartPole steps/s with `labels='all'` vs none.

Uses the RL-Zoo PPO CartPole configuration of `benchmarks/ppo_cartpole.py`
(8 environments, 256 timesteps per update, 20 epochs, separate 64-64 policy
and value networks). Each repeat creates two agents, one with
`summarizer=dict(directory=<temporary>, labels='all')` and one without,
warms both up (compilation), then times `agent.fit(timesteps=...)` of each in
turn (the order alternates between repeats). Prints min / median / max env
steps/s of each and the slowdown of the medians; the target is < 5%.

Usage:
    python benchmarks/summaries_overhead.py --all --repeats 3
    KERAS_BACKEND=jax python benchmarks/summaries_overhead.py --timesteps 20000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BACKENDS = ("jax", "tensorflow", "torch")


def make_agent(seed: int, budget: int, summarizer: dict | None = None):
    """The RL-Zoo PPO CartPole agent of `benchmarks/ppo_cartpole.py`, optionally summarized."""
    from kerasrl import Agent

    decay = dict(type="linear", unit="timesteps", num_steps=budget, final_value=0.0)
    return Agent.create(
        agent="ppo", environment="CartPole-v1", parallel_interactions=8,
        update=dict(unit="timesteps", batch_size=256), multi_step=20, subsampling_fraction=1.0,
        learning_rate=dict(decay, initial_value=1e-3),
        likelihood_ratio_clipping=dict(decay, initial_value=0.2),
        discount=0.98, gae_decay=0.8, entropy_regularization=0.0,
        baseline="auto", baseline_optimizer=0.5, advantage_processing="normalize",
        max_grad_norm=0.5, config=dict(seed=seed), summarizer=summarizer,
    )


def measure(agent, timesteps: int, warmup: int, seed: int) -> float:
    """Env steps/s of `agent.fit` after `warmup` timesteps of compilation/warm-up."""
    agent.fit("CartPole-v1", timesteps=warmup, num_parallel=8, seed=seed, verbose=0)
    start = time.perf_counter()
    before = agent.timesteps
    agent.fit("CartPole-v1", timesteps=timesteps, num_parallel=8, seed=seed + 1, verbose=0)
    return (agent.timesteps - before) / (time.perf_counter() - start)


def run(repeats: int, timesteps: int, warmup: int) -> dict:
    directory = tempfile.mkdtemp(prefix="kerasrl-summaries-")
    results: dict[str, list[float]] = {"none": [], "all": []}
    try:
        for repeat in range(repeats):
            order = ("none", "all") if repeat % 2 == 0 else ("all", "none")
            for variant in order:
                summarizer = None if variant == "none" else dict(
                    directory=directory, labels="all", max_summaries=None)
                agent = make_agent(repeat, timesteps + warmup, summarizer)
                results[variant].append(measure(agent, timesteps, warmup, 100 * repeat))
                agent.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return results


def summarize(backend: str, results: dict) -> str:
    def span(values):
        return f"{min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f}"

    slowdown = 1.0 - statistics.median(results["all"]) / statistics.median(results["none"])
    return (f"| {backend} | {span(results['none'])} | {span(results['all'])} | "
            f"{100 * slowdown:+.1f}% |")


HEADER = ("| backend | steps/s, no summarizer (min / median / max) | "
          "steps/s, labels='all' (min / median / max) | slowdown of the medians |\n"
          "|---|---|---|---|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="run every backend (subprocesses)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=20_480)
    parser.add_argument("--warmup", type=int, default=2_048)
    parser.add_argument("--json", action="store_true", help="print raw results as JSON")
    args = parser.parse_args()
    if args.all:
        print(HEADER)
        for backend in BACKENDS:
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            command = [sys.executable, __file__, "--json", "--repeats", str(args.repeats),
                       "--timesteps", str(args.timesteps), "--warmup", str(args.warmup)]
            output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results = json.loads(output.stdout.strip().splitlines()[-1])
            print(summarize(backend, results), flush=True)
        return
    import keras

    results = run(args.repeats, args.timesteps, args.warmup)
    if args.json:
        print(json.dumps(results))
    else:
        print(HEADER)
        print(summarize(keras.backend.backend(), results))


if __name__ == "__main__":
    main()
