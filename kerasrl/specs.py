"""State and action specifications.

A *value spec* describes one array: its `type` (`'bool'`, `'int'` or
`'float'`), its `shape`, and for int values `num_values`, for float values
optional `min_value`/`max_value`. Several values are given as a (nested) dict
of named specs. Nested names are flattened with `/` (`'a/b'`). A singleton spec
(a dict with a `type` or `shape` key) is addressed as `'state'` or `'action'`
when dicts are involved, as in Tensorforce.

Arrays use these dtypes: bool → `np.bool_`, int → `np.int64`,
float → `np.float32`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from kerasrl.errors import InputError, SpecError

TYPES = ("bool", "int", "float")
NP_DTYPES = {"bool": np.bool_, "int": np.int64, "float": np.float32}
_TYPE_ALIASES = {
    bool: "bool",
    int: "int",
    float: "float",
    "bool": "bool",
    "int": "int",
    "float": "float",
    "long": "int",
    "int64": "int",
    "int32": "int",
    "float32": "float",
    "float64": "float",
    "double": "float",
    "boolean": "bool",
}
_SPEC_KEYS = {"type", "shape", "num_values", "num_actions", "min_value", "max_value"}
RESERVED_NAMES = {"terminal", "reward", "parallel", "deterministic", "internals"}
BOUND_INFINITY = 1e6  # |bound| >= this counts as unbounded (as in Tensorforce)


def _as_shape(shape: Any, where: str) -> tuple[int, ...]:
    if shape is None:
        return ()
    dims = (shape,) if not isinstance(shape, (list, tuple)) else tuple(shape)
    if any(isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer))
           for d in dims):
        raise SpecError.invalid(
            "shape", "an int or a tuple of ints", shape, where=where
        )
    if any(d <= 0 for d in dims):
        raise SpecError.invalid("shape", "positive dimensions", shape, where=where)
    return tuple(int(d) for d in dims)


def _bound_array(bound: Any, key: str, where: str) -> np.ndarray:
    """A `min_value`/`max_value` as a float64 array: numbers only (no bools, strings, ragged lists)."""
    try:
        array = np.asarray(bound)
    except ValueError:  # a ragged nested list
        array = None
    if array is None or array.dtype.kind not in "iuf":
        raise SpecError.invalid(key, "a number or an array of numbers", bound, where)
    return array.astype(np.float64)


class ValueSpec:
    """Specification of one state or action array.

    Args:
        type: `'bool'`, `'int'` or `'float'` (Python types `bool`, `int`,
            `float` are accepted too).
        shape: An int or a tuple of ints, `()` for a scalar.
        num_values: Number of values of an int spec (required for int
            actions).
        min_value: Lower bound of a float spec (float or array), optional.
        max_value: Upper bound of a float spec (float or array), optional.
        name: Name used in error messages.
        num_actions: Alias of `num_values` (Tensorforce's old name, used by
            the seed examples).

    Example:

    >>> spec = ValueSpec(type='int', shape=(), num_values=3)
    >>> spec.dtype
    <class 'numpy.int64'>
    """

    def __init__(
        self,
        type: Any = None,
        shape: Any = (),
        num_values: int | None = None,
        min_value: Any = None,
        max_value: Any = None,
        name: str = "value",
        num_actions: int | None = None,
    ):
        where = f"spec '{name}'"
        if num_actions is not None:
            if num_values is not None and num_values != num_actions:
                raise SpecError.invalid(
                    "num_actions", f"equal to num_values={num_values}", num_actions, where
                )
            num_values = num_actions
        if type is None:
            raise SpecError(
                f"Missing spec key 'type' of {where}: expected one of {TYPES}."
            )
        try:
            resolved = _TYPE_ALIASES.get(type)
        except TypeError:
            resolved = None
        if resolved is None:
            raise SpecError.invalid("type", f"one of {TYPES}", type, where=where)
        self.type = resolved
        self.name = name
        self.shape = _as_shape(shape, where)
        self.num_values = None
        self.min_value = None
        self.max_value = None
        if num_values is not None:
            if self.type != "int":
                raise SpecError.invalid(
                    "num_values", "no num_values for a non-int spec", num_values, where
                )
            if (
                isinstance(num_values, bool)
                or not isinstance(num_values, (int, np.integer))
                or num_values <= 0
            ):
                raise SpecError.invalid(
                    "num_values", "a positive int", num_values, where=where
                )
            self.num_values = int(num_values)
        for key, bound in (("min_value", min_value), ("max_value", max_value)):
            if bound is None:
                continue
            if self.type == "bool":
                raise SpecError.invalid(key, "no bounds for a bool spec", bound, where)
            array = _bound_array(bound, key, where)
            if array.ndim > 0 and array.shape != self.shape:
                try:
                    array = np.broadcast_to(array, self.shape)
                except ValueError:
                    raise SpecError.invalid(
                        key, f"a scalar or an array of shape {self.shape}", bound, where
                    ) from None
            if np.isnan(array).any():
                raise SpecError.invalid(key, "a bound without NaN", bound, where)
            wrong_infinity = np.inf if key == "min_value" else -np.inf
            if (array == wrong_infinity).any():
                raise SpecError.invalid(
                    key, f"a bound other than {wrong_infinity} (an empty range)", bound, where)
            setattr(self, key, float(array) if array.ndim == 0 else array.copy())
        if self.min_value is not None and self.max_value is not None:
            if np.any(np.asarray(self.min_value) >= np.asarray(self.max_value)):
                raise SpecError.invalid(
                    "max_value", f"> min_value {self.min_value!r}", self.max_value, where
                )

    # ------------------------------------------------------------------ properties
    @property
    def dtype(self) -> type:
        """The numpy dtype of values of this spec."""
        return NP_DTYPES[self.type]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def is_bounded(self) -> bool:
        """True for a float spec with both bounds finite (everywhere)."""
        if self.type != "float" or self.min_value is None or self.max_value is None:
            return False
        lo = np.asarray(self.min_value)
        hi = np.asarray(self.max_value)
        return bool(np.all(np.abs(lo) < BOUND_INFINITY) and np.all(np.abs(hi) < BOUND_INFINITY))

    def sample(self, rng: np.random.Generator, batch_shape: tuple[int, ...] = (),
               mask: np.ndarray | None = None) -> np.ndarray:
        """Uniformly random values of the spec (the `random` agent's actions).

        bool: fair coins; int: uniform over the values (over the allowed ones
        with a `mask`); float with bounds: uniform between them; unbounded
        float: standard normal.

        Args:
            rng: The NumPy generator to draw from.
            batch_shape: Leading axes before the spec's shape.
            mask: For int specs, a bool array `batch_shape + shape + (num_values,)`.

        Returns:
            An array of shape `batch_shape + shape`.
        """
        shape = tuple(batch_shape) + self.shape
        if self.type == "bool":
            return rng.random(shape) < 0.5
        if self.type == "int":
            if mask is None:
                return rng.integers(0, self.num_values, size=shape)
            # Uniform over allowed values: argmax of random keys on allowed entries.
            keys = np.where(mask, rng.random(mask.shape), -1.0)
            return keys.argmax(axis=-1).astype(np.int64)
        if self.min_value is not None:
            lo = np.asarray(self.min_value, np.float32)
            hi = np.asarray(self.max_value, np.float32)
            return (lo + (hi - lo) * rng.random(shape)).astype(np.float32)
        return rng.standard_normal(shape).astype(np.float32)

    def get_config(self) -> dict:
        """Returns the spec as a JSON-serializable dict."""
        config: dict[str, Any] = {"type": self.type, "shape": list(self.shape)}
        if self.num_values is not None:
            config["num_values"] = self.num_values
        for key in ("min_value", "max_value"):
            value = getattr(self, key)
            if value is not None:
                config[key] = value.tolist() if isinstance(value, np.ndarray) else value
        return config

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValueSpec) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"ValueSpec({items})"

    # ------------------------------------------------------------------ values
    def mask_shape(self) -> tuple[int, ...]:
        """Shape of an action mask for this (int) spec: `shape + (num_values,)`."""
        return self.shape + (self.num_values,)

    def zeros(self, batch_shape: tuple[int, ...] = ()) -> np.ndarray:
        return np.zeros(batch_shape + self.shape, dtype=self.dtype)

    def check_batch(
        self, value: Any, argument: str, num_batch_dims: int = 1
    ) -> np.ndarray:
        """Converts and validates a value with `num_batch_dims` leading axes.

        Args:
            value: Array-like value.
            argument: Name used in error messages.
            num_batch_dims: Number of leading batch axes before `shape`.

        Returns:
            A numpy array of dtype `self.dtype`.

        Raises:
            InputError: wrong shape, wrong dtype, NaN/inf, or out-of-range int.
        """
        try:
            array = np.asarray(value)
        except ValueError:  # a ragged nested list
            raise InputError.invalid(
                argument, f"a rectangular array of shape (batch, ...) + {self.shape}", value
            ) from None
        if array.dtype == object:
            raise InputError.invalid(argument, f"a numeric array for {self}", value)
        expected_rank = num_batch_dims + self.rank
        if array.ndim != expected_rank or tuple(array.shape[num_batch_dims:]) != self.shape:
            batch = "(batch, ...) + " if num_batch_dims else ""
            raise InputError.invalid(
                argument, f"shape {batch}{self.shape} for {self.type} spec", array
            )
        kind = array.dtype.kind
        if self.type == "bool":
            if kind not in "bui":
                raise InputError.invalid(argument, "bool values", array)
            if kind != "b" and not np.isin(array, (0, 1)).all():
                raise InputError.invalid(argument, "bool values (0/1)", array)
            return array.astype(np.bool_, copy=False)
        if self.type == "int":
            if kind == "f":
                if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                    raise InputError.invalid(argument, "int values", array)
            elif kind not in "biu":
                raise InputError.invalid(argument, "int values", array)
            array = array.astype(np.int64, copy=False)
            if self.num_values is not None and array.size:
                lo, hi = array.min(), array.max()
                if lo < 0 or hi >= self.num_values:
                    raise InputError.invalid(
                        argument,
                        f"int values in [0, {self.num_values})",
                        int(lo if lo < 0 else hi),
                    )
            return array
        if kind not in "biuf":
            raise InputError.invalid(argument, "float values", array)
        array = array.astype(np.float32, copy=False)
        if not np.all(np.isfinite(array)):
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
            raise InputError.invalid(
                argument, f"finite float values (no NaN/inf); index {index} is "
                f"{array[index]}", array)
        return array

    def check_action(self, value: Any, argument: str, num_batch_dims: int = 0) -> np.ndarray:
        """Like `check_batch`, and also checks float bounds (for actions)."""
        array = self.check_batch(value, argument, num_batch_dims)
        if self.type == "float":
            eps = 1e-5
            if self.min_value is not None and np.any(array < np.asarray(self.min_value) - eps):
                raise InputError.invalid(argument, f"values >= {self.min_value}", array)
            if self.max_value is not None and np.any(array > np.asarray(self.max_value) + eps):
                raise InputError.invalid(argument, f"values <= {self.max_value}", array)
        return array


def _is_leaf(spec: Any) -> bool:
    return isinstance(spec, Mapping) and ("type" in spec or "shape" in spec)


class Specs(Mapping):
    """An ordered collection of named `ValueSpec`s (flattened names).

    Args:
        spec: A singleton spec dict, a (nested) dict of named spec dicts, or
            another `Specs`.
        kind: `'states'` or `'actions'` (used for singleton names and messages).

    A singleton is stored under the name `'state'` / `'action'` and
    `singleton` is True.
    """

    def __init__(self, spec: Any, kind: str = "states"):
        if kind not in ("states", "actions"):
            raise ValueError(kind)
        self.kind = kind
        self.singleton_name = kind[:-1]
        if isinstance(spec, Specs):
            self._specs = dict(spec._specs)
            self.singleton = spec.singleton
            return
        if isinstance(spec, ValueSpec):
            self._specs = {self.singleton_name: spec}
            self.singleton = True
            return
        if not isinstance(spec, Mapping) or len(spec) == 0:
            raise SpecError.invalid(
                kind, "a spec dict (with 'type') or a non-empty dict of named specs", spec
            )
        self._specs = {}
        if _is_leaf(spec):
            self.singleton = True
            self._specs[self.singleton_name] = _make_value_spec(spec, self.singleton_name)
        else:
            self.singleton = False
            self._flatten_into(spec, prefix="")
        for name in self._specs:
            if name in RESERVED_NAMES or name.endswith("_mask"):
                raise SpecError.invalid(
                    f"{kind} name", f"a name that is not reserved ({sorted(RESERVED_NAMES)}"
                    " and not ending in '_mask')", name,
                )

    def _flatten_into(self, spec: Mapping, prefix: str) -> None:
        for key, value in spec.items():
            if not isinstance(key, str) or not key or "/" in key:
                raise SpecError.invalid(
                    f"{self.kind} name", "a non-empty string without '/'", key
                )
            name = prefix + key
            if _is_leaf(value) or isinstance(value, ValueSpec):
                self._specs[name] = (
                    value if isinstance(value, ValueSpec) else _make_value_spec(value, name)
                )
            elif isinstance(value, Mapping) and value:
                self._flatten_into(value, prefix=name + "/")
            else:
                raise SpecError.invalid(
                    f"{self.kind}['{name}']", "a spec dict with a 'type' key", value
                )

    # Mapping interface
    def __getitem__(self, name: str) -> ValueSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Specs({self.get_config()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Specs) and self.get_config() == other.get_config()

    def get_config(self) -> dict:
        """Returns the (nested) JSON-serializable spec as the user would write it."""
        if self.singleton:
            return self._specs[self.singleton_name].get_config()
        return unflatten({k: v.get_config() for k, v in self._specs.items()})

    def unflatten(self, values: Mapping[str, Any]) -> Any:
        """Returns the user-facing structure: the bare value for a singleton."""
        if self.singleton:
            return values[self.singleton_name]
        return unflatten(values)

    def int_names(self) -> list[str]:
        return [n for n, s in self._specs.items() if s.type == "int"]


def _make_value_spec(spec: Mapping, name: str) -> ValueSpec:
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise SpecError.invalid(
            f"spec key(s) {sorted(unknown)}",
            f"keys among {sorted(_SPEC_KEYS)}",
            dict(spec),
            where=f"spec '{name}'",
        )
    kwargs = dict(spec)
    if "num_actions" in kwargs:
        alias = kwargs.pop("num_actions")
        if "num_values" in kwargs and kwargs["num_values"] != alias:
            raise SpecError.invalid(
                "num_actions", f"equal to num_values={kwargs['num_values']}", alias, name
            )
        kwargs["num_values"] = alias
    return ValueSpec(name=name, **kwargs)


def unflatten(flat: Mapping[str, Any]) -> dict:
    """Turns `{'a/b': x}` into `{'a': {'b': x}}`."""
    nested: dict = {}
    for key, value in flat.items():
        parts = key.split("/")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict:
    """Turns `{'a': {'b': x}}` into `{'a/b': x}` (leaves are non-dict values)."""
    flat: dict = {}
    for key, value in nested.items():
        name = prefix + str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def to_python(value: np.ndarray) -> Any:
    """Converts an unbatched action array to a Python scalar when it is 0-d."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def check_action_specs_bounds(actions: Specs) -> None:
    """Float action bounds must be finite or absent (as in Tensorforce)."""
    for name, spec in actions.items():
        for key in ("min_value", "max_value"):
            bound = getattr(spec, key)
            if bound is not None and not np.all(np.isfinite(np.asarray(bound))):
                raise SpecError.invalid(
                    key, "a finite bound for a float action", bound, where=f"action '{name}'"
                )


def finite_or_none(value: Any) -> Any:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array)) or np.any(np.abs(array) >= BOUND_INFINITY):
        return None
    return value


__all__ = [
    "ValueSpec",
    "Specs",
    "flatten",
    "unflatten",
    "to_python",
    "TYPES",
    "NP_DTYPES",
]
