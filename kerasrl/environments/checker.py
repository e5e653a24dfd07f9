"""`check_environment`: what to run first on a custom environment (SB3's `check_env`).

It steps the environment a few times and reports, all at once, each mistake
that would make training fail or silently wrong, in words that say what was
expected and what was found:

- spaces: `observation_space`/`action_space` missing, not gymnasium spaces,
  or of a kind kerasrl cannot use;
- `reset`: not accepting `seed=`/`options=`, not returning
  `(observation, info)` (the old gym API returned the observation alone);
- `step`: not returning `(observation, reward, terminated, truncated, info)`
  (the old gym API returned 4 values with `done`), a reward that is not one
  finite number, flags that are not bools, an info that is not a dict;
- observations outside the observation space, with the reason: wrong
  dtype, wrong shape, values out of bounds.

Problems that do not stop training (an observation space with infinite
bounds, no time limit, a `reset(seed=...)` that does not make the first
observation repeatable) come back as warnings.

kerasrl's own `Environment` subclasses (Tensorforce's `states()`,
`actions()`, `reset()`, `execute()`) are checked by running them through the
same validation the `Runner` applies.

Why our own checker rather than `gymnasium.utils.env_checker.check_env`:
gymnasium's stops at the first failed assertion and warns about the rest;
this one lists every problem it finds in one error, checks what kerasrl
itself requires (supported spaces, scalar rewards), and raises a
`KerasRLError`.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from kerasrl.errors import KerasRLError


class EnvironmentCheckError(KerasRLError, ValueError):
    """`check_environment` found problems; `problems` lists them, one sentence each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("The environment has problems:\n" + "\n".join(
            f"  - {problem}" for problem in self.problems))


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _observation_problems(space: Any, observation: Any, where: str) -> list[str]:
    """Why `observation` is not in `space` (dtype, shape, bounds), or nothing."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        if not isinstance(observation, dict):
            return [f"{where} should be a dict with keys {sorted(space.spaces)}, got "
                    f"{_describe(observation)}."]
        problems = []
        missing = sorted(set(space.spaces) - set(observation))
        extra = sorted(set(observation) - set(space.spaces))
        if missing or extra:
            problems.append(f"{where} should have the keys {sorted(space.spaces)}; missing "
                            f"{missing}, unexpected {extra}.")
        for key in space.spaces:
            if key in observation:
                problems += _observation_problems(space[key], observation[key],
                                                  f"{where}['{key}']")
        return problems
    if isinstance(space, spaces.Tuple):
        if not isinstance(observation, tuple) or len(observation) != len(space.spaces):
            return [f"{where} should be a tuple of {len(space.spaces)} values, got "
                    f"{_describe(observation)}."]
        return [problem for i, (child, value) in enumerate(zip(space.spaces, observation,
                                                                strict=True))
                for problem in _observation_problems(child, value, f"{where}[{i}]")]
    if space.contains(observation):
        return []
    array = np.asarray(observation)
    if isinstance(space, spaces.Box):
        if not isinstance(observation, np.ndarray):
            return [f"{where} should be a numpy array of dtype {space.dtype} and shape "
                    f"{space.shape}, got {_describe(observation)}."]
        if array.shape != space.shape:
            return [f"{where} should have the shape {space.shape} of the observation space, "
                    f"got shape {array.shape}."]
        if array.dtype != space.dtype:
            return [f"{where} should have the dtype {space.dtype} of the observation space, "
                    f"got {array.dtype} (cast it, or declare the space with dtype={array.dtype})."]
        outside = ~((array >= space.low) & (array <= space.high))
        return [f"{where} has {int(outside.sum())} value(s) outside the space's bounds, e.g. "
                f"{array[outside].flat[0]!r} outside [{space.low[outside].flat[0]}, "
                f"{space.high[outside].flat[0]}]."]
    if isinstance(space, spaces.Discrete):
        return [f"{where} should be an int in [{space.start}, {space.start + space.n}), got "
                f"{_describe(observation)}."]
    return [f"{where} is not in the observation space {space}: got {_describe(observation)}."]


def _reward_problem(reward: Any, where: str) -> str | None:
    if isinstance(reward, (bool, np.bool_)):
        return f"{where} should be a float, got a bool."
    if isinstance(reward, np.ndarray) and reward.shape != ():
        return (f"{where} should be one number, got an array of shape {reward.shape} "
                "(a vector environment? give kerasrl the environment id or factory and "
                "num_parallel instead; several objectives? sum them).")
    if not isinstance(reward, (int, float, np.number, np.ndarray)):
        return f"{where} should be a float, got {_describe(reward)}."
    if not math.isfinite(float(reward)):
        return f"{where} should be finite, got {float(reward)}."
    return None


def _check_gymnasium(env: Any, steps: int) -> tuple[list[str], list[str]]:
    from gymnasium import spaces

    from kerasrl.environments.gymnasium import space_adapter

    problems: list[str] = []
    warnings: list[str] = []
    for name in ("observation_space", "action_space"):
        space = getattr(env, name, None)
        if not isinstance(space, spaces.Space):
            problems.append(f"env.{name} should be a gymnasium.spaces.Space, got "
                            f"{_describe(space)}.")
            continue
        try:
            space_adapter(space, is_state=name == "observation_space", where=f"env.{name}")
        except KerasRLError as exc:
            problems.append(f"env.{name} cannot be used by kerasrl: {exc}")
    if problems:
        return problems, warnings
    observation_space, action_space = env.observation_space, env.action_space
    if isinstance(observation_space, spaces.Box) and not (
            np.isfinite(observation_space.low).all() and np.isfinite(observation_space.high).all()):
        warnings.append("env.observation_space has infinite bounds: the default state "
                        "preprocessing 'linear_normalization' applies only to bounded states, "
                        "so these reach the network unscaled (give finite bounds, or "
                        "min_value/max_value to Environment.create, if you know them).")
    spec = getattr(env, "spec", None)
    if spec is None or getattr(spec, "max_episode_steps", None) is None:
        warnings.append("no time limit (env.spec.max_episode_steps): give "
                        "max_episode_timesteps=... or wrap with gymnasium.wrappers.TimeLimit.")
    parameters = inspect.signature(env.reset).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    missing = [name for name in ("seed", "options") if name not in parameters and not accepts_any]
    if missing:
        problems.append(f"env.reset should accept the keyword arguments seed= and options= "
                        f"(gymnasium's API), it does not accept {missing}.")
        return problems, warnings
    first = env.reset(seed=0)
    if not (isinstance(first, tuple) and len(first) == 2 and isinstance(first[1], dict)):
        problems.append(f"env.reset should return (observation, info) with info a dict, got "
                        f"{_describe(first)} (the old gym API returned the observation alone: "
                        "update the environment to gymnasium's API).")
        return problems, warnings
    problems += _observation_problems(observation_space, first[0], "the observation of reset")
    again = env.reset(seed=0)[0]
    if not problems and not _same(first[0], again):
        warnings.append("env.reset(seed=0) twice gave different first observations: seeds do "
                        "not make runs repeatable (seed the environment's RNG with "
                        "super().reset(seed=seed) and use self.np_random).")
    action_space.seed(0)
    for step in range(steps):
        result = env.step(action_space.sample())
        where = f"step {step + 1}"
        if not isinstance(result, tuple) or len(result) != 5:
            old = isinstance(result, tuple) and len(result) == 4
            problems.append(f"env.step should return (observation, reward, terminated, "
                            f"truncated, info), got {_describe(result)}"
                            + (" (the old gym API's (observation, reward, done, info): split "
                               "done into terminated and truncated)." if old else "."))
            break
        observation, reward, terminated, truncated, info = result
        found = _observation_problems(observation_space, observation,
                                      f"the observation of {where}")
        found += [problem for problem in [_reward_problem(reward, f"the reward of {where}")]
                  if problem]
        for flag, value in (("terminated", terminated), ("truncated", truncated)):
            if not isinstance(value, (bool, np.bool_)):
                found.append(f"{flag} of {where} should be a bool, got {_describe(value)}.")
        if not isinstance(info, dict):
            found.append(f"the info of {where} should be a dict, got {_describe(info)}.")
        problems += [problem for problem in found if problem not in problems]
        if found:
            break
        if terminated or truncated:
            env.reset()
    return problems, warnings


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_same, a, b))
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _check_kerasrl(env: Any, steps: int) -> list[str]:
    """A Tensorforce-style environment, through the validation the Runner applies."""
    from kerasrl.environments.environment import EnvironmentWrapper

    rng = np.random.default_rng(0)
    try:
        wrapped = env if isinstance(env, EnvironmentWrapper) else EnvironmentWrapper(env)
        specs = wrapped.actions_spec
        wrapped.reset()
        for _ in range(steps):
            actions = {name: spec.sample(rng)[()] for name, spec in specs.items()}
            _, terminal, _ = wrapped.execute(
                actions[specs.singleton_name] if specs.singleton else actions)
            if terminal:
                wrapped.reset()
    except KerasRLError as exc:
        return [str(exc)]
    return []


def check_environment(env: Any, steps: int = 50) -> list[str]:
    """Checks an environment before training on it; raises on the problems it finds.

    Args:
        env: A gymnasium environment (`gymnasium.Env` or anything with its
            methods and spaces) or a kerasrl `Environment`.
        steps: Random-action steps to take (reset when an episode ends).

    Returns:
        Warnings: things that do not stop training but may surprise (an empty
        list when there are none).

    Raises:
        EnvironmentCheckError: one message listing every problem found.

    Example:

    >>> import gymnasium as gym
    >>> from kerasrl import check_environment
    >>> check_environment(gym.make('Pendulum-v1'))
    []
    >>> check_environment(gym.make('CartPole-v1'))[0][:49]
    'env.observation_space has infinite bounds: the de'
    """
    from kerasrl.environments.environment import Environment
    from kerasrl.errors import ArgumentError
    from kerasrl.validation import check_int

    steps = check_int(steps, "steps", minimum=1, where="check_environment")
    if isinstance(env, Environment):
        problems, warnings = _check_kerasrl(env, steps), []
    elif hasattr(env, "step") and hasattr(env, "reset"):
        problems, warnings = _check_gymnasium(env, steps)
    else:
        raise ArgumentError.invalid("env", "a gymnasium environment or a kerasrl Environment",
                                    env, "check_environment")
    if problems:
        raise EnvironmentCheckError(problems)
    return warnings
