"""Runs one benchmark script on two source trees of kerasrl, alternately, in one run.

Use it to check that a change keeps the benchmarks as fast: the baseline tree (e.g. a
`git worktree` of the previous commit) and the current tree are run in turn, `--rounds`
times each, on the same machine, with the same interpreter, and the JSON lines that the
benchmark prints are collected per tree.

Usage:
    git worktree add /tmp/base <commit>
    KERAS_BACKEND=jax python benchmarks/ab.py --base /tmp/base --rounds 2 -- \\
        benchmarks/ppo_cartpole.py --seeds 0 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(tree: str, script: list[str]) -> list[dict]:
    """Runs `script` (its path relative to the tree) with `tree` first on the path."""
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, os.path.join(tree, script[0]), *script[1:]]
    output = subprocess.run(command, env=environ, cwd=tree, capture_output=True, text=True,
                            check=True).stdout
    results = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith(("{", "[")):
            value = json.loads(line)
            results.extend(value if isinstance(value, list) else [value])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the baseline source tree")
    parser.add_argument("--current", default=HERE, help="the current source tree")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--key", action="append", default=None,
                        help="numeric result keys to summarise (default: all)")
    parser.add_argument("script", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    trees = {"base": args.base, "current": args.current}
    collected: dict[str, list[dict]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        for name, tree in (trees.items() if round_ % 2 == 0 else reversed(trees.items())):
            collected[name].extend(run(tree, script))
    print(f"python {sys.version.split()[0]}, KERAS_BACKEND={os.environ.get('KERAS_BACKEND')}")
    keys = args.key or sorted({k for rows in collected.values() for row in rows for k, v in
                               row.items() if isinstance(v, (int, float))})
    print(f"{'metric':40s} {'base (median)':>15s} {'current (median)':>17s} {'ratio':>7s}")
    for key in keys:
        values = {name: [row[key] for row in rows if isinstance(row.get(key), (int, float))]
                  for name, rows in collected.items()}
        if not all(values.values()):
            continue
        base, current = (statistics.median(values[n]) for n in ("base", "current"))
        ratio = current / base if base else float("nan")
        print(f"{key:40s} {base:15.4g} {current:17.4g} {ratio:7.3f}")


if __name__ == "__main__":
    main()
