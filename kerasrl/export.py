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


@keras.saving.register_keras_serializable(package="kerasrl")
class AgentArchive:
    """What `keras.saving.load_model` finds in a kerasrl agent archive: a clear refusal.

    A kerasrl `.keras` archive is an agent (networks, optimizer state,
    memory, counters), not one Keras model; its `config.json` names this
    class so that Keras' loader ends in a `SaveError` saying what to call
    instead of a `KeyError`.
    """

    def get_config(self) -> dict:
        """Keras' registration needs it; an archive is never built from this class."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> AgentArchive:
        """Refuses: the file is an agent archive.

        Raises:
            SaveError: always, pointing at `Agent.load` and `agent.export`.
        """
        from kerasrl.errors import SaveError

        raise SaveError(
            "This .keras file is a kerasrl agent archive, not a Keras model: load it with "
            "kerasrl.Agent.load(path). For a Keras model of the policy that "
            "keras.saving.load_model reads, write one with agent.export('policy.keras')."
        )


#: Input dtypes of the exported functions, per state type.
_DTYPES = {"float": "float32", "int": "int32", "bool": "bool"}


def _input_name(name: str) -> str:
    """The input name of a (possibly nested, `a/b`) state or action name: `a.b`."""
    return name.replace("/", ".")


def _check_exportable(agent) -> None:
    if not hasattr(agent, "policy_model") or not hasattr(agent, "distributions"):
        raise ArgumentError(f"Agent '{agent.agent_type}' has no policy network to export.")
    if agent.internal_shapes():
        raise ArgumentError.invalid(
            "agent", "an agent with a feed-forward policy (exporting a recurrent policy with "
            "its internal states is not supported yet; save it with agent.save)",
            f"recurrent agent '{agent.agent_type}'")


def export(agent, path: str) -> str:
    """Writes the inference model of `agent` to `path` (a `.keras` file).

    Raises:
        ArgumentError: the agent has no policy network, or `path` does not end in `.keras`.
    """
    from kerasrl.saving import atomic_path

    _check_exportable(agent)
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ArgumentError.invalid("path", "a file name ending in '.keras'", path)
    agent._sync_weights()
    state_inputs = {}
    for name, spec in agent.states_spec.items():
        state_inputs[name] = keras.Input(shape=spec.shape, dtype=_DTYPES[spec.type],
                                         name=_input_name(name))
    mask_inputs = {}
    for name, spec in agent.actions_spec.items():
        if spec.type == "int":
            mask_inputs[name] = keras.Input(shape=spec.mask_shape(), dtype="bool",
                                            name=f"{_input_name(name)}_mask")
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


def export_saved_model(agent, path: str) -> str:
    """Writes a TensorFlow SavedModel of `agent`'s act to the directory `path`.

    As Tensorforce's `format='saved-model'`: an act-only module, loaded for
    inference without kerasrl by `tf.saved_model.load(path)`, with
    `act(states, auxiliaries, deterministic)` on batched inputs: `states` an
    array (one state) or a dict of arrays, `auxiliaries` `{'mask': ...}` for
    one action or `{action: {'mask': ...}}` (or `{}`: no masks), and
    `deterministic` a Python bool (the mode, or a sample). It returns the
    actions (an array, or a dict). The `serving_default` signature takes the
    states and the `<action>_mask` inputs by name and returns the
    deterministic actions by name.

    Only on the TensorFlow backend (a SavedModel holds TensorFlow functions).

    Raises:
        ArgumentError: the agent has no policy network.
        SaveError: another backend, or the directory could not be written.
    """
    import shutil
    import tempfile

    from kerasrl.errors import SaveError

    _check_exportable(agent)
    if keras.backend.backend() != "tensorflow":
        raise SaveError(
            "format='saved-model' writes a TensorFlow SavedModel and needs "
            f"KERAS_BACKEND=tensorflow (this is '{keras.backend.backend()}'); on this backend "
            "use agent.export('policy.keras') (a Keras model with the deterministic act) or "
            "format='keras'."
        )
    import tensorflow as tf

    agent._sync_weights()
    states_spec, actions_spec = agent.states_spec, agent.actions_spec
    state_specs = {name: tf.TensorSpec((None,) + tuple(spec.shape), _DTYPES[spec.type])
                   for name, spec in states_spec.items()}
    masked = [name for name, spec in actions_spec.items() if spec.type == "int"]
    mask_specs = {name: tf.TensorSpec((None,) + tuple(actions_spec[name].mask_shape()), tf.bool)
                  for name in masked}
    seed = keras.random.SeedGenerator(agent.config.get("seed") or 0)

    def actions_of(states: dict, masks: dict, deterministic: bool) -> dict:
        params = agent.policy_model(states)
        return {
            name: dist.mode(params[name], mask=masks.get(name)) if deterministic
            else dist.sample(params[name], seed, mask=masks.get(name))
            for name, dist in agent.distributions.items()
        }

    def act(states, auxiliaries, deterministic):
        if states_spec.singleton:
            states = {states_spec.singleton_name: states}
        if actions_spec.singleton:
            auxiliaries = {actions_spec.singleton_name: auxiliaries} if auxiliaries else {}
        masks = {name: value["mask"] for name, value in auxiliaries.items() if "mask" in value}
        actions = actions_of(states, masks, deterministic)
        return actions[actions_spec.singleton_name] if actions_spec.singleton else actions

    def serve(**inputs):
        states = {name: inputs[_input_name(name)] for name in states_spec}
        masks = {name: inputs[f"{_input_name(name)}_mask"] for name in masked}
        return {_input_name(name): value
                for name, value in actions_of(states, masks, True).items()}

    module = tf.Module()
    module.policy = agent.policy_model
    module.seed_state = seed.state
    module.act = tf.function(act)
    states_argument = (state_specs[states_spec.singleton_name] if states_spec.singleton
                       else state_specs)
    auxiliaries_arguments = [{}]
    if masked:
        auxiliaries_arguments.append(
            {"mask": mask_specs[actions_spec.singleton_name]} if actions_spec.singleton
            else {name: {"mask": spec} for name, spec in mask_specs.items()})
    for auxiliaries in auxiliaries_arguments:
        for deterministic in (True, False):
            module.act.get_concrete_function(states_argument, auxiliaries, deterministic)
    signature = {_input_name(name): spec for name, spec in state_specs.items()}
    signature.update({f"{_input_name(name)}_mask": spec for name, spec in mask_specs.items()})
    signature = {key: tf.TensorSpec(spec.shape, spec.dtype, name=key)
                 for key, spec in signature.items()}
    serving = tf.function(serve).get_concrete_function(**signature)
    path = os.path.abspath(os.fspath(path))
    os.makedirs(path, exist_ok=True)
    # Written beside, then moved in entry by entry: other files of the
    # directory stay, and a failed export leaves the previous one whole.
    temporary = tempfile.mkdtemp(dir=path, prefix=".tmp-saved-model-")
    try:
        tf.saved_model.save(module, temporary, signatures={"serving_default": serving})
        for entry in sorted(os.listdir(temporary), key=lambda e: e == "saved_model.pb"):
            target = os.path.join(path, entry)
            if os.path.isdir(target):
                shutil.rmtree(target)
            os.replace(os.path.join(temporary, entry), target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return path
