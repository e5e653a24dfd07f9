"""The compute floor of Tensorforce's `ppo.json` update: kerasrl vs hand-written JAX.

Tensorforce's `benchmarks/configs/ppo.json` updates after every episode on the
last 12 episodes: at 500-step CartPole episodes, 6,000 timesteps, 10 baseline
Adam steps and 5 policy Adam steps (91% subsampling) on 64-64 tanh networks.
This script times, on the same machine in one process, alternately:

- kerasrl: `agent.update()` of a `ppo.json` agent whose memory holds 12
  episodes (its compiled update runs on the batch padded to 6,000 rows, see
  `kerasrl.memories.PaddedSizes`);
- plain JAX: one `jax.jit` function doing the same math on 6,000 rows
  (policy and baseline MLPs, Adam, clipped importance ratio, subsampling
  masks), with no Keras and no kerasrl.

and prints the milliseconds per update of each, and the env steps/s that one
update per 500-step episode leaves at most (acting and the environment cost
nothing): `500 / update seconds`. Needs JAX (`KERAS_BACKEND=jax`).

Usage:
    KERAS_BACKEND=jax python benchmarks/update_floor.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "tensorforce-data"
ROWS = 6000
EPISODE = 500


def plain_update():
    """A jitted update of the same shapes as ppo.json's, in plain JAX; returns `run()`."""
    import jax
    import jax.numpy as jnp

    def init(key, sizes):
        params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            key, sub = jax.random.split(key)
            params += [jax.random.normal(sub, (fan_in, fan_out)) * 0.1, jnp.zeros(fan_out)]
        return params

    def mlp(params, x):
        h = jnp.tanh(x @ params[0] + params[1])
        h = jnp.tanh(h @ params[2] + params[3])
        return h @ params[4] + params[5]

    def adam(params, grads, m, v, t, lr):
        m = [0.9 * a + 0.1 * g for a, g in zip(m, grads)]
        v = [0.999 * a + 0.001 * g * g for a, g in zip(v, grads)]
        params = [p - lr * (a / (1 - 0.9 ** t)) / (jnp.sqrt(b / (1 - 0.999 ** t)) + 1e-7)
                  for p, a, b in zip(params, m, v)]
        return params, m, v

    def subsample(key):
        return (jax.random.uniform(key, (ROWS,)) < 0.913).astype(jnp.float32)

    @jax.jit
    def update(policy, baseline, x, action, returns, old_log_prob, key):
        zeros = [jnp.zeros_like(p) for p in policy], [jnp.zeros_like(p) for p in baseline]

        def value_loss(params, w):
            return jnp.sum(w * (mlp(params, x)[:, 0] - returns) ** 2) / jnp.sum(w)

        def baseline_step(i, state):
            params, m, v, key = state
            key, sub = jax.random.split(key)
            grads = jax.grad(value_loss)(params, subsample(sub))
            return (*adam(params, grads, m, v, i + 1.0, 3.7e-3), key)

        baseline, _, _, key = jax.lax.fori_loop(
            0, 10, baseline_step, (baseline, zeros[1], zeros[1], key))
        advantage = returns - mlp(baseline, x)[:, 0]

        def policy_loss(params, w):
            log_prob = jnp.take_along_axis(jax.nn.log_softmax(mlp(params, x)),
                                           action[:, None], 1)[:, 0]
            ratio = jnp.exp(log_prob - old_log_prob)
            clipped = jnp.clip(ratio, 0.9, 1.1)
            return -jnp.sum(w * jnp.minimum(ratio * advantage, clipped * advantage)) / jnp.sum(w)

        def policy_step(i, state):
            params, m, v, key = state
            key, sub = jax.random.split(key)
            grads = jax.grad(policy_loss)(params, subsample(sub))
            return (*adam(params, grads, m, v, i + 1.0, 1.8e-3), key)

        policy, _, _, _ = jax.lax.fori_loop(0, 5, policy_step, (policy, zeros[0], zeros[0], key))
        return policy, baseline

    key = jax.random.PRNGKey(0)
    policy, baseline = init(key, [4, 64, 64, 2]), init(key, [4, 64, 64, 1])
    x = jax.random.normal(key, (ROWS, 4))
    action = jnp.zeros(ROWS, jnp.int32)
    returns, old = jnp.ones(ROWS), jnp.full(ROWS, -0.69)

    def run() -> None:
        jax.block_until_ready(update(policy, baseline, x, action, returns, old, key))

    return run


def kerasrl_update():
    """A ppo.json agent with 12 episodes in memory; returns `run()` (one `agent.update()`)."""
    from kerasrl import Runner

    runner = Runner(agent=dict(agent=str(SHARED / "configs" / "ppo.json"), config=dict(seed=0)),
                    environment=str(SHARED / "configs" / "cartpole.json"), seed=0)
    runner.run(num_episodes=14, use_tqdm=False)
    agent = runner.agent
    rows = len(agent.memory.latest_episodes(12)["log_prob"])
    print(f"kerasrl batch: {rows} timesteps, padded to {agent._padded_sizes(rows)} rows")
    return agent.update


def timed(run, repeats: int) -> float:
    """Median milliseconds of `run()` over `repeats` calls (after one warm-up call)."""
    run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(1e3 * (time.perf_counter() - start))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax
    import keras

    import kerasrl

    if keras.backend.backend() != "jax":
        raise SystemExit("update_floor.py compares with plain JAX: run it with KERAS_BACKEND=jax")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, jax {jax.__version__}, "
          f"keras {keras.__version__}, kerasrl {kerasrl.__version__}")
    systems = {"kerasrl agent.update()": kerasrl_update(), "plain JAX": plain_update()}
    results: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(args.rounds):  # alternate the two systems
        for name, run in systems.items():
            results[name].append(timed(run, args.repeats))
    print("| update of 6,000 rows | ms (median of rounds) | env steps/s left at one update "
          "per 500-step episode |\n|---|---|---|")
    for name, samples in results.items():
        ms = statistics.median(samples)
        print(f"| {name} | {ms:.1f} | {EPISODE / (ms / 1e3):,.0f} |")


if __name__ == "__main__":
    main()
