"""Train PPO on CartPole-v1 until it balances the pole for 500 steps.

Run:  python examples/ppo_cartpole.py            (KERAS_BACKEND picks the backend)
      python examples/ppo_cartpole.py --timesteps 20000   (shorter run)

Uses the RL-Zoo CartPole settings: 8 environments stepped as one batch, 256
timesteps per update, 20 epochs over the whole batch, GAE(0.8), γ=0.98, and
learning rate and clipping decayed linearly to 0.
"""

import argparse

from kerasrl import Agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    decay = dict(type="linear", unit="timesteps", num_steps=args.timesteps, final_value=0.0)
    agent = Agent.create(
        agent="ppo",
        environment="CartPole-v1",
        parallel_interactions=8,
        update=dict(unit="timesteps", batch_size=256),  # 32 steps x 8 environments
        multi_step=20,  # epochs
        subsampling_fraction=1.0,  # one minibatch of 256
        learning_rate=dict(decay, initial_value=1e-3),
        likelihood_ratio_clipping=dict(decay, initial_value=0.2),
        discount=0.98,
        gae_decay=0.8,
        baseline="auto",  # a separate 64-64 value network...
        baseline_optimizer=0.5,  # ...trained in the same loss with weight 0.5
        advantage_processing="normalize",
        max_grad_norm=0.5,
        config=dict(seed=args.seed),
    )

    history = agent.fit("CartPole-v1", timesteps=args.timesteps, num_parallel=8,
                        seed=args.seed, verbose=0 if args.quiet else 1)
    print(f"trained {agent.timesteps} timesteps, {history.episodes} episodes, "
          f"{agent.updates} updates")
    result = agent.evaluate("CartPole-v1", episodes=10, seed=1000)
    print(f"deterministic evaluation: mean return {result['mean_return']:.1f} "
          f"over {result['episodes']} episodes")


if __name__ == "__main__":
    main()
