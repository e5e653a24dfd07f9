"""Agents without a network: `random`, `constant` and `function`.

They act on the host with NumPy (there is nothing to compile) and never learn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kerasrl.agents.agent import Agent
from kerasrl.errors import ArgumentError, InputError
from kerasrl.specs import flatten, unflatten


class RandomAgent(Agent):
    """Acts uniformly at random, honouring action masks.

    bool: fair coin; int: uniform over the allowed values; float with both
    bounds: uniform in [min, max]; float without bounds: standard normal; a
    float with a single bound raises an error at creation.

    Args:
        states, actions, max_episode_timesteps, parallel_interactions, config:
            See `Agent`.

    Example:

    ```python
    agent = Agent.create(agent='random', environment='CartPole-v1')
    ```
    """

    agent_type = "random"

    def __init__(self, states, actions, max_episode_timesteps=None, parallel_interactions=1,
                 config=None, **kwargs: Any):
        super().__init__(states, actions, max_episode_timesteps, parallel_interactions, config,
                         **kwargs)
        for name, spec in self.actions_spec.items():
            if spec.type == "float" and (spec.min_value is None) != (spec.max_value is None):
                raise ArgumentError.invalid(
                    "actions", "a float action with both bounds or none", spec.get_config(),
                    where=f"random agent, action '{name}'",
                )
            if spec.type == "int" and spec.num_values is None:
                raise ArgumentError.invalid(
                    "num_values", "a positive int for an int action", None,
                    where=f"action '{name}'",
                )
        self._store_spec()

    def _act_batch(self, states, masks, slots, independent, deterministic):
        size = next(iter(states.values())).shape[0]
        return {name: spec.sample(self._rng, (size,), masks.get(name))
                for name, spec in self.actions_spec.items()}


class ConstantAgent(Agent):
    """Always returns the same actions.

    Args:
        action_values: Dict of constant values per action name (for a
            singleton action, the value itself or `{'action': value}`).
            Defaults: False / 0 / 0.0 (clipped into float bounds).
        states, actions, max_episode_timesteps, parallel_interactions, config:
            See `Agent`.
    """

    agent_type = "constant"

    def __init__(self, states, actions, max_episode_timesteps=None, action_values=None,
                 parallel_interactions=1, config=None, **kwargs: Any):
        super().__init__(states, actions, max_episode_timesteps, parallel_interactions, config,
                         **kwargs)
        if action_values is None:
            values = {}
        elif isinstance(action_values, Mapping):
            values = flatten(action_values)
        elif self.actions_spec.singleton:
            values = {self.actions_spec.singleton_name: action_values}
        else:
            raise ArgumentError.invalid("action_values", "a dict per action name", action_values)
        unknown = set(values) - set(self.actions_spec)
        if unknown:
            raise ArgumentError.invalid(
                "action_values", f"keys among {list(self.actions_spec)}", sorted(unknown)
            )
        self._values = {}
        for name, spec in self.actions_spec.items():
            if name in values:
                value = spec.check_action(values[name], f"action_values['{name}']", 0)
            else:
                value = spec.zeros()
                if spec.type == "float" and spec.min_value is not None:
                    value = np.clip(value, spec.min_value, spec.max_value).astype(np.float32)
            self._values[name] = value
        self._store_spec(action_values=None if action_values is None else
                         {k: np.asarray(v).tolist() for k, v in self._values.items()})

    def _act_batch(self, states, masks, slots, independent, deterministic):
        size = next(iter(states.values())).shape[0]
        actions = {}
        for name, value in self._values.items():
            batch = np.broadcast_to(value, (size,) + value.shape).copy()
            mask = masks.get(name)
            if mask is not None:
                allowed = np.take_along_axis(mask, batch[..., None], axis=-1)[..., 0]
                if not allowed.all():
                    # The constant is masked here: fall back to the first allowed value.
                    batch = np.where(allowed, batch, mask.argmax(axis=-1))
            actions[name] = batch
        return actions


class FunctionAgent(Agent):
    """Acts with a plain Python policy `function(states) -> actions`.

    This is how a hand-written or expert policy is recorded (Tensorforce's
    `Agent.create(agent=fn, recorder=...)`): `Agent.create` turns any callable
    into a `FunctionAgent`, and the `recorder` argument writes its training
    episodes to trace files. Without a recorder it is simply an agent that
    never learns (useful to evaluate a heuristic with `agent.evaluate`).

    The function is called once per state, never batched: it receives the
    single state value (a numpy array of the state shape, as passed to `act`)
    or, for named states, a dict of them (nested like the spec), and returns
    the action (a Python scalar or array) or a dict of actions.

    Args:
        states, actions, max_episode_timesteps, parallel_interactions, config:
            See `Agent`.
        function: The policy. `fn_act` is Tensorforce's name for it.
        with_masks: Also pass the action masks given to `act`: the function
            then receives a dict with the states (a singleton one as
            `'state'`) and `'<action>_mask'` entries (masks that were not
            given are all True). Without it, a returned action that a given
            mask forbids raises an `InputError`.
        recorder, saver, summarizer, tracking: See `Agent`.

    Raises:
        ArgumentError: `function` is not callable.
        InputError: the function returned an invalid action.

    Example:

    ```python
    agent = Agent.create(
        agent=lambda state: int(state[2] + 0.5 * state[3] > 0),
        environment='CartPole-v1', recorder=dict(directory='traces'),
    )
    ```
    """

    agent_type = "function"

    def __init__(self, states, actions, max_episode_timesteps=None, function=None,
                 with_masks: bool = False, parallel_interactions=1, config=None,
                 fn_act=None, **kwargs: Any):
        super().__init__(states, actions, max_episode_timesteps, parallel_interactions, config,
                         **kwargs)
        if function is not None and fn_act is not None:
            raise ArgumentError(
                "Arguments 'function' and 'fn_act' of the function agent are aliases; give "
                "only one."
            )
        function = function if function is not None else fn_act
        if not callable(function):
            raise ArgumentError.invalid("function", "a callable states -> actions", function)
        self.function = function
        self.with_masks = bool(with_masks)
        self._mask_names = [name for name, spec in self.actions_spec.items()
                            if spec.type == "int" and spec.num_values is not None]
        self._store_spec(function=getattr(function, "__qualname__", repr(function)),
                         with_masks=self.with_masks)

    def _input(self, states: dict, masks: dict, index: int) -> Any:
        values = {name: value[index] for name, value in states.items()}
        if not self.with_masks:
            return self.states_spec.unflatten(values)
        nested = unflatten(values)
        for name in self._mask_names:
            mask = masks.get(name)
            nested[f"{name}_mask"] = (
                mask[index] if mask is not None
                else np.ones(self.actions_spec[name].mask_shape(), dtype=np.bool_))
        return nested

    def _act_batch(self, states, masks, slots, independent, deterministic):
        size = next(iter(states.values())).shape[0]
        columns: dict[str, list] = {name: [] for name in self.actions_spec}
        for index in range(size):
            output = self.function(self._input(states, masks, index))
            if isinstance(output, Mapping):
                flat = flatten(output)
                if self.actions_spec.singleton and self.actions_spec.singleton_name in flat:
                    flat = {self.actions_spec.singleton_name: flat[self.actions_spec.singleton_name]}
            elif self.actions_spec.singleton:
                flat = {self.actions_spec.singleton_name: output}
            else:
                raise InputError.invalid(
                    "function output", f"a dict with the actions {list(self.actions_spec)}",
                    output,
                )
            for name, spec in self.actions_spec.items():
                if name not in flat:
                    raise InputError.invalid(
                        "function output", f"a value for action '{name}'", output)
                columns[name].append(
                    spec.check_action(flat[name], f"function output['{name}']", 0))
        actions = {name: np.stack(values) for name, values in columns.items()}
        for name, mask in masks.items():
            chosen = np.take_along_axis(mask, actions[name][..., None], axis=-1)[..., 0]
            if not chosen.all():
                index = int(np.argwhere(~chosen.reshape(size, -1).all(axis=-1))[0][0])
                raise InputError(
                    f"Invalid function output['{name}']: expected an action allowed by "
                    f"'{name}_mask', received {actions[name][index].tolist()!r} (batch index "
                    f"{index}); pass with_masks=True to give the function the masks."
                )
        return actions
