"""Command line: `kerasrl run ...` (also `python -m kerasrl run ...`).

Trains (or evaluates) an agent on an environment, Tensorforce `run.py` style:

```bash
kerasrl run --agent ppo.json --environment CartPole-v1 --episodes 300
kerasrl run --agent ppo --environment gym --level CartPole-v1 --episodes 300 \
    --num-parallel 8 --batch-agent-calls
```

`--agent` takes a registry key, a JSON file, or `examples`' preset
`ppo-cartpole`. Agent arguments can be added as `-A key=value` (JSON values).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # PPO with the RL-Zoo CartPole settings (see docs/algorithms/ppo.md).
    "ppo-cartpole": dict(
        agent="ppo",
        update=dict(unit="timesteps", batch_size=256),
        multi_step=20,
        subsampling_fraction=1.0,
        learning_rate=dict(type="linear", unit="timesteps", num_steps=100_000,
                           initial_value=1e-3, final_value=0.0),
        likelihood_ratio_clipping=dict(type="linear", unit="timesteps", num_steps=100_000,
                                       initial_value=0.2, final_value=0.0),
        discount=0.98,
        gae_decay=0.8,
        baseline="auto",
        baseline_optimizer=0.5,
        advantage_processing="normalize",
        max_grad_norm=0.5,
    ),
}


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kerasrl", description="kerasrl: reinforcement learning on Keras 3."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="train or evaluate an agent on an environment",
        description="Train (or evaluate) an agent on an environment with a progress bar.",
    )
    agent = run.add_argument_group("agent")
    agent.add_argument("-a", "--agent", required=True,
                       help="agent key (e.g. ppo), JSON file, or preset "
                            f"({', '.join(PRESETS)})")
    agent.add_argument("-A", "--agent-argument", action="append", default=[],
                       metavar="KEY=VALUE", help="extra agent argument (JSON value), repeatable")
    env = run.add_argument_group("environment")
    env.add_argument("-e", "--environment", required=True,
                     help="gymnasium id (CartPole-v1), 'gym' with --level, or a JSON file")
    env.add_argument("-l", "--level", help="gymnasium id when --environment is 'gym'")
    env.add_argument("-m", "--max-episode-timesteps", type=int, default=None)
    parallel = run.add_argument_group("parallel execution")
    parallel.add_argument("--num-parallel", type=int, default=None,
                          help="number of environment copies (default 1)")
    parallel.add_argument("--batch-agent-calls", action="store_true",
                          help="one batched act/observe for all environments")
    runner = run.add_argument_group("runner")
    runner.add_argument("-n", "--episodes", type=int, default=None)
    runner.add_argument("-t", "--timesteps", type=int, default=None)
    runner.add_argument("-u", "--updates", type=int, default=None)
    runner.add_argument("--mean-horizon", type=int, default=10,
                        help="episodes averaged for the displayed return (default 10)")
    runner.add_argument("--seed", type=int, default=None, help="agent and environment seed")
    runner.add_argument("--evaluate", type=int, default=10, metavar="EPISODES",
                        help="deterministic evaluation episodes after training (0: none)")
    runner.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kerasrl` command."""
    args = build_parser().parse_args(argv)
    from kerasrl import Agent, Runner

    if args.agent in PRESETS:
        agent_spec: Any = dict(PRESETS[args.agent])
    else:
        agent_spec = args.agent
    extra = {}
    for item in args.agent_argument:
        key, _, value = item.partition("=")
        extra[key] = _parse_value(value)
    if args.seed is not None:
        extra["config"] = {**extra.get("config", {}), "seed": args.seed}
    environment: Any = args.environment
    if args.level is not None:
        environment = dict(environment=args.environment, level=args.level)
    num_parallel = args.num_parallel or 1
    from kerasrl.environments.environment import Environment

    probe = Environment.create(environment, max_episode_timesteps=args.max_episode_timesteps)
    if isinstance(agent_spec, str) and not agent_spec.endswith(".json"):
        agent_spec = dict(agent=agent_spec)
    if isinstance(agent_spec, dict):
        agent_spec = {**agent_spec, **extra}
        agent = Agent.create(agent_spec, environment=probe, parallel_interactions=num_parallel)
    else:
        agent = Agent.create(agent_spec, environment=probe, parallel_interactions=num_parallel,
                             **extra)
    probe.close()
    runner = Runner(agent, environment, num_parallel=num_parallel,
                    max_episode_timesteps=args.max_episode_timesteps, seed=args.seed)
    try:
        runner.run(num_episodes=args.episodes, num_timesteps=args.timesteps,
                   num_updates=args.updates, batch_agent_calls=args.batch_agent_calls,
                   use_tqdm=not args.no_progress, mean_horizon=args.mean_horizon)
    finally:
        runner.close()
    if args.evaluate:
        result = agent.evaluate(environment, episodes=args.evaluate,
                                max_episode_timesteps=args.max_episode_timesteps, seed=args.seed)
        print(f"evaluation over {result['episodes']} deterministic episodes: "
              f"mean return {result['mean_return']:.1f} ± {result['std_return']:.1f}")
    agent.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
