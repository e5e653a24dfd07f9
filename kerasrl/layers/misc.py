"""Shape and utility layers: `flatten`, `reshape`, `activation`, `dropout`, `function`,
`keras`, and the aggregation layer behind `retrieve`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from kerasrl import registry
from kerasrl.errors import ArgumentError, UnsafeSpecError
from kerasrl.expressions import compile_restricted, evaluate
from kerasrl.layers import base

AGGREGATIONS = ("concat", "product", "stack", "sum")


@base.serializable
class Flatten(keras.layers.Layer):
    """Flattens each sample to rank 1 (Tensorforce `flatten`); a scalar becomes `(1,)`.

    Args:
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(Flatten()(keras.ops.ones((2, 4, 2, 16))).shape)
    (2, 128)
    """

    TYPE = "flatten"

    def build(self, input_shape: tuple) -> None:
        if any(d is None for d in input_shape[1:]):
            raise ArgumentError.invalid(
                "input shape", "known sizes of all non-batch axes", tuple(input_shape),
                f"layer '{self.name}'",
            )

    def call(self, inputs: Any) -> Any:
        return ops.reshape(inputs, (-1, math.prod(inputs.shape[1:])))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], math.prod(input_shape[1:]))

    def get_config(self) -> dict:
        return super().get_config()


@base.serializable
class Reshape(keras.layers.Layer):
    """Reshapes each sample (Tensorforce `reshape`); the batch axis is kept.

    Args:
        shape: The new per-sample shape (an int or a sequence of ints; one
            entry may be -1).
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ArgumentError: when the sizes do not match the input.

    Example:

    >>> tuple(Reshape(shape=(4, -1))(keras.ops.ones((2, 8))).shape)
    (2, 4, 2)
    """

    TYPE = "reshape"

    def __init__(self, shape: Any, **kwargs: Any):
        location = base.where(kwargs, self.TYPE)
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = (shape,)
        if not isinstance(shape, (list, tuple)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and (d > 0 or d == -1) for d in shape
        ) or list(shape).count(-1) > 1:
            raise ArgumentError.invalid(
                "shape", "a sequence of positive ints with at most one -1", shape, location
            )
        super().__init__(**kwargs)
        self.shape = tuple(shape)

    def _target(self, input_shape: tuple) -> tuple:
        size = math.prod(input_shape[1:]) if None not in input_shape[1:] else None
        known = math.prod(d for d in self.shape if d != -1)
        target = self.shape
        if -1 in target and size is not None and known and size % known == 0:
            target = tuple(size // known if d == -1 else d for d in target)
        if size is None or -1 in target or math.prod(target) != size:
            raise ArgumentError.invalid(
                "shape", f"a shape with as many elements as the input {tuple(input_shape[1:])}",
                self.shape, f"layer '{self.name}'",
            )
        return target

    def build(self, input_shape: tuple) -> None:
        self._target(input_shape)

    def call(self, inputs: Any) -> Any:
        return ops.reshape(inputs, (-1, *self._target(tuple(inputs.shape))))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], *self._target(tuple(input_shape)))

    def get_config(self) -> dict:
        return {**super().get_config(), "shape": list(self.shape)}


@base.serializable
class Activation(keras.layers.Layer):
    """Applies a nonlinearity (Tensorforce `activation`).

    Args:
        nonlinearity: One of `base.NONLINEARITIES` (`crelu` doubles the last
            axis).
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(Activation(nonlinearity='crelu')(keras.ops.ones((2, 3))).shape)
    (2, 6)
    """

    TYPE = "activation"

    def __init__(self, nonlinearity: str, **kwargs: Any):
        nonlinearity = base.normalize_activation(
            nonlinearity, base.where(kwargs, self.TYPE), "nonlinearity"
        )
        super().__init__(**kwargs)
        self.nonlinearity = nonlinearity

    def call(self, inputs: Any) -> Any:
        return base.apply_activation(base.as_float(inputs, self.compute_dtype), self.nonlinearity)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return base.activation_output_shape(tuple(input_shape), self.nonlinearity)

    def get_config(self) -> dict:
        return {**super().get_config(), "nonlinearity": self.nonlinearity}


def dropout(rate: float, **kwargs: Any) -> keras.layers.Dropout:
    """Creates a `keras.layers.Dropout` (Tensorforce `dropout`), active with `training=True`.

    Args:
        rate: Dropout rate in [0, 1).
        **kwargs: `keras.layers.Dropout` arguments (`name`, `seed`, ...).

    Returns:
        The Keras layer.
    """
    rate = base.check_float(
        rate, "rate", base.where(kwargs, "dropout"), 0.0, 1.0, exclusive_maximum=True
    )
    return keras.layers.Dropout(rate, **kwargs)


# --------------------------------------------------------------------------- function

#: Names an expression of a `function` layer may use.
FUNCTION_NAMESPACE = {
    "ops": ops,
    "abs": abs,
    "min": min,
    "max": max,
    "float": float,
    "int": int,
    "pi": math.pi,
}


def compile_expression(expression: str, where: str = "layer 'function'") -> Any:
    """Compiles a restricted expression in `x` (see `Function` and `kerasrl.expressions`).

    Args:
        expression: Python expression text, e.g. `"ops.tanh(x) * 2.0"`.
        where: Layer name for messages.

    Returns:
        A code object for `kerasrl.expressions.evaluate`.

    Raises:
        UnsafeSpecError: for a syntax error or a name or construct that is not
            allowed.
    """
    return compile_restricted(expression, FUNCTION_NAMESPACE, ("x",), "function", where)


@base.serializable
class Function(keras.layers.Layer):
    """Applies a function x → y (Tensorforce `function`; a bare callable in a layer list).

    The function is a callable written with `keras.ops`, or a string
    expression in `x`, evaluated with only `x`, `ops` (`keras.ops`), `abs`,
    `min`, `max`, `float`, `int` and `pi` in scope, for example
    `"(x + 1.0) / 2.0"` or `"ops.clip(x, -1.0, 1.0)"`. A string that is not
    such an expression may be the import path of a function
    (`"my_package.module.transform"`).

    Args:
        function: The callable, expression or import path.
        output_spec: Accepted for Tensorforce compatibility and ignored (the
            output shape is inferred by tracing).
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ArgumentError: for an invalid expression or a non-callable.

    Example:

    >>> tuple(Function(function='2.0 * x')(keras.ops.ones((2, 3))).shape)
    (2, 3)
    """

    TYPE = "function"

    def __init__(self, function: Any, output_spec: Any = None, **kwargs: Any):
        location = base.where(kwargs, self.TYPE)
        self._code = None
        self._callable: Callable | None = None
        if isinstance(function, str):
            try:
                self._code = compile_expression(function, location)
            except UnsafeSpecError:
                if not registry.is_import_path(function):
                    raise
                self._callable = registry.import_function(function, "function")
        elif callable(function):
            self._callable = function
        else:
            raise ArgumentError.invalid(
                "function", "a callable or an expression string in x", function, location
            )
        super().__init__(**kwargs)
        self.function = function

    def call(self, inputs: Any) -> Any:
        if self._code is not None:
            return evaluate(self._code, FUNCTION_NAMESPACE, {"x": inputs})
        return self._callable(inputs)

    @classmethod
    def from_config(cls, config: dict) -> Function:
        """Rebuilds the layer from a saved config, in safe mode (`base.from_saved_config`)."""
        return base.from_saved_config(cls, config)

    def get_config(self) -> dict:
        function = self.function
        if not isinstance(function, str):
            module = getattr(function, "__module__", None)
            qualname = getattr(function, "__qualname__", "")
            if not module or "<" in qualname or registry.import_internal(
                    f"{module}.{qualname}") is None:
                raise ArgumentError.invalid(
                    "function", "a string expression or an importable module-level function "
                    f"to serialize layer '{self.name}'", function,
                )
            function = f"{module}.{qualname}"
        return {**super().get_config(), "function": function}


def keras_layer(layer: Any, **kwargs: Any) -> keras.layers.Layer:
    """Creates a Keras layer by class name (Tensorforce `keras`).

    Args:
        layer: The name of a `keras.layers` class (case-insensitive), or a
            `keras.layers.Layer` subclass.
        **kwargs: Arguments of that class.

    Returns:
        The Keras layer.

    Raises:
        ArgumentError: for an unknown class or invalid arguments.

    Example:

    >>> keras_layer('Dense', units=8).units
    8
    """
    classes = {
        name.lower(): value for name, value in vars(keras.layers).items()
        if isinstance(value, type) and issubclass(value, keras.layers.Layer)
    }
    if isinstance(layer, str) and layer.lower() in classes:
        cls = classes[layer.lower()]
    elif isinstance(layer, type) and issubclass(layer, keras.layers.Layer):
        cls = layer
    else:
        raise ArgumentError.invalid(
            "layer", "the name of a keras.layers class (e.g. 'Dense') or a Layer subclass",
            layer, "layer 'keras'",
        )
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"Invalid arguments for keras.layers.{cls.__name__}: {exc}") from None


# --------------------------------------------------------------------------- retrieve


@base.serializable
class Retrieve(keras.layers.Layer):
    """Aggregates several tensors into one (the aggregation of Tensorforce `retrieve`).

    Networks resolve the `tensors` names; the layer itself is called on a
    list of tensors. `axis` excludes the batch axis.

    Args:
        tensors: Names of the retrieved tensors (informational).
        aggregation: `'concat'` (along `axis`), `'stack'` (a new `axis`),
            `'product'` or `'sum'` (elementwise, equal shapes).
        axis: Axis, not counting the batch axis (default 0).
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ArgumentError: for an invalid aggregation or incompatible shapes.

    Example:

    >>> a, b = keras.ops.ones((2, 3)), keras.ops.ones((2, 5))
    >>> tuple(Retrieve(aggregation='concat')([a, b]).shape)
    (2, 8)
    """

    TYPE = "retrieve"

    def __init__(
        self, tensors: Any = None, aggregation: str = "concat", axis: int = 0, **kwargs: Any
    ):
        location = base.where(kwargs, self.TYPE)
        aggregation = base.check_choice(aggregation, "aggregation", location, AGGREGATIONS)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ArgumentError.invalid("axis", "an int", axis, location)
        super().__init__(**kwargs)
        self.tensors = [tensors] if isinstance(tensors, str) else (
            None if tensors is None else list(tensors)
        )
        self.aggregation = aggregation
        self.axis = axis

    def _keras_axis(self, rank: int) -> int:
        """Converts `self.axis` (per sample) for inputs of per-sample `rank`."""
        extent = rank + 1 if self.aggregation == "stack" else rank
        if not -extent <= self.axis < max(extent, 1):
            raise ArgumentError.invalid(
                "axis", f"an axis in [{-extent}, {extent}) for inputs of rank {rank}",
                self.axis, f"layer '{self.name}'",
            )
        return self.axis + 1 if self.axis >= 0 else self.axis

    def build(self, input_shape: Any) -> None:
        shapes = [tuple(s) for s in input_shape] if _is_list_of_shapes(input_shape) else []
        if len(shapes) < 2:
            return
        ranks = {len(s) for s in shapes}
        if self.aggregation == "concat":
            if len(ranks) == 1:
                axis = self._keras_axis(len(shapes[0]) - 1) % len(shapes[0])
                others = {s[:axis] + s[axis + 1:] for s in shapes}
                if len(others) == 1:
                    return
            expected = "equal shapes except along the concat axis"
        else:
            if len(set(shapes)) == 1:
                self._keras_axis(len(shapes[0]) - 1)
                return
            expected = "equal shapes"
        raise ArgumentError.invalid(
            "retrieved tensors", f"{expected} for aggregation '{self.aggregation}'",
            [s[1:] for s in shapes], f"layer '{self.name}'",
        )

    def call(self, inputs: Any) -> Any:
        if not isinstance(inputs, (list, tuple)):
            return inputs
        inputs = list(inputs)
        if len(inputs) == 1:
            return inputs[0]
        dtypes = {keras.backend.standardize_dtype(x.dtype) for x in inputs}
        if len(dtypes) > 1:
            inputs = [base.as_float(x, self.compute_dtype) for x in inputs]
        if self.aggregation == "concat":
            return ops.concatenate(inputs, axis=self._keras_axis(len(inputs[0].shape) - 1))
        if self.aggregation == "stack":
            return ops.stack(inputs, axis=self._keras_axis(len(inputs[0].shape) - 1))
        result = inputs[0]
        for x in inputs[1:]:
            result = result * x if self.aggregation == "product" else result + x
        return result

    def get_config(self) -> dict:
        return {
            **super().get_config(), "tensors": self.tensors, "aggregation": self.aggregation,
            "axis": self.axis,
        }


def _is_list_of_shapes(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(s, (list, tuple)) for s in value)


@base.serializable
class Cast(keras.layers.Layer):
    """Casts its input to `dtype` (used to end a network on a float embedding).

    Args:
        target_dtype: The dtype to cast to (default `'float32'`).
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, target_dtype: str = "float32", **kwargs: Any):
        super().__init__(**kwargs)
        self.target_dtype = target_dtype

    def call(self, inputs: Any) -> Any:
        return ops.cast(inputs, self.target_dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "target_dtype": self.target_dtype}
