"""Record a hand-written policy, then behaviour-clone it into a fresh PPO agent.

1. A CartPole heuristic (push towards the side the pole is falling to) is
   wrapped into an agent by `Agent.create(agent=function, ...)` and run by a
   `Runner`; its `recorder` writes Tensorforce-compatible trace files.
2. A fresh PPO agent is pretrained on those traces with
   `objective='behavior_cloning'` (maximum likelihood of the recorded
   actions), then evaluated deterministically.

Run: `python examples/record_and_pretrain.py [--directory DIR] [--episodes N]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kerasrl import Agent, Runner


def heuristic(state):
    """Pushes the cart right when the pole falls right (angle + angular velocity)."""
    return int(state[2] + 0.5 * state[3] > 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", default=None,
                        help="where to write the traces (default: a temporary directory)")
    parser.add_argument("--episodes", type=int, default=4, help="episodes to record")
    parser.add_argument("--iterations", type=int, default=10, help="pretraining iterations")
    parser.add_argument("--steps", type=int, default=50, help="gradient steps per iteration")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(args.directory or Path(scratch) / "traces")
        start = time.perf_counter()

        # 1. Record the heuristic: one trace file per episode.
        runner = Runner(
            agent=dict(agent=heuristic, recorder=dict(directory=str(directory), frequency=1)),
            environment="CartPole-v1", seed=0,
        )
        runner.run(num_episodes=args.episodes, use_tqdm=False)
        runner.close()
        files = sorted(path.name for path in directory.glob("*.npz"))
        print(f"recorded {len(files)} episodes (returns {runner.episode_returns}): {files}")

        # 2. Behaviour cloning of a fresh PPO agent on the traces.
        agent = Agent.create(agent="ppo", environment="CartPole-v1", batch_size=10,
                             config=dict(seed=0))
        before = agent.evaluate("CartPole-v1", episodes=10, seed=100)["mean_return"]
        result = agent.pretrain(directory=str(directory), num_iterations=args.iterations,
                                num_traces=None, num_updates=args.steps,
                                objective="behavior_cloning")
        after = agent.evaluate("CartPole-v1", episodes=10, seed=100)
        print(f"behaviour cloning: loss {result['losses'][0]:.3f} -> {result['loss']:.3f}, "
              f"accuracy {result['accuracy']:.3f}")
        print(f"mean return before pretraining: {before:.1f}")
        print(f"mean return after pretraining: {after['mean_return']:.1f} "
              f"(10 deterministic episodes)")
        print(f"done in {time.perf_counter() - start:.1f} s")
        agent.close()


if __name__ == "__main__":
    main()
