"""TensorBoard summaries of a short PPO run on CartPole (any backend, no TensorFlow needed).

Writes a new run under `data/summaries/` and prints the command that shows it:

    python examples/tensorboard_summaries.py
    tensorboard --logdir data/summaries

(This file is not named `tensorboard.py`: run as a script, its folder comes
first on `sys.path` and such a name would hide the `tensorboard` package.)

Labels (`labels='all'` or a list): reward, loss, entropy, kl-divergence,
update-norm, parameters, throughput, metrics, graph. See docs/summaries.md.
"""

from __future__ import annotations

import argparse

from kerasrl import Agent
from kerasrl.summaries import get_summarizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", default="data/summaries")
    parser.add_argument("--episodes", type=int, default=30)
    args = parser.parse_args()

    agent = Agent.create(
        agent="ppo", environment="CartPole-v1", parallel_interactions=4,
        update=dict(unit="timesteps", batch_size=128),  # one batch shape: one compilation
        network=[dict(type="dense", size=32), dict(type="dense", size=32)],
        baseline="auto", baseline_optimizer=0.5,
        learning_rate=dict(type="linear", unit="episodes", num_steps=args.episodes,
                           initial_value=1e-3, final_value=1e-4),
        summarizer=dict(
            directory=args.directory,
            # list of labels, or 'all'
            labels=["entropy", "graph", "kl-divergence", "loss", "parameters", "reward",
                    "throughput", "update-norm"],
        ),
    )
    run = get_summarizer(agent).logdir
    history = agent.fit("CartPole-v1", episodes=args.episodes, verbose=0)
    agent.close()  # flushes and closes the event file
    returns = history.history["episode_return"]
    print(f"{len(returns)} episodes, {agent.updates} updates, "
          f"mean return of the last 10: {sum(returns[-10:]) / len(returns[-10:]):.1f}")
    print(f"summaries written to {run}")
    print(f"view them with:\n    tensorboard --logdir {args.directory}")


if __name__ == "__main__":
    main()
