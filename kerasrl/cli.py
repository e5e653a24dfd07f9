"""Command line: `kerasrl run ...` (also `python -m kerasrl run ...`).

Trains (or evaluates) an agent on an environment, with Tensorforce's `run.py` flags:

```bash
kerasrl run --agent ppo.json --environment CartPole-v1 --episodes 300
kerasrl run --agent ppo --environment gym --level CartPole-v1 --episodes 300 \
    --num-parallel 8 --batch-agent-calls
# environments in other processes / on other machines (see docs/parallel.md)
kerasrl run --environment gym --level CartPole-v1 --remote socket-server --port 65432
kerasrl run --agent ppo.json --episodes 100 --num-parallel 2 --remote socket-client \
    --host 127.0.0.1,127.0.0.1 --port 65432,65433 --batch-agent-calls
```

`--agent` takes a registry key, a JSON file, or `examples`' preset
`ppo-cartpole`. Agent arguments can be added as `-A key=value` (JSON values).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

#: The convolutional network of the Nature DQN paper (Mnih et al., 2015), for 84x84x4 frames.
NATURE_CNN = [dict(type="conv2d", size=32, window=8, stride=4, padding="valid"),
              dict(type="conv2d", size=64, window=4, stride=2, padding="valid"),
              dict(type="conv2d", size=64, window=3, stride=1, padding="valid"),
              dict(type="flatten"), dict(type="dense", size=512)]

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
    # PPO with CleanRL's ppo_atari.py settings, for `--environment atari --level ALE/...`
    # with --num-parallel 8 (see docs/atari.md): the Nature-DQN convolutional network,
    # rollouts of 8 x 128 steps, 4 epochs of 4 minibatches.
    "ppo-atari": dict(
        agent="ppo",
        network=NATURE_CNN,
        update=dict(unit="timesteps", batch_size=1024),
        multi_step=16,
        subsampling_fraction=0.25,
        learning_rate=2.5e-4,
        likelihood_ratio_clipping=0.1,
        entropy_regularization=0.01,
        discount=0.99,
        gae_decay=0.95,
        baseline=NATURE_CNN,
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


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Returns the `kerasrl` argument parser (sub-command `run`)."""
    parser = argparse.ArgumentParser(
        prog="kerasrl", description="kerasrl: reinforcement learning on Keras 3."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="train or evaluate an agent on an environment, or serve an environment",
        description="Train (or evaluate) an agent on an environment with a progress bar, or "
                    "serve an environment to remote agents (--remote socket-server). Flags "
                    "follow Tensorforce's run.py.",
    )
    agent = run.add_argument_group("agent")
    agent.add_argument("-a", "--agent",
                       help="agent key (e.g. ppo), JSON file, or preset "
                            f"({', '.join(PRESETS)}); required unless serving")
    agent.add_argument("-A", "--agent-argument", action="append", default=[],
                       metavar="KEY=VALUE", help="extra agent argument (JSON value), repeatable")
    agent.add_argument("-c", "--checkpoints", metavar="DIR[,FILENAME]",
                       help="periodic checkpoints (the agent's saver)")
    agent.add_argument("-s", "--summaries", metavar="DIR[,FILENAME]",
                       help="summaries (the agent's summarizer)")
    agent.add_argument("--recordings", metavar="DIR", help="record traces (the agent's recorder)")
    env = run.add_argument_group("environment")
    env.add_argument("-e", "--environment",
                     help="gymnasium id (CartPole-v1), 'gym' with --level, or a JSON file; "
                          "required unless --remote socket-client")
    env.add_argument("-l", "--level", help="gymnasium id when --environment is 'gym'")
    env.add_argument("-m", "--max-episode-timesteps", type=int, default=None,
                     help="episode length limit (terminal 2)")
    env.add_argument("--visualize", action="store_true", help="render the environment")
    env.add_argument("--visualize-directory", help="directory for rendered videos")
    env.add_argument("--import-modules", type=_comma_list, default=[], metavar="M1,M2",
                     help="modules to import first (e.g. registering environments)")
    parallel = run.add_argument_group("parallel execution")
    parallel.add_argument("--num-parallel", type=int, default=None,
                          help="number of environments (default 1, or the number of --port/"
                               "--host values with socket-client)")
    parallel.add_argument("--batch-agent-calls", action="store_true",
                          help="one batched act/observe for all environments")
    parallel.add_argument("--sync-timesteps", action="store_true",
                          help="step all environments together (implied by batching)")
    parallel.add_argument("--sync-episodes", action="store_true",
                          help="start new episodes only when all environments finished theirs")
    parallel.add_argument("--remote", choices=("multiprocessing", "socket-client",
                                               "socket-server"),
                          help="run environments in subprocesses, connect to socket servers, "
                               "or serve one environment")
    parallel.add_argument("--blocking", action="store_true",
                          help="remote: wait for each reply instead of acting on ready ones")
    parallel.add_argument("--host", type=_comma_list, default=None, metavar="H1,H2",
                          help="socket-client: server hosts; socket-server: bind address "
                               "(default 127.0.0.1; 0.0.0.0 exposes the server)")
    parallel.add_argument("--port", type=_comma_list, default=None, metavar="P1,P2",
                          help="socket ports (one host and one port: port, port+1, ...)")
    parallel.add_argument("--auth-key", default=None,
                          help="shared secret for sockets (default $KERASRL_AUTH_KEY)")
    parallel.add_argument("--timeout", type=float, default=None,
                          help="remote: seconds to wait for any reply (default 60); "
                               "socket-server: seconds a client may stay silent (default "
                               "300)")
    parallel.add_argument("--handshake-timeout", type=float, default=None,
                          help="socket-server: seconds a client has to authenticate "
                               "(default 10)")
    parallel.add_argument("--max-clients", type=int, default=1,
                          help="socket-server: exit after serving this many clients, as "
                               "Tensorforce's run.py does after one (default 1; 0: serve "
                               "until stopped)")
    parallel.add_argument("--recover", action="store_true",
                          help="remote: restart failed environments (episode aborted) "
                               "instead of stopping")
    runner = run.add_argument_group("runner")
    runner.add_argument("-v", "--evaluation", action="store_true",
                        help="the last of --num-parallel environments runs evaluation episodes")
    runner.add_argument("-n", "--episodes", type=int, default=None)
    runner.add_argument("-t", "--timesteps", type=int, default=None)
    runner.add_argument("-u", "--updates", type=int, default=None)
    runner.add_argument("--mean-horizon", type=int, default=10,
                        help="episodes averaged for the displayed return (default 10)")
    runner.add_argument("--save-best-agent", metavar="DIR",
                        help="save the agent as DIR/best-model when the evaluation score "
                             "improves (needs --evaluation)")
    runner.add_argument("--seed", type=int, default=None, help="agent and environment seed")
    runner.add_argument("--evaluate", type=int, default=10, metavar="EPISODES",
                        help="deterministic evaluation episodes after training (default 10; "
                             "0: none)")
    runner.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    logging = run.add_argument_group("logging")
    logging.add_argument("-r", "--repeat", type=int, default=1,
                         help="independent repetitions of the whole run (default 1)")
    logging.add_argument("--path", help="write PATH.json (returns, lengths, seconds per episode "
                                        "and repeat) and PATH.png if matplotlib is installed; "
                                        "needs --episodes")
    logging.add_argument("--seaborn", action="store_true", help="seaborn style for the plot")
    run.add_argument("--debug", action="store_true",
                     help="on an error, show the Python traceback, not only the message")
    play = commands.add_parser(
        "play", help="load a saved agent and watch it, or record videos of it",
        description="Load a saved agent (a directory or a .keras file) and play deterministic "
                    "episodes on an environment; --record-video writes one video per episode "
                    "(gymnasium's RecordVideo, needs moviepy).")
    play.add_argument("-a", "--agent", required=True, metavar="PATH",
                      help="the saved agent: a directory, or a file such as agent.keras")
    play.add_argument("-e", "--environment", required=True,
                      help="gymnasium id, or an environment type such as 'atari'")
    play.add_argument("-l", "--level", help="the gymnasium id of --environment 'atari'/'gym'")
    play.add_argument("-n", "--episodes", type=int, default=1, help="episodes (default 1)")
    play.add_argument("--record-video", metavar="DIR", help="write a video of each episode")
    play.add_argument("--visualize", action="store_true", help="render in a window")
    play.add_argument("--seed", type=int, default=None, help="environment seed")
    play.add_argument("--debug", action="store_true",
                      help="on an error, show the Python traceback, not only the message")
    return parser


def _fail(parser: argparse.ArgumentParser, message: str) -> None:
    parser.error(message)


def _agent_spec(args: argparse.Namespace) -> dict:
    from kerasrl.registry import is_json_path, load_json

    if args.agent in PRESETS:
        spec: dict = dict(PRESETS[args.agent])
    elif is_json_path(args.agent):
        spec = load_json(args.agent, "agent")
    else:
        spec = dict(agent=args.agent)
    for item in args.agent_argument:
        key, _, value = item.partition("=")
        spec[key] = _parse_value(value)
    if args.seed is not None:
        spec["config"] = {**spec.get("config", {}), "seed": args.seed}
    for flag, key in ((args.checkpoints, "saver"), (args.summaries, "summarizer")):
        if flag:
            directory, _, filename = flag.partition(",")
            spec[key] = dict(directory=directory, **({"filename": filename} if filename else {}))
    if args.recordings:
        spec["recorder"] = dict(directory=args.recordings)
    return spec


def _write_results(path: str, results: dict, seaborn: bool, title: str = "") -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    from kerasrl.saving import atomic_path

    with atomic_path(path + ".json") as temporary, open(temporary, "w", encoding="utf-8") as file:
        json.dump(results, file)
    print(f"wrote {path}.json")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'kerasrl[plot]'): skipped the plot",
              f"{path}.png")
        return
    import numpy as np

    if seaborn:
        try:
            plt.style.use("seaborn-v0_8")
        except OSError:  # pragma: no cover
            pass
    rewards = np.asarray(results["rewards"], dtype=float)
    lengths = np.asarray(results["timesteps"], dtype=float)
    x = np.arange(1, len(rewards) + 1)
    figure, left = plt.subplots()
    right = left.twinx()
    repeats = rewards.shape[1]
    spread = f" (median, min-max of {repeats} runs)" if repeats > 1 else ""
    handles = []
    for axis, values, color, label in ((left, rewards, "green", "episode return"),
                                       (right, lengths, "blue", "episode length (timesteps)")):
        handles += axis.plot(x, np.median(values, axis=1), color=color, label=label + spread)
        if repeats > 1:
            axis.fill_between(x, values.min(axis=1), values.max(axis=1), color=color, alpha=0.2)
        axis.set_ylabel(label, color=color)
    left.set_xlabel("episode")
    left.set_title(title or "kerasrl run")
    left.legend(handles=handles, loc="upper left")
    figure.tight_layout()
    with atomic_path(path + ".png") as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    print(f"wrote {path}.png")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kerasrl` command.

    An error ends the command with one line, `kerasrl: error: <message>`, on
    stderr and exit status 1 (the traceback too with `--debug`); argument
    errors exit with argparse's status 2.

    Args:
        argv: Arguments (default `sys.argv[1:]`).

    Returns:
        The exit status (0 on success).
    """
    from kerasrl.errors import KerasRLError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _play(args) if args.command == "play" else _run(parser, args)
    except (KerasRLError, OSError, ImportError, ValueError, TypeError) as exc:
        if args.debug:
            raise
        kind = "" if isinstance(exc, KerasRLError) else f"{type(exc).__name__}: "
        print(f"kerasrl: error: {kind}{exc} (--debug shows the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("kerasrl: interrupted", file=sys.stderr)
        return 130


def _play(args: argparse.Namespace) -> int:
    """`kerasrl play`: loads the agent and plays deterministic episodes."""
    from kerasrl import Agent
    from kerasrl.errors import ArgumentError

    if args.episodes < 1:
        raise ArgumentError.invalid("--episodes", "a positive int", args.episodes)
    agent = Agent.load(args.agent)
    environment: dict = dict(environment=args.environment)
    if args.level is not None:
        environment["level"] = args.level
    if args.record_video:
        environment["visualize_directory"] = args.record_video
    if args.visualize:
        environment["visualize"] = True
    result = agent.evaluate(environment, episodes=args.episodes, num_parallel=1, seed=args.seed)
    for episode, value in enumerate(result["returns"], start=1):
        print(f"episode {episode}: return {value:.1f}")
    print(f"mean return {result['mean_return']:.1f} over {result['episodes']} episodes")
    if args.record_video:
        print(f"videos in {args.record_video}")
    agent.close()
    return 0


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """`kerasrl run`."""
    for module in args.import_modules:
        importlib.import_module(module)
    ports = None
    if args.port is not None:
        try:
            ports = [int(port) for port in args.port]
        except ValueError:
            _fail(parser, f"--port: expected comma-separated ints, received {args.port}")
    environment: Any = args.environment
    env_kwargs: dict = {}
    if args.level is not None:
        environment = dict(environment=args.environment, level=args.level)
    if args.visualize:
        env_kwargs["visualize"] = True
    if args.visualize_directory:
        env_kwargs["visualize_directory"] = args.visualize_directory
    if env_kwargs:
        environment = dict(environment if isinstance(environment, dict) else
                           dict(environment=environment), **env_kwargs)
    if args.remote == "socket-server":
        if args.environment is None:
            _fail(parser, "--environment is required with --remote socket-server")
        if not ports or len(ports) != 1:
            _fail(parser, "--remote socket-server needs exactly one --port")
        host = args.host[0] if args.host else "127.0.0.1"
        from kerasrl.environments.environment import Environment

        server_options = {key: value for key, value in (
            ("timeout", args.timeout), ("handshake_timeout", args.handshake_timeout))
            if value is not None}
        if args.max_clients < 0:
            _fail(parser, f"--max-clients must be >= 0, got {args.max_clients}")
        server_options["max_clients"] = args.max_clients or None
        try:
            Environment.create(environment, max_episode_timesteps=args.max_episode_timesteps,
                               remote="socket-server", host=host, port=ports[0],
                               auth_key=args.auth_key, **server_options)
        except KeyboardInterrupt:
            print("kerasrl: server stopped")
        return 0
    if args.agent is None:
        _fail(parser, "--agent is required (unless --remote socket-server)")
    if args.remote == "socket-client":
        if args.environment is not None:
            _fail(parser, "--environment must not be given with --remote socket-client "
                          "(the servers own the environments)")
        if ports is None:
            _fail(parser, "--remote socket-client needs --port")
        environment = None
    elif args.environment is None:
        _fail(parser, "--environment is required (unless --remote socket-client)")
    if args.path is not None and args.episodes is None:
        _fail(parser, "--path needs --episodes")
    if args.save_best_agent and not args.evaluation:
        _fail(parser, "--save-best-agent needs --evaluation")
    if args.repeat < 1:
        _fail(parser, f"--repeat: expected a positive int, received {args.repeat}")
    from kerasrl import Runner

    remote_kwargs: dict = {}
    if args.remote is not None:
        remote_kwargs = dict(remote=args.remote, blocking=args.blocking, recover=args.recover,
                             timeout=args.timeout)
        if args.remote == "socket-client":
            hosts = args.host or ["127.0.0.1"]
            remote_kwargs.update(host=hosts if len(hosts) > 1 else hosts[0],
                                 port=ports if len(ports) > 1 else ports[0],
                                 auth_key=args.auth_key)
    num_parallel = args.num_parallel
    if num_parallel is None and args.remote != "socket-client":
        num_parallel = 1
    results: dict = {"rewards": [], "timesteps": [], "seconds": [], "agent_seconds": []}
    per_repeat: list = []
    for repeat in range(args.repeat):
        seed = None if args.seed is None else args.seed + 1000 * repeat
        runner = Runner(_agent_spec(args), environment, num_parallel=num_parallel,
                        max_episode_timesteps=args.max_episode_timesteps, seed=seed,
                        evaluation=args.evaluation, **remote_kwargs)
        try:
            runner.run(num_episodes=args.episodes, num_timesteps=args.timesteps,
                       num_updates=args.updates, batch_agent_calls=args.batch_agent_calls,
                       sync_timesteps=args.sync_timesteps, sync_episodes=args.sync_episodes,
                       use_tqdm=not args.no_progress, mean_horizon=args.mean_horizon,
                       save_best_agent=args.save_best_agent)
            per_repeat.append((runner.episode_returns, runner.episode_timesteps,
                               runner.episode_seconds, runner.episode_agent_seconds))
            if args.evaluate:
                runner.evaluation_returns = []
                runner.run(num_episodes=args.evaluate, evaluation=True,
                           batch_agent_calls=True, use_tqdm=False)
                returns = runner.evaluation_returns
                print(f"evaluation over {len(returns)} deterministic episodes: "
                      f"mean return {float(sum(returns)) / max(len(returns), 1):.1f} ± "
                      f"{_std(returns):.1f}")
            if args.remote is not None and runner.aborted_episodes:
                print(f"recovered from {runner.aborted_episodes} environment failures")
        finally:
            runner.close()
    if args.path is not None:
        count = min(len(r[0]) for r in per_repeat)
        for index, key in enumerate(("rewards", "timesteps", "seconds", "agent_seconds")):
            results[key] = [[float(r[index][e]) for r in per_repeat] for e in range(count)]
        _write_results(args.path, results, args.seaborn,
                       title=f"{args.agent} on {args.environment or 'remote environments'}")
    return 0


def _std(values: list) -> float:
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
