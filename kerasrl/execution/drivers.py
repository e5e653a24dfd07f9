"""The loops behind `Agent.fit` and `Agent.evaluate`, run by a `Runner`.

The agent methods check their arguments and resolve their defaults, then
call these functions through the driver table of `kerasrl.agents.agent`
(`register_driver`); `kerasrl.execution` registers them when `kerasrl` is
imported. Keeping them here lets the agents package depend on nothing in
`kerasrl.execution`: execution drives agents, never the other way round.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasrl.callbacks import CallbackList, History
from kerasrl.execution.runner import Runner


def fit(
    agent: Any,
    environment: Any,
    episodes: int | None,
    timesteps: int | None,
    num_parallel: int,
    callbacks: Any = None,
    verbose: Any = "auto",
    max_episode_timesteps: int | None = None,
    seed: int | None = None,
) -> History:
    """Trains `agent` on batched copies of `environment` (the body of `Agent.fit`).

    Args:
        agent: The agent.
        environment: Environment spec or instance.
        episodes: Stop after this many episodes (None: no episode limit).
        timesteps: Stop after this many timesteps (None: no timestep limit).
        num_parallel: Number of environment copies stepped as one batch.
        callbacks: `kerasrl.callbacks.Callback` instances (or None).
        verbose: 0/False hides the progress bar; anything else shows it.
        max_episode_timesteps: Passed to the environments.
        seed: Seed of the environments (environment i gets seed + i).

    Returns:
        A `kerasrl.callbacks.History` with per-episode `episode_return` and
        `episode_length` lists.
    """
    history = History()
    callback_list = CallbackList(callbacks, agent=agent, history=history)
    runner = Runner(
        agent=agent, environment=environment, num_parallel=num_parallel,
        max_episode_timesteps=max_episode_timesteps, seed=seed,
    )
    try:
        runner.run(
            num_episodes=episodes, num_timesteps=timesteps,
            batch_agent_calls=True, use_tqdm=verbose not in (0, False),
            keras_callbacks=callback_list,
        )
    finally:
        runner.close()
    return history


def evaluate(
    agent: Any,
    environment: Any,
    episodes: int,
    deterministic: bool = True,
    num_parallel: int = 1,
    max_episode_timesteps: int | None = None,
    seed: int | None = None,
    verbose: Any = 0,
) -> dict:
    """Plays evaluation episodes with independent acting (the body of `Agent.evaluate`).

    Args:
        agent: The agent (nothing is learned or counted).
        environment: Environment spec or instance.
        episodes: Number of episodes.
        deterministic: Act with the mode (no sampling, no exploration).
        num_parallel: Environment copies stepped as one batch.
        max_episode_timesteps: Passed to the environments.
        seed: Seed of the environments.
        verbose: Show a progress bar when truthy.

    Returns:
        Dict with `mean_return`, `std_return`, `min_return`, `max_return`,
        `mean_length`, `episodes` and the list `returns`.
    """
    runner = Runner(
        agent=agent, environment=environment, num_parallel=num_parallel,
        max_episode_timesteps=max_episode_timesteps, seed=seed,
    )
    try:
        runner.run(
            num_episodes=episodes, evaluation=True, batch_agent_calls=True,
            use_tqdm=bool(verbose), deterministic=deterministic,
        )
    finally:
        runner.close()
    returns = np.asarray(runner.evaluation_returns[:episodes], dtype=np.float64)
    lengths = np.asarray(runner.evaluation_timesteps[:episodes], dtype=np.float64)
    return {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "min_return": float(returns.min()),
        "max_return": float(returns.max()),
        "mean_length": float(lengths.mean()),
        "episodes": len(returns),
        "returns": returns.tolist(),
    }
