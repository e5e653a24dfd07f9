"""Train PPO on an Atari game (default ALE/Pong-v5) with CleanRL's ppo_atari settings.

Run:  pip install "kerasrl[atari,jax]"
      python examples/atari_ppo.py --timesteps 10000000    (a real run: hours on a GPU)
      python examples/atari_ppo.py --timesteps 256 --num-parallel 2 --batch-size 128 --quiet
                                                            (a smoke test)

The environment is `Environment.create('atari', level=...)`: no-op resets,
frame skip 4, grayscale 84x84 frames, the last 4 stacked (see
kerasrl.environments.atari). The agent is the `ppo-atari` preset of
`kerasrl run`: the Nature-DQN convolutional network for the policy and the
value function, 8 environments x 128 steps per update, 4 epochs of 4
minibatches.
"""

import argparse

from kerasrl import Agent
from kerasrl.cli import PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="ALE/Pong-v5")
    parser.add_argument("--timesteps", type=int, default=10_000_000)
    parser.add_argument("--num-parallel", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=1024,
                        help="timesteps per update (the preset's 8 x 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    environment = dict(environment="atari", level=args.level)
    spec = dict(PRESETS["ppo-atari"], update=dict(unit="timesteps", batch_size=args.batch_size))
    agent = Agent.create(spec, environment=environment,
                         parallel_interactions=args.num_parallel, config=dict(seed=args.seed))
    history = agent.fit(environment, timesteps=args.timesteps, num_parallel=args.num_parallel,
                        seed=args.seed, verbose=0 if args.quiet else 1)
    print(f"trained {agent.timesteps} timesteps, {history.episodes} episodes, "
          f"{agent.updates} updates")
    agent.save("atari-ppo.keras")
    print("saved atari-ppo.keras; watch it with: kerasrl play --agent atari-ppo.keras "
          f"--environment atari --level {args.level}")


if __name__ == "__main__":
    main()
