"""Environment throughput: local batched vs subprocesses vs sockets.

Measures environment steps per second of `Runner(...).run(batch_agent_calls=True)`
with a random agent (so that the environments dominate), for CartPole-v1 and
for an environment that sleeps 2 ms per step, with 1, 2, 4 and 8
environments, plus one PPO line:

```bash
python benchmarks/parallel.py            # full table
python benchmarks/parallel.py --quick    # 1 and 2 environments, shorter runs
```

Socket servers are started as light subprocesses on free loopback ports.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

import numpy as np

from kerasrl.environments import Environment

HERE = os.path.dirname(os.path.abspath(__file__))
# Tensorforce's ppo.json, from the shared data folder beside the repository.
PPO = os.path.join(HERE, "..", "..", "shared", "tensorforce-data", "configs", "ppo.json")


class SleepEnvironment(Environment):
    """A cheap environment that sleeps `seconds` per step (I/O- or simulator-bound)."""

    def __init__(self, seconds=0.002, length=200):
        super().__init__()
        self.seconds, self.length, self.t = seconds, length, 0

    def states(self):
        return dict(type="float", shape=(4,))

    def actions(self):
        return dict(type="int", num_values=2)

    def reset(self):
        self.t = 0
        return np.zeros(4, np.float32)

    def execute(self, actions):
        time.sleep(self.seconds)
        self.t += 1
        return np.full(4, self.t, np.float32), self.t >= self.length, 1.0


# Serves an environment without importing keras (as the multiprocessing children do).
_SERVER = """
import sys, types
package = types.ModuleType("kerasrl")
package.__path__ = [sys.argv[1]]
sys.modules["kerasrl"] = package
from kerasrl.environments.remote import serve
serve(sys.argv[2], port=int(sys.argv[3]))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _servers(environment: str, n: int) -> tuple[list, list]:
    package = os.path.dirname(os.path.dirname(os.path.abspath(__import__("kerasrl").__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE] + sys.path))
    ports = [_free_port() for _ in range(n)]
    processes = [subprocess.Popen(
        [sys.executable, "-c", _SERVER, os.path.join(package, "kerasrl"), environment, str(p)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    return processes, ports


def measure(agent, environment: str, n: int, mode: str, timesteps: int,
            repeats: int = 3, warmup: int = 50) -> float:
    """Median environment steps per second of `repeats` batched runs (after a warm-up
    of at least `warmup` timesteps)."""
    from kerasrl import Runner

    processes: list = []
    kwargs: dict = {}
    if mode == "multiprocessing":
        kwargs = dict(remote="multiprocessing")
    elif mode == "sockets":
        processes, ports = _servers(environment, n)
        kwargs = dict(remote="socket-client", port=ports)
    try:
        runner = Runner(agent, None if mode == "sockets" else environment, num_parallel=n,
                        **kwargs)
        try:
            runner.run(num_timesteps=max(n * 20, warmup), batch_agent_calls=True, use_tqdm=False)
            rates = []
            for _ in range(repeats):
                start = time.perf_counter()
                runner.run(num_timesteps=timesteps, batch_agent_calls=True, use_tqdm=False)
                rates.append(runner.timesteps / (time.perf_counter() - start))
            return float(np.median(rates))
        finally:
            runner.close()
    finally:
        for process in processes:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    counts = [1, 2] if args.quick else [1, 2, 4, 8]
    modes = ("local", "multiprocessing", "sockets")
    import keras

    print(f"cpu cores: {os.cpu_count()}, backend: {keras.backend.backend()}")
    print(f"{'environment':<22}{'agent':<8}{'n':>3}" + "".join(f"{m:>17}" for m in modes))
    for environment, per_env in (("CartPole-v1", 1500), ("parallel.SleepEnvironment", 500)):
        for n in counts:
            steps = per_env * n if environment != "CartPole-v1" else per_env * max(n, 2)
            if args.quick:
                steps //= 3
            row = [measure("random", environment, n, mode, steps) for mode in modes]
            print(f"{environment.split('.')[-1]:<22}{'random':<8}{n:>3}"
                  + "".join(f"{value:>13,.0f} st/s" for value in row), flush=True)
    for mode in ("local", "multiprocessing"):
        # The warm-up lets the update compile for the batch sizes it meets early on
        # (batches are padded to powers of two, one compilation each).
        value = measure(PPO, "CartPole-v1", 4, mode, 600 if args.quick else 4000, repeats=1,
                        warmup=600 if args.quick else 8000)
        print(f"{'CartPole-v1':<22}{'ppo':<8}{4:>3}  {mode}: {value:,.0f} st/s", flush=True)


if __name__ == "__main__":
    main()
