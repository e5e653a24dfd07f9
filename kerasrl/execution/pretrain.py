"""Pretraining on recorded traces: Tensorforce's `pretrain` and behaviour cloning.

`agent.pretrain(directory, num_iterations, num_traces=1, num_updates=1,
extension='.npz', objective='experience')` reads trace files written by the
`recorder` agent argument (`kerasrl.execution.recorder`) or by Tensorforce,
unchanged.

Each of `num_iterations` iterations shuffles the files, takes `num_traces` of
them (None: all), loads them and concatenates them along time. Then:

- `objective='experience'` (Tensorforce's semantics, reference §5.2): the
  batch goes through `agent.experience(...)` (split into episodes at the
  terminals, stored in memory), then `agent.update()` runs `num_updates`
  times. This is the agent's own RL update on the demonstrations.
- `objective='behavior_cloning'` (kerasrl; alias `'behaviour_cloning'`):
  `num_updates` supervised gradient steps that minimise the negative
  log-likelihood `-log π(a|s)` of the recorded actions under the agent's
  policy (cross-entropy for int/bool actions, Gaussian/Beta log-density for
  float actions), with recorded action masks honoured. Each step uses a
  random minibatch of the loaded timesteps (`batch_size` rows; default: the
  agent optimizer's `subsampling_fraction` of them). All steps of an
  iteration run in one compiled call of the agent's engine, with the agent's
  optimizer (same learning rate and Adam state as its RL updates).

Masks: `auxiliaries/<action>/mask` entries are moved into the states as
`'<action>_mask'`, as Tensorforce does.

Validation: every file is checked against the agent's specs before use; a
missing key, a state of the wrong shape or dtype, an action out of range, a
terminal sequence that does not end in 1/2, or a recorded action that its
mask forbids raises an `InputError` naming the file and the key.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kerasrl.errors import ArgumentError, InputError, KerasRLError

OBJECTIVES = {
    "experience": "experience",
    "tensorforce": "experience",
    "behavior_cloning": "behavior_cloning",
    "behaviour_cloning": "behavior_cloning",
    "bc": "behavior_cloning",
}
#: Smallest padded minibatch / dataset (compiled shapes are powers of two).
MIN_PADDING = 16


# ---------------------------------------------------------------------- files
def list_traces(directory: str | os.PathLike, extension: str = ".npz") -> list[Path]:
    """The trace files of a directory, sorted by name.

    Args:
        directory: The directory.
        extension: File name ending (default `'.npz'`).

    Returns:
        The sorted list of paths.

    Raises:
        InputError: the directory does not exist or has no file with the
            extension.
    """
    if not isinstance(extension, str) or not extension:
        raise ArgumentError.invalid("extension", "a file name ending such as '.npz'", extension)
    path = Path(directory)
    if not path.is_dir():
        raise InputError.invalid("directory", "an existing directory of trace files",
                                 str(directory))
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(extension)
                   and not p.name.startswith("."))
    if not files:
        names = sorted(p.name for p in path.iterdir())[:5]
        raise InputError(
            f"Invalid argument 'directory': expected trace files ending in '{extension}' in "
            f"'{directory}', received a directory with "
            + (f"only {names}{' ...' if len(names) == 5 else ''}." if names else "no files.")
        )
    return files


def _split_name(specs: Any, key: str, prefix: str) -> str | None:
    """The spec name a trace key (`'states'`, `'states/a/b'`) refers to."""
    if key == prefix:
        return specs.singleton_name if specs.singleton else None
    name = key[len(prefix) + 1:]
    return name if name in specs else None


def read_trace(path: str | os.PathLike, agent: Any) -> dict:
    """Loads and validates one trace file against an agent's specs.

    Args:
        path: The `.npz` file.
        agent: The agent whose `states_spec`/`actions_spec` the file must fit.

    Returns:
        `dict(states={name: array}, masks={action: bool array},
        actions={name: array}, terminal=int64 array, reward=float32 array)`
        with spec dtypes and a common length T.

    Raises:
        InputError: unreadable file, missing or unknown key, wrong shape or
            dtype, action out of range or forbidden by its mask, terminal not
            ending in 1/2 (the message names the file and the key).
    """
    path = Path(path)
    states_spec, actions_spec = agent.states_spec, agent.actions_spec
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(
            f"Invalid trace file '{path}': expected an .npz archive written by "
            f"np.savez(_compressed), received an unreadable file ({exc})."
        ) from None

    def label(key: str) -> str:
        return f"{path.name}['{key}']"

    states, actions, masks = {}, {}, {}
    for key, value in raw.items():
        if key == "states" or key.startswith("states/"):
            name = _split_name(states_spec, key, "states")
            if name is None:
                raise InputError.invalid(
                    label(key), f"a key for the agent's states {list(states_spec)}", key)
            states[name] = (key, value)
        elif key == "actions" or key.startswith("actions/"):
            name = _split_name(actions_spec, key, "actions")
            if name is None:
                raise InputError.invalid(
                    label(key), f"a key for the agent's actions {list(actions_spec)}", key)
            actions[name] = (key, value)
        elif key.startswith("auxiliaries/") and key.endswith("/mask"):
            name = key[len("auxiliaries/"):-len("/mask")]
            if name not in actions_spec or actions_spec[name].type != "int":
                raise InputError.invalid(
                    label(key), f"a mask of an int action among {actions_spec.int_names()}", key)
            masks[name] = (key, value)
        elif key.startswith("internals/"):
            continue  # recurrent internals: experience() recomputes them
        elif key not in ("terminal", "reward"):
            raise InputError.invalid(
                label(key), "only states, actions, terminal, reward, auxiliaries/<action>/mask "
                "and internals keys", key)
    for required in ("terminal", "reward"):
        if required not in raw:
            raise InputError(
                f"Invalid trace file '{path}': missing key '{required}' (keys: {sorted(raw)}).")
    for kind, specs, found in (("states", states_spec, states), ("actions", actions_spec,
                                                                 actions)):
        for name in specs:
            if name not in found:
                key = kind if specs.singleton else f"{kind}/{name}"
                raise InputError(
                    f"Invalid trace file '{path}': missing key '{key}' for {kind[:-1]} '{name}' "
                    f"(keys: {sorted(raw)}).")

    terminal = np.asarray(raw["terminal"])
    if terminal.ndim != 1 or len(terminal) == 0 or terminal.dtype.kind not in "biu":
        raise InputError.invalid(label("terminal"), "a non-empty 1-d int array of 0/1/2",
                                 terminal)
    length = len(terminal)
    terminal = terminal.astype(np.int64)
    if terminal.min() < 0 or terminal.max() > 2:
        raise InputError.invalid(label("terminal"), "values in {0, 1, 2}", terminal)
    if terminal[-1] == 0:
        raise InputError.invalid(
            label("terminal"), "full episodes (the last terminal must be 1 or 2)",
            terminal[-5:])
    reward = np.asarray(raw["reward"])
    if reward.shape != (length,) or reward.dtype.kind not in "biuf":
        raise InputError.invalid(label("reward"), f"a float array of shape ({length},)", reward)
    reward = reward.astype(np.float32)
    if not np.all(np.isfinite(reward)):
        raise InputError.invalid(label("reward"), "finite values", reward)

    def check_length(key: str, value: np.ndarray) -> None:
        if value.shape[:1] != (length,):
            raise InputError.invalid(label(key), f"{length} timesteps (as 'terminal')", value)

    result_states = {}
    for name, spec in states_spec.items():
        key, value = states[name]
        value = spec.check_batch(value, label(key), num_batch_dims=1)
        check_length(key, value)
        result_states[name] = value
    result_actions = {}
    for name, spec in actions_spec.items():
        key, value = actions[name]
        value = spec.check_action(value, label(key), num_batch_dims=1)
        check_length(key, value)
        result_actions[name] = value
    result_masks = {}
    from kerasrl.agents.io import check_mask

    for name, (key, value) in masks.items():
        mask = check_mask(value, actions_spec[name], label(key))
        check_length(key, mask)
        allowed = np.take_along_axis(mask, result_actions[name][..., None], axis=-1)[..., 0]
        if not allowed.all():
            step = int(np.argwhere(~allowed.reshape(length, -1).all(axis=-1))[0][0])
            raise InputError(
                f"Invalid trace file '{path}': the action in '{actions[name][0]}' at timestep "
                f"{step} is forbidden by its mask '{key}'."
            )
        result_masks[name] = mask
    return {"states": result_states, "masks": result_masks, "actions": result_actions,
            "terminal": terminal, "reward": reward}


def concatenate_traces(traces: list[dict], agent: Any) -> dict:
    """Concatenates validated traces along time (missing masks become all True)."""
    mask_names = sorted({name for trace in traces for name in trace["masks"]})
    batch: dict[str, Any] = {
        "states": {name: np.concatenate([t["states"][name] for t in traces])
                   for name in agent.states_spec},
        "actions": {name: np.concatenate([t["actions"][name] for t in traces])
                    for name in agent.actions_spec},
        "terminal": np.concatenate([t["terminal"] for t in traces]),
        "reward": np.concatenate([t["reward"] for t in traces]),
        "masks": {},
    }
    for name in mask_names:
        shape = agent.actions_spec[name].mask_shape()
        batch["masks"][name] = np.concatenate([
            t["masks"].get(name, np.ones((len(t["terminal"]),) + shape, np.bool_))
            for t in traces])
    return batch


# ---------------------------------------------------------------------- arguments
def _check_positive(value: Any, argument: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ArgumentError.invalid(argument, "a positive int" + (" or None" if allow_none
                                                                  else ""), value)
    return int(value)


def _objective(objective: Any) -> str:
    key = objective.lower() if isinstance(objective, str) else objective
    if key not in OBJECTIVES:
        raise ArgumentError.invalid(
            "objective", "'experience' (Tensorforce) or 'behavior_cloning'", objective)
    return OBJECTIVES[key]


# ---------------------------------------------------------------------- pretrain
def pretrain(
    agent: Any,
    directory: str | os.PathLike,
    num_iterations: int,
    num_traces: int | None = 1,
    num_updates: int = 1,
    extension: str = ".npz",
    objective: str = "experience",
    batch_size: int | None = None,
) -> dict:
    """Pretrains `agent` on the trace files of `directory`.

    Args:
        agent: The agent (`agent.pretrain(...)` passes itself).
        directory: Directory of trace files (Tensorforce's or kerasrl's).
        num_iterations: Number of iterations.
        num_traces: Files loaded per iteration (None: all).
        num_updates: Per iteration, `agent.update()` calls (`'experience'`)
            or gradient steps (`'behavior_cloning'`).
        extension: File name ending of the trace files.
        objective: `'experience'` (Tensorforce: `experience()` then
            `update()`) or `'behavior_cloning'` (maximum likelihood of the
            recorded actions).
        batch_size: Behaviour cloning only: rows per gradient step (default:
            the agent optimizer's `subsampling_fraction` of the loaded
            timesteps, all of them when it is 1.0).

    Returns:
        A dict with `objective`, `iterations`, `files` (names used in the
        last iteration) and, for `'experience'`, `updates` (updates run) and
        `metrics` (the agent's `last_metrics` after each iteration); for
        `'behavior_cloning'`, `gradient_steps`, `losses` (the mean loss of
        each iteration), `loss` (the last one), `accuracy` (share of the
        loaded timesteps whose recorded action equals the policy's mode
        after the last iteration; int/bool actions only, else None).

    Raises:
        ArgumentError: invalid arguments, or an agent without a policy (for
            behaviour cloning) or that does not learn.
        InputError: a missing/empty directory or an invalid trace file.

    Example:

    ```python
    agent = Agent.create(agent='ppo', environment='CartPole-v1', batch_size=10)
    agent.pretrain('traces', num_iterations=10, num_traces=None, num_updates=50,
                   objective='behavior_cloning')
    ```
    """
    num_iterations = _check_positive(num_iterations, "num_iterations")
    num_traces = _check_positive(num_traces, "num_traces", allow_none=True)
    num_updates = _check_positive(num_updates, "num_updates")
    batch_size = _check_positive(batch_size, "batch_size", allow_none=True)
    objective = _objective(objective)
    if batch_size is not None and objective != "behavior_cloning":
        raise ArgumentError.invalid(
            "batch_size", "None unless objective='behavior_cloning'", batch_size)
    if objective == "behavior_cloning":
        trainer = BehaviorCloning(agent)
    elif agent._awaiting_observe.any() or agent._episode_timesteps.any():
        from kerasrl.errors import CallOrderError

        raise CallOrderError(
            "agent.pretrain() is not allowed in the middle of an act/observe episode.")
    files = list_traces(directory, extension)
    cache: dict[Path, dict] = {}
    rng = agent._rng
    result: dict[str, Any] = {"objective": objective, "iterations": num_iterations}
    updates, metrics, losses = 0, [], []
    for _ in range(num_iterations):
        order = rng.permutation(len(files))
        chosen = [files[i] for i in (order if num_traces is None else order[:num_traces])]
        traces = []
        for path in chosen:
            if path not in cache:
                cache[path] = read_trace(path, agent)
            traces.append(cache[path])
        batch = concatenate_traces(traces, agent)
        result["files"] = [path.name for path in chosen]
        if objective == "experience":
            states = dict(batch["states"])
            states.update({f"{name}_mask": mask for name, mask in batch["masks"].items()})
            try:
                agent.experience(states=states, actions=batch["actions"],
                                 terminal=batch["terminal"], reward=batch["reward"])
            except KerasRLError as exc:
                raise type(exc)(f"{exc} (pretraining on {result['files']})") from None
            for _ in range(num_updates):
                updates += int(agent.update())
            metrics.append(dict(getattr(agent, "last_metrics", {}) or {}))
        else:
            losses.append(trainer.fit(batch, num_updates, batch_size))
    if objective == "experience":
        result["updates"] = updates
        result["metrics"] = metrics
    else:
        result["gradient_steps"] = num_iterations * num_updates
        result["losses"] = losses
        result["loss"] = losses[-1]
        result["accuracy"] = trainer.accuracy(batch)
    return result


class BehaviorCloning:
    """Supervised maximum-likelihood training of an agent's policy.

    Uses the agent's policy model, distributions, optimizer and engine (no
    new variables: on JAX a compiled function may only touch the variables
    its engine owns). The loss of a minibatch is the weighted mean of
    `-Σ_actions log π(a|s)` over its valid rows.

    Args:
        agent: An agent with `policy_model`, `distributions`,
            `optimizer_spec`, `_main_variables` and `engine` (PPO and the
            other policy-gradient agents).

    Raises:
        ArgumentError: the agent has no policy to clone.
    """

    def __init__(self, agent: Any):
        required = ("policy_model", "distributions", "optimizer_spec", "_main_variables",
                    "engine")
        if not all(hasattr(agent, name) for name in required):
            raise ArgumentError.invalid(
                "objective", "an agent with a policy network for 'behavior_cloning' (e.g. "
                "'ppo')", f"'behavior_cloning' for agent '{agent.agent_type}'")
        if agent.internal_shapes():
            raise ArgumentError.invalid(
                "objective", "'experience' for a recurrent policy (behaviour cloning trains on "
                "single timesteps, without the internal states)", "'behavior_cloning'")
        self.agent = agent
        self.mask_names = [name for name, spec in agent.actions_spec.items()
                           if spec.type == "int"]
        compiled = getattr(agent, "_behavior_cloning_functions", None)
        if compiled is None:
            compiled = {
                "fit": agent.engine.function(self._fit_program, sync=True),
                "mode": agent.engine.function(self._mode_program, sync=False),
            }
            agent._behavior_cloning_functions = compiled
        self._fit = compiled["fit"]
        self._mode = compiled["mode"]

    # ------------------------------------------------------------------ compiled
    def _log_likelihood(self, states, masks, actions):
        from kerasrl import backend as kbackend

        params = kbackend.call_model(self.agent.policy_model, states, training=True)
        total = None
        for name, distribution in self.agent.distributions.items():
            term = distribution.log_prob(params[name], actions[name], mask=masks.get(name))
            total = term if total is None else total + term
        return total

    def _fit_program(self, data, indices, weights):
        from keras import ops

        from kerasrl import backend as kbackend

        agent = self.agent
        spec = agent.optimizer_spec

        def loss_fn(minibatch, step_weights):
            log_prob = self._log_likelihood(
                minibatch["states"], minibatch["masks"], minibatch["actions"])
            loss = -ops.sum(log_prob * step_weights) / ops.maximum(ops.sum(step_weights), 1.0)
            return loss, {"loss": loss}

        def body(step, total):
            rows = ops.take(indices, step, axis=0)
            minibatch = {group: {name: ops.take(value, rows, axis=0)
                                 for name, value in data[group].items()}
                         for group in ("states", "masks", "actions")}
            loss, _, _ = kbackend.gradient_step(
                loss_fn, spec.optimizer, agent._main_variables, minibatch,
                ops.take(weights, step, axis=0), clip_norm=spec.clip_norm)
            return total + ops.cast(loss, "float32")

        steps = ops.shape(indices)[0]
        total = kbackend.fori_loop(0, steps, body, ops.zeros((), "float32"))
        return {"loss": total / ops.cast(steps, "float32")}

    def _mode_program(self, states, masks):
        from kerasrl import backend as kbackend

        params = kbackend.call_model(self.agent.policy_model, states)
        return {name: distribution.mode(params[name], mask=masks.get(name))
                for name, distribution in self.agent.distributions.items()}

    # ------------------------------------------------------------------ host side
    def _padded_data(self, batch: Mapping) -> tuple[dict, int]:
        n = len(batch["terminal"])
        size = max(MIN_PADDING, 1 << max(0, (n - 1).bit_length()))

        def pad(value: np.ndarray, fill: Any = 0) -> np.ndarray:
            array = np.full((size,) + value.shape[1:], fill, dtype=value.dtype)
            array[:n] = value
            return array

        masks = {}
        for name in self.mask_names:
            shape = self.agent.actions_spec[name].mask_shape()
            mask = batch["masks"].get(name)
            masks[name] = pad(mask if mask is not None else np.ones((n,) + shape, np.bool_),
                              True)
        data = {
            "states": {name: pad(value) for name, value in batch["states"].items()},
            "masks": masks,
            "actions": {name: pad(value) for name, value in batch["actions"].items()},
        }
        return data, n

    def fit(self, batch: Mapping, num_steps: int, batch_size: int | None) -> float:
        """Runs `num_steps` gradient steps on random minibatches; returns the mean loss."""
        agent = self.agent
        data, n = self._padded_data(batch)
        spec = agent.optimizer_spec
        rows = spec.steps_for(n) if batch_size is None else min(batch_size, n)
        padded_rows = max(MIN_PADDING, 1 << max(0, (rows - 1).bit_length()))
        indices = np.zeros((num_steps, padded_rows), dtype=np.int32)
        weights = np.zeros((num_steps, padded_rows), dtype=np.float32)
        for step in range(num_steps):
            indices[step, :rows] = agent._rng.permutation(n)[:rows] if rows < n else np.arange(n)
        weights[:, :rows] = 1.0
        counters = {"timesteps": agent.timesteps, "episodes": agent.episodes,
                    "updates": agent.updates}
        agent.engine.assign(spec.learning_rate_variable(), spec.learning_rate.value(counters))
        outputs = self._fit(data, indices, weights)
        return float(outputs["loss"])

    def accuracy(self, batch: Mapping) -> float | None:
        """Share of timesteps where the policy's mode equals the recorded (discrete) action."""
        names = [name for name, spec in self.agent.actions_spec.items()
                 if spec.type in ("int", "bool")]
        if not names:
            return None
        data, n = self._padded_data(batch)
        modes = self._mode(data["states"], data["masks"])
        correct = np.ones(n, dtype=bool)
        for name in names:
            equal = np.asarray(modes[name])[:n] == np.asarray(batch["actions"][name])
            correct &= equal.reshape(n, -1).all(axis=-1)
        return float(correct.mean())


__all__ = ["pretrain", "read_trace", "list_traces", "concatenate_traces", "BehaviorCloning"]
