"""Networks: Tensorforce-style network specs → one functional `keras.Model`.

`NetworkBuilder.build(spec, states, name, preprocessing)` returns a functional
model that maps the raw states to one rank-1 embedding per sample:

- **Inputs**: a dict `{state_name: keras.Input}` in `states` order, keyed by
  the flattened state names (`'state'` for a singleton). Call the model with
  a dict keyed the same way, `model({'observation': x, 'attributes': y})`, or
  `model.stateless_call(trainable, non_trainable, inputs_dict)`. Keras
  forbids `/` in names, so the `Input` of a nested state `'a/b'` is named
  `'a.b'` (the dict key stays `'a/b'`). Dtypes: float → `float32`,
  int → `int32` (int64 arrays are accepted and converted), bool → `bool`.
  `model.inputs` (a flat list) follows Keras' sorted-key order; use the dict.
- **Output**: one float tensor `(batch, d)`. A higher-rank result is
  flattened (a layer `<name>_flatten_output`), an int/bool result is cast to
  float32 (`<name>_cast_output`).
- **Preprocessing** (Tensorforce `state_preprocessing`) comes first inside
  the model. The default `'linear_normalization'` clips float states with
  finite bounds to `[min_value, max_value]` and maps them onto [-2, 2]; other
  states are left alone. A layer spec or list applies to every state; a dict
  keyed by state names applies per state (value None: none). A builder keeps
  the preprocessing layers of each state and shares them between the networks
  it builds (Tensorforce preprocesses once per agent), so stateful layers
  such as `exponential_normalization` keep one set of moving moments.

Network specs: `'auto'` or `dict(type='auto', size=64, depth=2,
final_size=None, final_depth=1, rnn=False)`; a list of layer specs (one
sequential stack); a list of lists of layer specs (stacks connected through
`register` / `retrieve`); `dict(type='layered', layers=...)`;
`dict(type='keras', model=..., **kwargs)`; a `keras.Model` instance, subclass
or zero-argument factory; or the path of a JSON file holding one of these.
With several states a Keras model is called on the list of (preprocessed)
state tensors in `states` order, as in Tensorforce; with one state on that
tensor. A Keras model instance becomes a layer of the network, so giving the
same instance to two networks shares its weights.

Training mode: `dropout` and `exponential_normalization` act only when the
model is called with `training=True` (the latter then updates its moving
moments, which `stateless_call` returns among the non-trainable variables).

Inside a layer list, a layer is a spec dict, a type string (`'flatten'`), a
`keras.layers.Layer` instance or subclass, a callable (a `function` layer) or
a string expression in `x` such as `'ops.tanh(x) * 2.0'` (also a `function`
layer).

Layer names: `<name>_<local>`, where `<name>` is the `name` argument (with
`/` and `.` replaced by `_`) and `<local>` is, in order of preference, the
layer spec's `name`, or `<type><n>` with `n` counting the layers of that type
in the network (`dense0`, `dense1`, `conv2d0`, ...). The auto network names
its layers like Tensorforce: for a single state `dense0`, `dense1`; for
several states `<state>_dense0`, ..., `<state>_embedding`, `<state>_pooling`
and the final `dense0` (with `/` and `.` in state names replaced by `_`). So Tensorforce's `policy/network/dense0/weights` is
the `kernel` of layer `policy_network_dense0` of the model built with
`name='policy_network'` (and `bias` is `bias`). Preprocessing layers are named
`preprocessing_<state>_<type><n>`.

Sharing: a layer spec with a `name`, or a `dict(type='block', name=...,
layers=[...])`, can be applied again with `dict(type='reuse', layer=name)`,
in the same network or in any later network of the same builder; the same
Keras layer objects are called again, so the weights are shared. `reuse`
also accepts the full Keras name of any layer the builder created (for
example `'policy_network_dense0'`).

Example:

>>> from kerasrl.networks import NetworkBuilder
>>> builder = NetworkBuilder()
>>> states = dict(type='float', shape=(4,), min_value=-1.0, max_value=1.0)
>>> model = builder.build('auto', states, name='policy_network')
>>> tuple(model({'state': np.zeros((2, 4), 'float32')}).shape)
(2, 64)
"""

from __future__ import annotations

import inspect
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np

from kerasrl.errors import ArgumentError, KerasRLError, UnknownTypeError
from kerasrl.layers import (
    LAYERS,
    STRUCTURAL_TYPES,
    UNSUPPORTED_TYPES,
    Cast,
    Clipping,
    Flatten,
    Image,
    Reshape,
    Retrieve,
)
from kerasrl.layers import base as layer_base
from kerasrl.layers.misc import compile_expression
from kerasrl.layers.recurrent import Rnn
from kerasrl.registry import (
    check_file_content,
    import_object,
    is_import_path,
    is_json_path,
    load_json,
    lookup,
    resolve,
)
from kerasrl.specs import Specs, ValueSpec

NETWORK_TYPES = ("auto", "custom", "keras", "layered")
#: Prefix of the input keys of a network's internal states (`'<internals>/<layer name>'`).
INTERNALS = "<internals>"
LAYER_TYPES = tuple(sorted({*LAYERS, *STRUCTURAL_TYPES}))
_INPUT_DTYPES = {"float": "float32", "int": "int32", "bool": "bool"}
_AUTO_ARGUMENTS = ("size", "depth", "final_size", "final_depth", "rnn", "l2_regularization")
_IGNORED_ARGUMENTS = ("device", "name", "inputs_spec", "summary_labels")
_SHAPE_LAYERS = (Flatten, Reshape)
_VALUE_LAYERS = (Clipping, keras.layers.Dropout)


# --------------------------------------------------------------------------- helpers


def layer_name(text: str) -> str:
    """Turns text into a valid Keras layer name on every backend (no `/` or `.`)."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", str(text))


def input_name(state_name: str) -> str:
    """The `keras.Input` name of a (flattened) state: `'a/b'` → `'a.b'`."""
    return state_name.replace("/", ".")


@dataclass(frozen=True)
class _Info:
    """What the builder knows about the values of a tensor (for embedding, normalization)."""

    type: str = "float"
    num_values: int | None = None
    min_value: Any = None
    max_value: Any = None

    @classmethod
    def of_spec(cls, spec: ValueSpec) -> _Info:
        bounds = [
            None if b is None else np.broadcast_to(np.asarray(b, np.float64), spec.shape)
            for b in (spec.min_value, spec.max_value)
        ]
        return cls(spec.type, spec.num_values, *bounds)

    @classmethod
    def of_tensor(cls, tensor: Any) -> _Info:
        dtype = keras.backend.standardize_dtype(tensor.dtype)
        return cls("bool" if dtype == "bool" else "int" if "int" in dtype else "float")

    def reshaped(self, shape: tuple) -> _Info:
        bounds = []
        for bound in (self.min_value, self.max_value):
            if bound is not None and None not in shape and bound.size == math.prod(shape):
                bounds.append(bound.reshape(shape))
            else:
                bounds.append(None)
        return replace(self, min_value=bounds[0], max_value=bounds[1])


@dataclass(frozen=True)
class _Tensor:
    tensor: Any
    info: _Info


class _Names:
    """Generates unique Keras layer names `<prefix>_<local>` within one model."""

    def __init__(self, prefix: str, used: set[str]):
        self.prefix = prefix
        self.used = used
        self.counters: dict[str, int] = {}

    def next_local(self, type_label: str) -> str:
        count = self.counters.get(type_label, 0)
        self.counters[type_label] = count + 1
        return f"{type_label}{count}"

    def unique(self, local: str) -> str:
        candidate = base_name = layer_name(f"{self.prefix}_{local}")
        index = 1
        while candidate in self.used:
            candidate = f"{base_name}_{index}"
            index += 1
        self.used.add(candidate)
        return candidate


class _Build:
    """State of one `NetworkBuilder.build` call."""

    def __init__(self, name: str, state_names: list[str], used: set[str]):
        self.name = name
        self.state_names = state_names
        self.names = _Names(name, used)
        self.tensors: dict[str, _Tensor] = {}
        self.preprocessing = False
        #: Per recurrent layer call: `(internal input, next internal state)`.
        self.internals: dict[str, tuple[Any, Any]] = {}


def _type_key(spec: Any) -> str | None:
    if isinstance(spec, Mapping) and isinstance(spec.get("type"), str):
        return spec["type"].lower()
    if isinstance(spec, str) and not is_json_path(spec):
        return spec.lower()
    return None


def _as_stacks(layers: Any) -> list[list]:
    """A list of layer specs → one stack; a list of lists → several stacks."""
    if not isinstance(layers, (list, tuple)):
        raise ArgumentError.invalid(
            "layers", "a list of layer specs or a list of lists of layer specs", layers
        )
    nested = [isinstance(item, (list, tuple)) for item in layers]
    if layers and all(nested):
        return [list(stack) for stack in layers]
    if any(nested):
        raise ArgumentError.invalid(
            "layers", "either a list of layer specs or a list of lists (not mixed)", layers
        )
    return [list(layers)]


def _takes_arguments(function: Any) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for p in parameters
    )


def _read_json(path: str, argument: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, json.JSONDecodeError) as exc:
        raise ArgumentError.invalid(argument, "a readable JSON file", f"{path}: {exc}") from None
    return check_file_content(value, f"file '{path}'", argument)


def _instantiate_model(model: Any, kwargs: dict) -> keras.Model:
    """A `keras.Model` from an instance, a subclass (called with kwargs) or a factory."""
    if isinstance(model, str):
        imported = import_object(model, keras.Model, "model")
        if imported is None:
            raise ArgumentError.invalid(
                "model", "a keras.Model, a subclass, a factory or an import path", model,
                "network 'keras'",
            )
        model = imported
    if isinstance(model, keras.Model):
        if kwargs:
            raise ArgumentError.invalid(
                "model", "a keras.Model class or factory when arguments are given "
                f"({sorted(kwargs)})", model, "network 'keras'",
            )
        return model
    if not callable(model):
        raise ArgumentError.invalid(
            "model", "a keras.Model, a subclass or a factory", model, "network 'keras'"
        )
    try:
        result = model(**kwargs)
    except TypeError as exc:
        raise ArgumentError(f"Invalid arguments for the Keras model {model!r}: {exc}.") from None
    if not isinstance(result, keras.Model):
        raise ArgumentError.invalid(
            "model", "a factory returning a keras.Model", result, "network 'keras'"
        )
    return result


# --------------------------------------------------------------------------- builder


class NetworkBuilder:
    """Builds functional Keras models from network specs, sharing named layers.

    One builder is meant per agent: layers and blocks given a `name` in one
    network can be reused (with shared weights) by later networks of the same
    builder, for example a baseline reusing the policy's layers, and the
    per-state preprocessing layers are shared by all its networks. See the
    module docstring for the spec forms, naming and input conventions.

    Example:

    >>> builder = NetworkBuilder()
    >>> states = dict(type='float', shape=(8,))
    >>> policy = builder.build(
    ...     [dict(type='dense', size=16, name='shared'), dict(type='dense', size=16)],
    ...     states, name='policy_network')
    >>> baseline = builder.build(
    ...     [dict(type='reuse', layer='shared')], states, name='baseline_network')
    >>> policy.get_layer('policy_network_shared') is baseline.layers[1]
    True
    """

    def __init__(self):
        self._named: dict[str, list[keras.layers.Layer]] = {}
        self._by_keras_name: dict[str, keras.layers.Layer] = {}
        self._preprocessing: dict[tuple, list[keras.layers.Layer]] = {}
        self._preprocessing_names: set[str] = set()

    @property
    def named_layers(self) -> dict[str, list[keras.layers.Layer]]:
        """The layers and blocks defined with a `name`, by name (a copy)."""
        return {name: list(layers) for name, layers in self._named.items()}

    # ------------------------------------------------------------------ public
    def build(
        self,
        spec: Any,
        states: Any,
        name: str = "policy_network",
        preprocessing: Any = "linear_normalization",
        recurrent: bool = False,
    ) -> keras.Model:
        """Builds one functional network model.

        Args:
            spec: The network spec (see the module docstring).
            states: The state specs: a `kerasrl.specs.Specs` or a spec dict.
            name: Model name and layer-name prefix (`/` and `.` become `_`).
            preprocessing: Tensorforce's `state_preprocessing`:
                `'linear_normalization'` (default; only float states with
                finite bounds), None, a layer spec or list of layer specs for
                every state, or a dict keyed by state name.
            recurrent: Whether recurrent layers are allowed (the agent carries
                their internal states); else they raise an `ArgumentError`.

        Returns:
            A functional `keras.Model` with a dict of named inputs and one
            `(batch, d)` float output. With recurrent layers (`rnn`, `lstm`,
            `gru`) the inputs also hold one internal state per layer call,
            keyed `'<internals>/<layer name>'` (see `network_internals`), and
            the outputs are `[embedding, *next internal states]`.

        Raises:
            ArgumentError: for invalid specs, arguments or unknown names.
            UnknownTypeError: for an unknown network or layer type.
            SpecError: for invalid state specs.
        """
        states = states if isinstance(states, Specs) else Specs(states, "states")
        if not isinstance(name, str) or not name:
            raise ArgumentError.invalid("name", "a non-empty string", name, "network")
        name = layer_name(name)
        used: set[str] = set()
        inputs = {}
        for state_name, state_spec in states.items():
            candidate = input_name(state_name)
            while candidate in used:
                candidate += "_"
            used.add(candidate)
            inputs[state_name] = keras.Input(
                shape=state_spec.shape, dtype=_INPUT_DTYPES[state_spec.type], name=candidate
            )
        build = _Build(name, list(states), used)
        self._preprocess(states, inputs, preprocessing, build)

        kind, payload = self._network_form(spec)
        if kind == "auto":
            kind, payload = "layered", self._auto_stacks(states, payload)
        if kind == "keras":
            output = self._apply_keras_model(payload, build)
        else:
            output = self._run_stacks(payload, build)
        output = self._finalize(output, build)
        if build.internals:
            # A recurrent network: the internal states are inputs too, and the
            # outputs are [embedding, *next internal states] in the same order.
            inputs.update({internal_key(key): pair[0] for key, pair in build.internals.items()})
            output = [output, *(pair[1] for pair in build.internals.values())]
        if build.internals and not recurrent:
            raise ArgumentError.invalid(
                "network", "layers without internal state for this agent (recurrent layers "
                "rnn/lstm/gru and auto rnn=... work with the on-policy agents: ppo, vpg, ac, "
                "a2c, trpo and their tensorforce compositions)",
                f"recurrent layers {sorted(build.internals)}", f"network '{name}'")
        return functional_model(inputs, output, name)

    # ------------------------------------------------------------------ spec forms
    def _network_form(self, spec: Any) -> tuple[str, Any]:
        """Classifies a network spec as ('auto', kwargs), ('layered', stacks) or ('keras', model)."""
        if isinstance(spec, keras.Model):
            return "keras", spec
        if isinstance(spec, keras.layers.Layer):
            return "layered", [[spec]]
        if isinstance(spec, type):
            if issubclass(spec, keras.Model):
                return "keras", _instantiate_model(spec, {})
            if issubclass(spec, keras.layers.Layer):
                return "layered", [[spec]]
            raise ArgumentError.invalid(
                "network", "a keras.Model or keras.layers.Layer subclass", spec
            )
        if isinstance(spec, str):
            key = spec.lower()
            if key == "auto":
                return "auto", {}
            if is_json_path(spec):
                return self._network_form(_read_json(spec, "network"))
            if key in LAYERS or key in STRUCTURAL_TYPES or key in UNSUPPORTED_TYPES:
                return "layered", [[spec]]
            imported = import_object(spec, (keras.Model, keras.layers.Layer), "network")
            if imported is not None:
                return self._network_form(imported)
            raise UnknownTypeError.invalid(
                "network", f"one of {list(NETWORK_TYPES)}, a layer type, a JSON file or an "
                "import path", spec,
            )
        if isinstance(spec, Mapping):
            return self._dict_form(dict(spec))
        if isinstance(spec, (list, tuple)):
            return "layered", _as_stacks(spec)
        if callable(spec):
            if _takes_arguments(spec):
                return "layered", [[spec]]
            return "keras", _instantiate_model(spec, {})
        raise ArgumentError.invalid(
            "network", "'auto', a layer list, a dict spec, a keras.Model or a JSON file", spec
        )

    def _dict_form(self, spec: dict) -> tuple[str, Any]:
        type_ = spec.pop("type", None)
        if type_ is None:
            if "layers" not in spec:
                raise ArgumentError.invalid(
                    "network", f"a dict with a 'type' among {list(NETWORK_TYPES)} or 'layers'",
                    spec,
                )
            type_ = "layered"
        if isinstance(type_, str) and is_json_path(type_):
            loaded = _read_json(type_, "network type")
            if not isinstance(loaded, Mapping):
                raise ArgumentError.invalid("network type", "a JSON file with a dict", type_)
            return self._dict_form({**loaded, **spec})
        if not isinstance(type_, str):
            is_class = isinstance(type_, type)
            if is_class and issubclass(type_, keras.layers.Layer) and not (
                issubclass(type_, keras.Model)
            ):
                return "layered", [[{"type": type_, **spec}]]
            if isinstance(type_, keras.Model) or callable(type_):
                return "keras", _instantiate_model(type_, spec)
            raise ArgumentError.invalid("network type", "a string or a class", type_)
        key = type_.lower()
        for ignored in _IGNORED_ARGUMENTS:
            if ignored in spec and key in NETWORK_TYPES:
                if ignored == "device":
                    warnings.warn("The network argument 'device' is ignored by kerasrl.")
                spec.pop(ignored)
        if key == "auto":
            return "auto", spec
        if key in ("layered", "custom"):
            if "layers" not in spec:
                raise ArgumentError(
                    f"Missing argument 'layers' of network '{type_}': expected a list of layer "
                    "specs or a list of lists."
                )
            layers = spec.pop("layers")
            if spec:
                raise ArgumentError.invalid(
                    "network arguments", "only 'layers' for a layered network", sorted(spec)
                )
            return "layered", _as_stacks(layers)
        if key == "keras":
            if "model" in spec:
                return "keras", _instantiate_model(spec.pop("model"), spec)
            if "layer" in spec:
                return "layered", [[{"type": "keras", **spec}]]
            raise ArgumentError(
                "Missing argument 'model' of network 'keras': expected a keras.Model instance, "
                "subclass or factory."
            )
        if key in LAYERS or key in STRUCTURAL_TYPES or key in UNSUPPORTED_TYPES:
            return "layered", [[{"type": type_, **spec}]]
        imported = import_object(type_, (keras.Model, keras.layers.Layer), "network type")
        if imported is not None:
            return self._dict_form({"type": imported, **spec})
        raise UnknownTypeError.invalid(
            "network type", f"one of {list(NETWORK_TYPES)} or a layer type", type_
        )

    # ------------------------------------------------------------------ auto
    def _auto_stacks(self, states: Specs, arguments: dict) -> list[list]:
        """The layer stacks of Tensorforce's auto network for these states."""
        unknown = sorted(set(arguments) - set(_AUTO_ARGUMENTS))
        if unknown:
            raise ArgumentError.invalid(
                "auto network arguments", f"arguments among {list(_AUTO_ARGUMENTS)}", unknown
            )
        where = "network 'auto'"
        size = layer_base.check_int(arguments.get("size", 64), "size", where, minimum=1)
        depth = layer_base.check_int(arguments.get("depth", 2), "depth", where, minimum=1)
        final_size = arguments.get("final_size")
        final_depth = arguments.get("final_depth", 1)
        rnn = arguments.get("rnn", False)
        l2 = layer_base.check_float(
            arguments.get("l2_regularization", 0.0), "l2_regularization", where, 0.0
        )
        if rnn is not False and rnn is not None:
            rnn = layer_base.check_int(rnn, "rnn", where, minimum=1)
        else:
            rnn = None
        single = len(states) == 1
        if single and (final_size is not None or final_depth != 1):
            raise ArgumentError.invalid(
                "final_size/final_depth", "the defaults (None/1) for a single state",
                (final_size, final_depth), where,
            )
        final_size = size if final_size is None else layer_base.check_int(
            final_size, "final_size", where, minimum=1
        )
        final_depth = layer_base.check_int(final_depth, "final_depth", where, minimum=1)
        if len(states) > 8:
            warnings.warn(
                f"The auto network has {len(states)} state components (more than 8); consider "
                "a custom network."
            )
        extra = {"l2_regularization": l2} if l2 else {}
        stacks = []
        for state_name, spec in states.items():
            prefix = "" if single else f"{layer_name(state_name)}_"
            layers: list[Any] = [dict(type="retrieve", tensors=[state_name])]
            embedded = spec.type in ("int", "bool")
            if embedded:
                layers.append(
                    dict(type="embedding", size=size, _local_name=f"{prefix}embedding", **extra)
                )
            rank = spec.rank + int(embedded)
            if rank == 0:
                layers.append(dict(type="flatten", _local_name=f"{prefix}flatten"))
                rank = 1
            kinds = {1: "dense", 2: "conv1d", 3: "conv2d"}
            if rank not in kinds:
                raise ArgumentError.invalid(
                    f"states['{state_name}'] shape", "rank <= 3 for the auto network",
                    spec.shape, where,
                )
            kind = kinds[rank]
            for n in range(depth - int(embedded)):
                layers.append(dict(type=kind, size=size, _local_name=f"{prefix}{kind}{n}", **extra))
            if rank > 1:
                layers.append(dict(type="pooling", reduction="max", _local_name=f"{prefix}pooling"))
            layers.append(dict(type="register", tensor=f"{state_name}-embedding"))
            stacks.append(layers)
        final: list[Any] = [
            dict(type="retrieve", tensors=[f"{n}-embedding" for n in states], aggregation="concat")
        ]
        if not single:
            for n in range(final_depth):
                final.append(dict(type="dense", size=final_size, _local_name=f"dense{n}", **extra))
        if rnn is not None:  # Tensorforce: an LSTM of the final size as the last layer
            final.append(dict(type="lstm", size=final_size, horizon=rnn, _local_name="lstm"))
        stacks.append(final)
        return stacks

    # ------------------------------------------------------------------ preprocessing
    def _preprocessing_specs(self, preprocessing: Any, states: Specs) -> dict[str, list | None]:
        """Per state, the list of preprocessing layer specs (or None)."""
        if preprocessing is None:
            return {name: None for name in states}
        if isinstance(preprocessing, str) and preprocessing.lower() == "linear_normalization":
            return {
                name: [dict(type="linear_normalization")] if spec.is_bounded() else None
                for name, spec in states.items()
            }

        def as_list(value: Any) -> list | None:
            if value is None:
                return None
            return list(value) if isinstance(value, (list, tuple)) else [value]

        if isinstance(preprocessing, Mapping) and "type" not in preprocessing:
            unknown = sorted(set(preprocessing) - set(states))
            if unknown:
                raise ArgumentError.invalid(
                    "preprocessing", f"a layer spec, or a dict keyed by state names among "
                    f"{list(states)}", unknown,
                )
            return {name: as_list(preprocessing.get(name)) for name in states}
        layers = as_list(preprocessing)
        return {name: layers for name in states}

    def _preprocess(
        self, states: Specs, inputs: dict, preprocessing: Any, build: _Build
    ) -> None:
        specs = self._preprocessing_specs(preprocessing, states)
        for state_name, state_spec in states.items():
            current = _Tensor(inputs[state_name], _Info.of_spec(state_spec))
            layers = specs[state_name]
            if layers:
                key = (
                    state_name,
                    json.dumps(state_spec.get_config(), sort_keys=True),
                    json.dumps(layers, sort_keys=True, default=repr),
                )
                step = _Build(
                    f"preprocessing_{layer_name(state_name)}", build.state_names,
                    self._preprocessing_names,
                )
                step.preprocessing = True
                try:
                    if key in self._preprocessing:
                        for layer in self._preprocessing[key]:
                            current = self._call(layer, current, step)
                    else:
                        created: list = []
                        for spec in layers:
                            current = self._apply(spec, current, step, created)
                        self._preprocessing[key] = created
                except KerasRLError as exc:
                    raise type(exc)(f"{exc} (preprocessing of state '{state_name}')") from None
                except (TypeError, ValueError) as exc:
                    raise ArgumentError(
                        f"Preprocessing of state '{state_name}' failed: {exc}"
                    ) from None
                build.names.used.update(layer.name for layer in self._preprocessing[key])
            build.tensors[state_name] = current

    # ------------------------------------------------------------------ layered
    def _run_stacks(self, stacks: list[list], build: _Build) -> _Tensor:
        single = len(build.state_names) == 1
        output = None
        for i, stack in enumerate(stacks):
            current = build.tensors[build.state_names[0]] if single and i == 0 else None
            if current is None and (not stack or _type_key(stack[0]) != "retrieve"):
                first = stack[0] if stack else None
                raise ArgumentError(
                    f"Invalid stack {i} of network '{build.name}': expected it to start with "
                    "dict(type='retrieve', tensors=[...]) (needed for every stack "
                    f"{'after the first' if single else 'with several states'}), received "
                    f"{first!r} first. Available tensors: {sorted(build.tensors)}."
                )
            for j, spec in enumerate(stack):
                try:
                    current = self._apply(spec, current, build)
                except KerasRLError as exc:
                    raise type(exc)(
                        f"{exc} (network '{build.name}', stack {i}, layer {j})"
                    ) from None
                except (TypeError, ValueError) as exc:
                    raise ArgumentError(
                        f"Layer {j} of stack {i} of network '{build.name}' ({spec!r}) could not "
                        f"be applied: {exc}"
                    ) from None
            output = current
        if output is None:
            raise ArgumentError.invalid(
                "network", "at least one layer stack with several states", stacks, build.name
            )
        return output

    def _apply(
        self, spec: Any, current: _Tensor | None, build: _Build, created: list | None = None
    ) -> _Tensor:
        """Applies one layer spec to `current`, recording new or reused layers in `created`."""
        spec = self._normalize_layer_spec(spec)
        created = [] if created is None else created
        if isinstance(spec, keras.layers.Layer):
            self._by_keras_name[spec.name] = spec
            build.names.used.add(spec.name)
            created.append(spec)
            return self._call(spec, self._need_input(current, spec.name), build)
        key = _type_key(spec)
        if key in STRUCTURAL_TYPES and build.preprocessing:
            raise ArgumentError.invalid(
                "layer type", "a layer type usable in preprocessing (not register, retrieve, "
                "block or reuse)", spec["type"], "preprocessing",
            )
        if key == "retrieve":
            return self._retrieve(spec, build)
        if key == "register":
            return self._register(spec, self._need_input(current, "register"), build)
        if key == "block":
            return self._block(spec, self._need_input(current, "block"), build, created)
        if key == "reuse":
            return self._reuse(spec, self._need_input(current, "reuse"), build, created)
        if key in UNSUPPORTED_TYPES:
            raise ArgumentError.invalid(
                "layer type", f"a supported layer type (Tensorforce's '{key}' layer is not "
                "supported yet)", spec["type"],
            )
        current = self._need_input(current, str(spec.get("type")))
        layer = self._create_layer(spec, key, current.info, build)
        created.append(layer)
        return self._call(layer, current, build)

    @staticmethod
    def _need_input(current: _Tensor | None, what: str) -> _Tensor:
        if current is None:
            raise ArgumentError(
                f"Layer '{what}' has no input: start the stack with dict(type='retrieve', "
                "tensors=[...])."
            )
        return current

    @staticmethod
    def _normalize_layer_spec(spec: Any) -> Any:
        if isinstance(spec, keras.layers.Layer):
            return spec
        if isinstance(spec, str):
            if is_json_path(spec):
                return NetworkBuilder._normalize_layer_spec(load_json(spec, "layer"))
            known = spec.lower() in LAYER_TYPES or spec.lower() in UNSUPPORTED_TYPES
            if not known and not is_import_path(spec) and lookup(spec) is None:
                try:  # a bare expression in x is a function layer
                    compile_expression(spec)
                    return {"type": "function", "function": spec}
                except ArgumentError:
                    pass
            return {"type": spec}
        if isinstance(spec, type):
            if issubclass(spec, keras.layers.Layer):
                return {"type": spec}
            raise ArgumentError.invalid("layer", "a keras.layers.Layer subclass", spec)
        if isinstance(spec, Mapping):
            spec = dict(spec)
            type_ = spec.get("type")
            if type_ is None:
                if "function" not in spec:
                    raise ArgumentError.invalid(
                        "layer spec", f"a dict with a 'type' among {list(LAYER_TYPES)}", spec
                    )
                spec["type"] = "function"
            elif isinstance(type_, str) and is_json_path(type_):
                spec.pop("type")
                return NetworkBuilder._normalize_layer_spec({**load_json(type_, "layer"), **spec})
            return spec
        if callable(spec):
            return {"type": "function", "function": spec}
        raise ArgumentError.invalid(
            "layer spec", "a dict with 'type', a type string, a Keras layer or a callable", spec
        )

    def _create_layer(self, spec: dict, key: str | None, info: _Info, build: _Build) -> Any:
        spec = dict(spec)
        user_name = spec.pop("name", None)
        local_name = spec.pop("_local_name", None)
        type_ = spec["type"]
        if key is not None and key not in LAYERS and import_object(
                type_, keras.layers.Layer, "layer type") is None:
            raise UnknownTypeError.invalid(
                "layer type", f"one of {list(LAYER_TYPES)} or an import path", type_
            )
        if user_name is not None:
            self._check_new_name(user_name)
        if key is not None:
            label = key.rsplit(".", 1)[-1]
        else:
            label = getattr(type_, "__name__", "layer").lower()
        keras_name = build.names.unique(user_name or local_name or build.names.next_local(label))
        if key == "embedding" and spec.get("num_embeddings") is None:
            if info.type == "bool":
                spec["num_embeddings"] = 2
            elif info.type == "int" and info.num_values is not None:
                spec["num_embeddings"] = info.num_values
        if key == "linear_normalization":
            if spec.get("min_value") is None and info.min_value is not None:
                spec["min_value"] = info.min_value
            if spec.get("max_value") is None and info.max_value is not None:
                spec["max_value"] = info.max_value
        layer = resolve(spec, LAYERS, "layer", base_class=keras.layers.Layer, name=keras_name)
        if not isinstance(layer, keras.layers.Layer):
            raise ArgumentError.invalid(
                "layer spec", "a spec that creates a keras.layers.Layer", spec
            )
        if user_name is not None:
            self._named[user_name] = [layer]
        self._by_keras_name[layer.name] = layer
        return layer

    def _check_new_name(self, name: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ArgumentError.invalid("name", "a non-empty string", name, "layer")
        if name in self._named:
            raise ArgumentError.invalid(
                "name", f"a layer name not defined yet (use dict(type='reuse', layer='{name}') "
                "to apply the existing one again)", name,
            )

    def _call(self, layer: keras.layers.Layer, current: _Tensor, build: _Build) -> _Tensor:
        if isinstance(layer, Rnn):
            return self._call_recurrent(layer, current, build)
        output = layer(current.tensor)
        if isinstance(output, (list, tuple)) and len(output) == 1:
            output = output[0]
        if not hasattr(output, "shape") or not hasattr(output, "dtype"):
            raise ArgumentError.invalid(
                "layer output", "a single tensor", output, f"layer '{layer.name}'"
            )
        info = _Info.of_tensor(output)
        if info.type == current.info.type:
            if isinstance(layer, _SHAPE_LAYERS):
                info = current.info.reshaped(tuple(output.shape[1:]))
            elif isinstance(layer, _VALUE_LAYERS):
                info = current.info
            elif isinstance(layer, Image) and current.info.min_value is not None and \
                    current.info.max_value is not None:
                low, high = layer.output_bounds(current.info.min_value, current.info.max_value,
                                                tuple(output.shape[1:]))
                info = replace(current.info, min_value=low, max_value=high)
        return _Tensor(output, info)

    @staticmethod
    def _call_recurrent(layer: Rnn, current: _Tensor, build: _Build) -> _Tensor:
        """Applies a temporal layer: its internal state becomes an input and an output."""
        if build.preprocessing:
            raise ArgumentError.invalid(
                "layer type", "a layer without internal state in preprocessing (not rnn, lstm "
                "or gru)", layer.cell_type, "preprocessing",
            )
        key, index = layer.name, 1
        while key in build.internals:  # the same layer applied again
            key, index = f"{layer.name}_{index}", index + 1
        state = keras.Input(shape=layer.internal_shape, dtype="float32",
                            name=layer_name(f"internals_{key}"))
        output, next_state = layer([current.tensor, state])
        build.internals[key] = (state, next_state)
        return _Tensor(output, _Info.of_tensor(output))

    # ------------------------------------------------------------------ structural layers
    def _register(self, spec: dict, current: _Tensor, build: _Build) -> _Tensor:
        _check_keys(spec, ("type", "tensor", "name"), "register")
        tensor = spec.get("tensor")
        if not isinstance(tensor, str) or not tensor:
            raise ArgumentError.invalid("tensor", "a non-empty string", tensor, "layer 'register'")
        if tensor in build.tensors:
            raise ArgumentError.invalid(
                "tensor", f"a name not registered yet (registered: {sorted(build.tensors)})",
                tensor, "layer 'register'",
            )
        build.tensors[tensor] = current
        return current

    def _retrieve(self, spec: dict, build: _Build) -> _Tensor:
        _check_keys(spec, ("type", "tensors", "aggregation", "axis", "name"), "retrieve")
        names = spec.get("tensors")
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, (list, tuple)) or not names or not all(
            isinstance(n, str) for n in names
        ):
            raise ArgumentError.invalid(
                "tensors", "a name or a non-empty list of names", names, "layer 'retrieve'"
            )
        unknown = [n for n in names if n not in build.tensors]
        if unknown:
            raise ArgumentError.invalid(
                "tensors", f"states or registered tensors among {sorted(build.tensors)}",
                unknown if len(unknown) > 1 else unknown[0], "layer 'retrieve'",
            )
        arguments = dict(aggregation=spec.get("aggregation", "concat"), axis=spec.get("axis", 0))
        Retrieve(**arguments)  # validates the arguments also for a single tensor
        items = [build.tensors[n] for n in names]
        if len(items) == 1:
            return items[0]
        local = spec.get("name") or build.names.next_local("retrieve")
        layer = Retrieve(tensors=list(names), name=build.names.unique(local), **arguments)
        output = layer([item.tensor for item in items])
        info = _Info.of_tensor(output)
        kinds = {item.info.type for item in items}
        if layer.aggregation in ("concat", "stack") and kinds <= {"int", "bool"}:
            counts = [2 if i.info.type == "bool" else i.info.num_values for i in items]
            info = _Info("int", None if None in counts else max(counts))
        return _Tensor(output, info)

    def _block(self, spec: dict, current: _Tensor, build: _Build, created: list) -> _Tensor:
        _check_keys(spec, ("type", "layers", "name"), "block")
        name = spec.get("name")
        if name is not None:
            self._check_new_name(name)
        layers = spec.get("layers")
        if not isinstance(layers, (list, tuple)) or not layers:
            raise ArgumentError.invalid(
                "layers", "a non-empty list of layer specs", layers, f"block '{name}'"
            )
        block_layers: list = []
        for sub in layers:
            if _type_key(sub) in ("register", "retrieve"):
                raise ArgumentError.invalid(
                    "layers", "layers without register/retrieve inside a block", sub,
                    f"block '{name}'",
                )
            current = self._apply(sub, current, build, block_layers)
        if name is not None:
            self._named[name] = block_layers
        created.extend(block_layers)
        return current

    def _reuse(self, spec: dict, current: _Tensor, build: _Build, created: list) -> _Tensor:
        _check_keys(spec, ("type", "layer", "name"), "reuse")
        target = spec.get("layer")
        if isinstance(target, str) and target in self._named:
            layers = self._named[target]
        elif isinstance(target, str) and target in self._by_keras_name:
            layers = [self._by_keras_name[target]]
        else:
            raise ArgumentError.invalid(
                "layer", f"the name of a layer or block defined before (named: "
                f"{sorted(self._named)}; or a Keras layer name of this builder)",
                target, "layer 'reuse'",
            )
        for layer in layers:
            current = self._call(layer, current, build)
        created.extend(layers)
        build.names.used.update(layer.name for layer in layers)
        return current

    # ------------------------------------------------------------------ keras models
    def _apply_keras_model(self, model: keras.Model, build: _Build) -> _Tensor:
        tensors = [build.tensors[n].tensor for n in build.state_names]
        try:
            output = model(tensors[0] if len(tensors) == 1 else tensors)
        except KerasRLError:
            raise
        except Exception as exc:  # the user's model may fail in any way
            raise ArgumentError(
                f"The Keras model {model.name!r} used as network '{build.name}' could not be "
                f"called on the states {build.state_names} (one tensor for one state, else a "
                f"list in this order): {type(exc).__name__}: {exc}"
            ) from None
        if isinstance(output, (list, tuple)) and len(output) == 1:
            output = output[0]
        if isinstance(output, (list, tuple, Mapping)):
            raise ArgumentError.invalid(
                "network output", "a single tensor from the Keras model", output, build.name
            )
        build.names.used.add(model.name)
        return _Tensor(output, _Info.of_tensor(output))

    # ------------------------------------------------------------------ output
    def _finalize(self, current: _Tensor, build: _Build) -> Any:
        tensor = current.tensor
        if "float" not in keras.backend.standardize_dtype(tensor.dtype):
            tensor = Cast("float32", name=build.names.unique("cast_output"))(tensor)
        if len(tensor.shape) != 2:
            if any(d is None for d in tensor.shape[1:]):
                raise ArgumentError.invalid(
                    "network output", "a shape with known sizes (to flatten it to rank 1)",
                    tuple(tensor.shape), f"network '{build.name}'",
                )
            tensor = Flatten(name=build.names.unique("flatten_output"))(tensor)
        return tensor


def _check_keys(spec: dict, allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ArgumentError.invalid(
            "arguments", f"arguments among {[a for a in allowed if a != 'type']}", unknown,
            f"layer '{what}'",
        )


def functional_model(inputs: Any, outputs: Any, name: str) -> keras.Model:
    """`keras.Model(inputs, outputs)` for inputs keyed by names that differ from the
    `Input` names on purpose (nested states `'a/b'` → `'a.b'`, internal states)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
        return keras.Model(inputs=inputs, outputs=outputs, name=name)


def internal_key(name: str) -> str:
    """The input key of the internal state of a recurrent layer call `name`."""
    return f"{INTERNALS}/{name}"


def network_internals(model: keras.Model) -> dict[str, tuple[int, ...]]:
    """The internal states of a network built by `NetworkBuilder`: `{name: shape}`.

    Empty for a network without recurrent layers. The names are in the order
    of the next states among the model's outputs (after the embedding).

    Example:

    >>> model = build_network([dict(type='gru', size=4, horizon=8)],
    ...                       dict(type='float', shape=(3,)), recurrent=True)
    >>> network_internals(model)
    {'policy_network_gru0': (4,)}
    """
    prefix = f"{INTERNALS}/"
    inputs = model.input if isinstance(model.input, Mapping) else {}
    return {key[len(prefix):]: tuple(tensor.shape[1:]) for key, tensor in inputs.items()
            if key.startswith(prefix)}


def network_horizon(model: keras.Model) -> int:
    """The longest `horizon` of the recurrent layers of `model` (0 without any)."""
    return max((layer.horizon for layer in model.layers if isinstance(layer, Rnn)), default=0)


def build_network(
    spec: Any,
    states: Any,
    name: str = "policy_network",
    preprocessing: Any = "linear_normalization",
    recurrent: bool = False,
) -> keras.Model:
    """Builds a network with a fresh `NetworkBuilder` (no sharing with other networks).

    Args:
        spec: The network spec (see the module docstring).
        states: The state specs: a `kerasrl.specs.Specs` or a spec dict.
        name: Model name and layer-name prefix.
        preprocessing: Tensorforce's `state_preprocessing` (see
            `NetworkBuilder.build`).
        recurrent: Whether recurrent layers are allowed (see `NetworkBuilder.build`).

    Returns:
        A functional `keras.Model` with a dict of named inputs and one
        `(batch, d)` float output.

    Example:

    >>> model = build_network([dict(type='dense', size=8)], dict(type='float', shape=(3,)))
    >>> tuple(model({'state': np.zeros((5, 3), 'float32')}).shape)
    (5, 8)
    """
    return NetworkBuilder().build(spec, states, name=name, preprocessing=preprocessing,
                                  recurrent=recurrent)


__all__ = [
    "INTERNALS",
    "LAYER_TYPES",
    "NETWORK_TYPES",
    "NetworkBuilder",
    "build_network",
    "functional_model",
    "internal_key",
    "network_horizon",
    "network_internals",
]
