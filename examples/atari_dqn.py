"""Train DQN on an Atari game (default ALE/Breakout-v5), Nature-DQN style.

Run:  pip install "kerasrl[atari,jax]"
      python examples/atari_dqn.py --timesteps 1000000 --memory 100000
      python examples/atari_dqn.py --timesteps 600 --memory 1000 --quiet   (a smoke test)

The Nature-DQN network on 84x84x4 stacked frames (kerasrl.environments.atari),
Huber loss, a target network synchronized every 1,000 updates, one update every
4 steps after a warm-up, and epsilon decayed linearly from 1 to 0.01.
Replay memory holds float32 states here: 100,000 transitions of 84x84x4
frames take about 11 GB, so size `--memory` to your RAM.
"""

import argparse

from kerasrl import Agent
from kerasrl.cli import NATURE_CNN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="ALE/Breakout-v5")
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    parser.add_argument("--memory", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    environment = dict(environment="atari", level=args.level)
    warmup = min(10_000, args.timesteps // 4)
    agent = Agent.create(
        agent="dqn", environment=environment, network=NATURE_CNN,
        memory=args.memory, batch_size=32, start_updating=warmup,
        update_frequency=4, learning_rate=1e-4, huber_loss=1.0, discount=0.99,
        target_sync_frequency=1000,
        exploration=dict(type="linear", unit="timesteps", num_steps=max(1, args.timesteps // 10),
                         initial_value=1.0, final_value=0.01),
        config=dict(seed=args.seed),
    )
    history = agent.fit(environment, timesteps=args.timesteps, seed=args.seed,
                        verbose=0 if args.quiet else 1)
    print(f"trained {agent.timesteps} timesteps, {history.episodes} episodes, "
          f"{agent.updates} updates")


if __name__ == "__main__":
    main()
