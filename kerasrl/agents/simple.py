"""Agents without a network: `random` and `constant`.

They act on the host with NumPy (there is nothing to compile) and never learn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kerasrl.agents.agent import Agent
from kerasrl.errors import ArgumentError
from kerasrl.specs import flatten


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
        actions = {}
        for name, spec in self.actions_spec.items():
            shape = (size,) + spec.shape
            if spec.type == "bool":
                actions[name] = self._rng.random(shape) < 0.5
            elif spec.type == "int":
                mask = masks.get(name)
                if mask is None:
                    actions[name] = self._rng.integers(0, spec.num_values, size=shape)
                else:
                    # Uniform over allowed values: argmax of random keys on allowed entries.
                    keys = np.where(mask, self._rng.random(mask.shape), -1.0)
                    actions[name] = keys.argmax(axis=-1).astype(np.int64)
            elif spec.min_value is not None:
                lo = np.asarray(spec.min_value, np.float32)
                hi = np.asarray(spec.max_value, np.float32)
                actions[name] = (lo + (hi - lo) * self._rng.random(shape)).astype(np.float32)
            else:
                actions[name] = self._rng.standard_normal(shape).astype(np.float32)
        return actions


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
