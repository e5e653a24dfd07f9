"""Resolution of module specifications, Tensorforce style.

A module (agent, layer, network, memory, optimizer, parameter, ...) can be
given as:

- a registered string key (`'dense'`), a JSON file path, or a dotted import
  path (`'my_package.module.MyClass'`);
- a dict with a `type` key and arguments (`dict(type='dense', size=32)`); the
  `type` may itself be a JSON file path whose content is merged with the rest;
- a class, an instance, or a callable factory;
- just the arguments of the default type, or just its first argument (e.g.
  `memory=10000` means a replay memory of capacity 10000).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from kerasrl.errors import ArgumentError, UnknownTypeError


def load_json(path: str, argument: str = "spec") -> dict:
    """Reads a JSON spec file, raising `ArgumentError` with the path on failure."""
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, json.JSONDecodeError) as exc:
        raise ArgumentError.invalid(argument, "a readable JSON file", f"{path}: {exc}") from None
    if not isinstance(value, dict):
        raise ArgumentError.invalid(argument, "a JSON object", value)
    return value


def is_json_path(value: Any) -> bool:
    return isinstance(value, str) and value.endswith(".json") and os.path.isfile(value)


def import_object(path: str) -> Any:
    """Imports `'package.module.Name'`, returning None if it cannot be found."""
    if "." not in path:
        return None
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, attribute, None)


def resolve(
    spec: Any,
    registry: Mapping[str, Any],
    kind: str,
    base_class: type | None = None,
    default_type: str | None = None,
    first_argument: str | None = None,
    **kwargs: Any,
) -> Any:
    """Creates a module from a spec.

    Args:
        spec: The module spec (see module docstring).
        registry: Maps type keys to classes or factories.
        kind: What is created (e.g. `'layer'`), used in error messages.
        base_class: Instances of this class are returned unchanged.
        default_type: Type used for a dict without `type`, and for a bare
            first argument.
        first_argument: Name of the default type's first argument.
        **kwargs: Extra arguments given to the constructor.

    Returns:
        The created module.

    Raises:
        UnknownTypeError: for an unknown type key.
        ArgumentError: for a spec of the wrong form.
    """
    if base_class is not None and isinstance(spec, base_class):
        return spec
    if isinstance(spec, type):
        return spec(**kwargs)
    if isinstance(spec, str):
        if is_json_path(spec):
            return resolve(
                load_json(spec, kind), registry, kind, base_class, default_type,
                first_argument, **kwargs,
            )
        key = spec.lower()
        if key in registry:
            return registry[key](**kwargs)
        obj = import_object(spec)
        if obj is not None:
            return resolve(obj, registry, kind, base_class, default_type, first_argument, **kwargs)
        raise UnknownTypeError.invalid(
            f"{kind} type", f"one of {sorted(registry)}, a JSON file or an import path", spec
        )
    if isinstance(spec, Mapping):
        spec = dict(spec)
        type_ = spec.pop("type", None)
        merged = {**spec, **kwargs}
        if type_ is None:
            if default_type is None:
                raise ArgumentError.invalid(
                    f"{kind} spec", f"a dict with a 'type' key among {sorted(registry)}", spec
                )
            type_ = default_type
        if is_json_path(type_):
            return resolve(
                {**load_json(type_, kind), **merged}, registry, kind, base_class,
                default_type, first_argument,
            )
        if isinstance(type_, str) and type_.lower() not in registry:
            obj = import_object(type_)
            if obj is None:
                raise UnknownTypeError.invalid(
                    f"{kind} type", f"one of {sorted(registry)}", type_
                )
            type_ = obj
        if isinstance(type_, str):
            factory = registry[type_.lower()]
        elif callable(type_):
            factory = type_
        else:
            raise ArgumentError.invalid(f"{kind} type", "a string or a class", type_)
        try:
            return factory(**merged)
        except TypeError as exc:
            if "argument" in str(exc):
                raise ArgumentError(f"Invalid arguments for {kind} '{type_}': {exc}.") from None
            raise
    if callable(spec):
        return spec(**kwargs) if kwargs else spec()
    if default_type is not None and first_argument is not None:
        return registry[default_type](**{first_argument: spec}, **kwargs)
    raise ArgumentError.invalid(kind, f"a {kind} spec (str, dict, class or instance)", spec)


def call_factory(factory: Callable, kind: str, **kwargs: Any) -> Any:
    """Calls `factory(**kwargs)`, turning argument errors into `ArgumentError`."""
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ArgumentError(f"Invalid arguments for {kind}: {exc}.") from None
