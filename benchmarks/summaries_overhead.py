"""Cost of TensorBoard summaries: PPO CartPole steps/s with `labels='all'` vs none.

Uses the RL-Zoo PPO CartPole configuration of `benchmarks/ppo_cartpole.py`
(8 environments, 256 timesteps per update, 20 epochs, separate 64-64 policy
and value networks). Each repeat creates two agents, one with
`summarizer=dict(directory=<temporary>, labels='all')` and one without,
warms both up (compilation), then alternates `agent.fit` calls of `--chunk`
timesteps between them until each has run `--timesteps` (so that both see the
same machine load, which matters on a shared machine). Prints min / median /
max env steps/s of each over the repeats, and min / median / max of the
slowdown of each repeat (`1 - all / none`, both measured side by side), per
wall-clock second and per CPU second of the process (`time.process_time()`,
all threads; steadier than wall-clock time when other jobs share the
machine). The target is < 5%.

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


def run(repeats: int, timesteps: int, warmup: int, chunk: int) -> dict:
    """Steps/s of each variant per repeat; the variants alternate every `chunk` timesteps."""
    directory = tempfile.mkdtemp(prefix="kerasrl-summaries-")
    results: dict[str, list[float]] = {"none": [], "all": [], "none_cpu": [], "all_cpu": []}
    try:
        for repeat in range(repeats):
            agents = {
                "none": make_agent(repeat, timesteps + warmup),
                "all": make_agent(repeat, timesteps + warmup, dict(
                    directory=directory, labels="all", max_summaries=None)),
            }
            seconds = {"none": 0.0, "all": 0.0}
            cpu_seconds = {"none": 0.0, "all": 0.0}
            steps = {"none": 0, "all": 0}
            for agent in agents.values():
                agent.fit("CartPole-v1", timesteps=warmup, num_parallel=8, seed=repeat,
                          verbose=0)
            for round_ in range(max(1, timesteps // chunk)):
                order = ("none", "all") if round_ % 2 == 0 else ("all", "none")
                for variant in order:
                    agent = agents[variant]
                    before = agent.timesteps
                    start, cpu_start = time.perf_counter(), time.process_time()
                    agent.fit("CartPole-v1", timesteps=chunk, num_parallel=8,
                              seed=1000 * repeat + round_, verbose=0)
                    seconds[variant] += time.perf_counter() - start
                    cpu_seconds[variant] += time.process_time() - cpu_start
                    steps[variant] += agent.timesteps - before
            for variant, agent in agents.items():
                # Writing what is still pending (encoding included) is part of the cost.
                start, cpu_start = time.perf_counter(), time.process_time()
                agent.close()
                seconds[variant] += time.perf_counter() - start
                cpu_seconds[variant] += time.process_time() - cpu_start
                results[variant].append(steps[variant] / seconds[variant])
                results[f"{variant}_cpu"].append(steps[variant] / cpu_seconds[variant])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return results


def summarize(backend: str, results: dict, suffix: str = "") -> str:
    def span(values, fmt=",.0f", unit=""):
        low, mid, high = min(values), statistics.median(values), max(values)
        return f"{low:{fmt}}{unit} / {mid:{fmt}}{unit} / {high:{fmt}}{unit}"

    none, summarized = results[f"none{suffix}"], results[f"all{suffix}"]
    slowdowns = [100 * (1.0 - a / n) for a, n in zip(summarized, none)]
    return f"| {backend} | {span(none)} | {span(summarized)} | {span(slowdowns, '+.1f', '%')} |"


def header(kind: str) -> str:
    return (f"| backend | {kind}, no summarizer | {kind}, labels='all' | "
            "slowdown per repeat |\n|---|---|---|---|")


WALL, CPU = "env steps per wall-clock second", "env steps per CPU second"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="run every backend (subprocesses)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=20_480)
    parser.add_argument("--warmup", type=int, default=2_048)
    parser.add_argument("--chunk", type=int, default=2_048)
    parser.add_argument("--json", action="store_true", help="print raw results as JSON")
    args = parser.parse_args()
    if args.all:
        results = {}
        for backend in BACKENDS:
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            command = [sys.executable, __file__, "--json", "--repeats", str(args.repeats),
                       "--timesteps", str(args.timesteps), "--warmup", str(args.warmup),
                       "--chunk", str(args.chunk)]
            output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results[backend] = json.loads(output.stdout.strip().splitlines()[-1])
    else:
        import keras

        results = {keras.backend.backend(): run(args.repeats, args.timesteps, args.warmup,
                                                args.chunk)}
        if args.json:
            print(json.dumps(next(iter(results.values()))))
            return
    print("min / median / max over the repeats\n")
    for kind, suffix in ((WALL, ""), (CPU, "_cpu")):
        print(header(kind))
        for backend, values in results.items():
            print(summarize(backend, values, suffix))
        print()


if __name__ == "__main__":
    main()
