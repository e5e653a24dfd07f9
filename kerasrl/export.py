"""Inference export: a plain `.keras` model from states (and masks) to actions.

`agent.export('policy.keras')` writes a Keras model whose inputs are the
states (named after them) plus one boolean `<action>_mask` input per int
action, and whose output is the deterministic action (a dict for several
actions). It contains the policy network and a `DeterministicActions` layer
(argmax over allowed values / distribution mean), both registered Keras
serializables, so

```python
import kerasrl, keras
model = keras.saving.load_model('policy.keras')
actions = model.predict(...)  # or model(inputs)
```

works in any process that imported `kerasrl`, on any backend.
"""

from __future__ import annotations

import os
from typing import Any

import keras

from kerasrl.errors import ArgumentError
from kerasrl.specs import ValueSpec


@keras.saving.register_keras_serializable(package="kerasrl")
class DeterministicActions(keras.layers.Layer):
    """Maps distribution parameters (and masks) to deterministic actions.

    Args:
        actions: `{name: action spec dict}`.
        distributions: `{name: distribution config}` (from `get_config()`).
    """

    def __init__(self, actions: dict, distributions: dict, **kwargs: Any):
        super().__init__(**kwargs)
        from kerasrl import distributions as kdistributions

        self.actions = {name: dict(spec) for name, spec in actions.items()}
        self.distribution_configs = {name: dict(config) for name, config in distributions.items()}
        self._distributions = {
            name: kdistributions.create(
                ValueSpec(name=name, **self.actions[name]), self.distribution_configs[name],
                name=name.replace("/", "_"),
            )
            for name in self.actions
        }

    def call(self, params: dict, masks: dict) -> dict:
        return {
            name: dist.mode(params[name], mask=masks.get(name))
            for name, dist in self._distributions.items()
        }

    @classmethod
    def from_config(cls, config: dict) -> DeterministicActions:
        """Rebuilds the layer from a saved config, in safe mode."""
        from kerasrl.layers.base import from_saved_config

        return from_saved_config(cls, config)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(actions=self.actions, distributions=self.distribution_configs)
        return config


def export(agent, path: str) -> str:
    """Writes the inference model of `agent` to `path` (a `.keras` file).

    Raises:
        ArgumentError: the agent has no policy network, or `path` does not end in `.keras`.
    """
    from kerasrl.saving import atomic_path

    if not hasattr(agent, "policy_model") or not hasattr(agent, "distributions"):
        raise ArgumentError(f"Agent '{agent.agent_type}' has no policy network to export.")
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ArgumentError.invalid("path", "a file name ending in '.keras'", path)
    agent._sync_weights()
    state_inputs = {}
    for name, spec in agent.states_spec.items():
        dtype = {"float": "float32", "int": "int32", "bool": "bool"}[spec.type]
        state_inputs[name] = keras.Input(shape=spec.shape, dtype=dtype, name=name.replace("/", "."))
    mask_inputs = {}
    for name, spec in agent.actions_spec.items():
        if spec.type == "int":
            mask_inputs[name] = keras.Input(shape=spec.mask_shape(), dtype="bool",
                                            name=f"{name.replace('/', '.')}_mask")
    params = agent.policy_model(state_inputs)
    layer = DeterministicActions(
        actions={name: spec.get_config() for name, spec in agent.actions_spec.items()},
        distributions={name: dist.get_config() for name, dist in agent.distributions.items()},
        name="deterministic_actions",
    )
    actions = layer(params, mask_inputs)
    if agent.actions_spec.singleton:
        actions = actions[agent.actions_spec.singleton_name]
    inputs = {**state_inputs, **{f"{k}_mask": v for k, v in mask_inputs.items()}}
    model = keras.Model(inputs, actions, name="policy_inference")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with atomic_path(path) as temporary:
        keras_path = temporary + ".keras"
        model.save(keras_path)
        os.replace(keras_path, temporary)
    return path
