"""Resolution of module specifications, Tensorforce style, and what a spec may import.

A module (agent, layer, network, memory, optimizer, parameter, ...) can be
given as:

- a registered string key (`'dense'`), a JSON file path, the name of a class
  registered with `kerasrl.register` or passed in `custom_objects=`, or a
  dotted import path (`'my_package.module.MyClass'`);
- a dict with a `type` key and arguments (`dict(type='dense', size=32)`); the
  `type` may itself be a JSON file path whose content is merged with the rest;
- a class, an instance, or a callable factory;
- just the arguments of the default type, or just its first argument (e.g.
  `memory=10000` means a replay memory of capacity 10000).

Safety (see `docs/security.md`): a string never resolves to an arbitrary
callable. A dotted import path must name a subclass of the base class expected
at that place (a Keras layer where a layer goes, an `Agent` where an agent
goes, ...). Content read from a file (a JSON spec, a checkpoint's spec, a
Keras archive's layer config) is resolved in *safe mode*: dotted import paths
are refused with `UnsafeSpecError` unless the class was registered or passed
in `custom_objects=`, or the caller passed `safe_mode=False`. Classes,
instances and functions passed directly in Python are never restricted.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kerasrl.errors import ArgumentError, UnknownTypeError, UnsafeSpecError

#: True while resolving content read from a file (dotted paths refused).
_SAFE = contextvars.ContextVar("kerasrl_safe", default=False)
#: True inside `safe_mode_scope(False)`: the user trusts the files.
_TRUSTED = contextvars.ContextVar("kerasrl_trusted", default=False)
#: Objects of the innermost `custom_object_scope`.
_CUSTOM = contextvars.ContextVar("kerasrl_custom_objects", default=None)
#: Objects registered with `register`: name (and import path) -> object.
_REGISTERED: dict[str, Any] = {}
_IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def register(obj: Any = None, *, name: str | None = None) -> Any:
    """Registers a class (or function for `function` layers) so that specs may name it.

    A registered object is found by `name` (default: its class name) and by
    its import path `module.QualName`, also in safe mode, so that a saved
    spec that names it loads without `safe_mode=False`.

    Args:
        obj: The class or function; omit it to use `register` as a decorator
            with arguments.
        name: The name to register it under.

    Returns:
        `obj` (or a decorator).

    Example:

    >>> import keras
    >>> @register(name="MyDense")
    ... class MyDense(keras.layers.Dense):
    ...     pass
    >>> lookup("MyDense") is MyDense
    True
    """
    def decorate(target: Any) -> Any:
        if not callable(target):
            raise ArgumentError.invalid("obj", "a class or function", target, where="register")
        key = name or getattr(target, "__name__", None)
        if not isinstance(key, str) or not key:
            raise ArgumentError.invalid("name", "a non-empty string", key, where="register")
        _REGISTERED[key] = target
        module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", "")
        if module and "<" not in qualname:
            _REGISTERED[f"{module}.{qualname}"] = target
        return target

    return decorate if obj is None else decorate(obj)


@contextlib.contextmanager
def custom_object_scope(objects: Mapping[str, Any] | None) -> Iterator[None]:
    """Within the scope, specs may name the objects of `objects` (like Keras' scope)."""
    if objects is None:
        yield
        return
    if not isinstance(objects, Mapping):
        raise ArgumentError.invalid("custom_objects", "a dict {name: class}", objects)
    merged = {**(_CUSTOM.get() or {}), **objects}
    for obj in objects.values():
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
        if module and "<" not in qualname:
            merged.setdefault(f"{module}.{qualname}", obj)
    token = _CUSTOM.set(merged)
    try:
        yield
    finally:
        _CUSTOM.reset(token)


@contextlib.contextmanager
def safe_mode_scope(safe_mode: bool | None) -> Iterator[None]:
    """`True`: refuse dotted import paths everywhere in the scope; `False`: trust files too;
    `None`: the default (only content read from files is restricted)."""
    if safe_mode is None:
        yield
        return
    if not isinstance(safe_mode, bool):
        raise ArgumentError.invalid("safe_mode", "True, False or None", safe_mode)
    tokens = (_SAFE.set(safe_mode), _TRUSTED.set(not safe_mode))
    try:
        yield
    finally:
        _SAFE.reset(tokens[0])
        _TRUSTED.reset(tokens[1])


@contextlib.contextmanager
def reading_file() -> Iterator[None]:
    """Resolves what is inside the scope as file content (safe unless the user trusts files)."""
    token = _SAFE.set(_SAFE.get() or not _TRUSTED.get())
    try:
        yield
    finally:
        _SAFE.reset(token)


def in_safe_mode() -> bool:
    """Whether dotted import paths are refused here."""
    return _SAFE.get()


def trusts_files() -> bool:
    """Whether the caller passed `safe_mode=False` (content of files is trusted)."""
    return _TRUSTED.get()


def lookup(name: str) -> Any:
    """A registered or custom object by name or import path (None if there is none)."""
    custom = _CUSTOM.get()
    if custom and name in custom:
        return custom[name]
    return _REGISTERED.get(name)


def is_import_path(value: Any) -> bool:
    """Whether `value` has the form of a dotted import path (`package.module.Name`)."""
    return isinstance(value, str) and bool(_IMPORT_PATH.match(value))


def import_internal(path: str) -> Any:
    """Imports one of kerasrl's own tables' paths (or a user's object passed in Python)."""
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, attribute, None)


def unsafe_path(argument: str, path: str, source: str = "a file") -> UnsafeSpecError:
    """The error for an import path (or importing name) refused by safe mode."""
    return UnsafeSpecError(
        f"Invalid argument '{argument}' in {source}: the import path '{path}' was read from a "
        "file, and safe mode refuses to import code named by files. If you trust the file, "
        "pass safe_mode=False (Agent.create/Agent.load/Environment.create); or register the "
        "class with kerasrl.register (or pass custom_objects={...})."
    )


def _refuse_in_safe_mode(path: str, argument: str) -> None:
    if _SAFE.get():
        raise unsafe_path(argument, path)


def import_module(name: str, argument: str) -> Any:
    """Imports a module the user names (e.g. one that registers environments).

    Args:
        name: The module name.
        argument: The argument it came from, for messages.

    Returns:
        The module.

    Raises:
        UnsafeSpecError: the name was read from a file, in safe mode.
        ArgumentError: not a module name, or the import failed.
    """
    if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
        raise ArgumentError.invalid(argument, "a module name (or a list of them)", name)
    _refuse_in_safe_mode(name, argument)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ArgumentError.invalid(argument, "an importable module", f"{name} ({exc})") from None


def import_object(path: str, base: type | tuple[type, ...], argument: str) -> Any:
    """Resolves a name or dotted path from a spec to a subclass of `base`.

    Registered and custom objects come first; otherwise, outside safe mode, the
    path is imported. Whatever is found must be a class derived from `base`.

    Args:
        path: The name or import path.
        base: The expected base class(es) at that place.
        argument: The spec key, for messages.

    Returns:
        The class, or None if `path` is neither registered nor an import path
        (nor importable).

    Raises:
        UnsafeSpecError: in safe mode for an import path, or for an object that
            is not a subclass of `base`.
    """
    obj = lookup(path) if isinstance(path, str) else None
    if obj is None:
        if not is_import_path(path):
            return None
        _refuse_in_safe_mode(path, argument)
        obj = import_internal(path)
        if obj is None:
            return None
    if not (isinstance(obj, type) and issubclass(obj, base)):
        names = " or ".join(b.__name__ for b in (base if isinstance(base, tuple) else (base,)))
        raise UnsafeSpecError.invalid(
            argument, f"the name or import path of a {names} subclass (a spec never resolves "
            "to an arbitrary callable)", path)
    return obj


def import_function(path: str, argument: str) -> Callable:
    """Resolves a function named by a spec (registered, or imported outside safe mode)."""
    obj = lookup(path)
    if obj is None:
        _refuse_in_safe_mode(path, argument)
        obj = import_internal(path) if is_import_path(path) else None
    if not callable(obj):
        raise UnsafeSpecError.invalid(argument, "a registered or importable function", path)
    return obj


#: File name endings that are data, not import paths (`"ppo.json"`, `"agent.keras"`).
_DATA_SUFFIXES = (".json", ".npz", ".h5", ".hdf5", ".keras", ".csv", ".txt", ".png")
#: Keys whose strings are restricted expressions (checked by `kerasrl.expressions`);
#: their dotted names are paths only when they start with another name than these.
_EXPRESSION_KEYS = ("function", "reward_shaping")
_EXPRESSION_NAMES = ("x", "ops", "np", "math", "random", "states", "actions", "reward",
                     "terminal", "next_states")
#: Keys whose strings are names or file-system paths, never resolved to code.
_NAME_KEYS = ("directory", "filename", "path", "name", "labels", "summaries", "level")


def check_file_content(value: Any, source: str, key: str = "spec") -> Any:
    """Refuses, in safe mode, the import paths in content read from a file.

    Every string of `value` (recursively) that has the form of a dotted import
    path, is not registered (`register`, `custom_objects=`) and is not a file
    name is refused, unless the caller trusts files (`safe_mode=False`).

    Args:
        value: The loaded JSON content.
        source: Where it was read from, for messages.
        key: Its key path, for messages.

    Returns:
        `value`, unchanged.

    Raises:
        UnsafeSpecError: naming the key, the path and how to allow it.
    """
    if _TRUSTED.get():
        return value
    if isinstance(value, Mapping):
        for item_key, item in value.items():
            if item_key not in _NAME_KEYS:
                check_file_content(item, source, f"{key}['{item_key}']")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_file_content(item, source, f"{key}[{index}]")
    elif is_import_path(value) and not value.endswith(_DATA_SUFFIXES) and lookup(value) is None:
        expression_key = any(key.endswith(f"['{name}']") for name in _EXPRESSION_KEYS)
        if not (expression_key and value.split(".")[0] in _EXPRESSION_NAMES):
            raise unsafe_path(key, value, source)
    return value


def load_json(path: str, argument: str = "spec") -> dict:
    """Reads a JSON spec file, raising `ArgumentError` with the path on failure."""
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, json.JSONDecodeError) as exc:
        raise ArgumentError.invalid(argument, "a readable JSON file", f"{path}: {exc}") from None
    if not isinstance(value, dict):
        raise ArgumentError.invalid(argument, "a JSON object", value)
    return check_file_content(value, f"file '{path}'", argument)


def is_json_path(value: Any) -> bool:
    return isinstance(value, str) and value.endswith(".json") and os.path.isfile(value)


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
            with reading_file():
                return resolve(
                    load_json(spec, kind), registry, kind, base_class, default_type,
                    first_argument, **kwargs,
                )
        key = spec.lower()
        if key in registry:
            return registry[key](**kwargs)
        obj = import_object(spec, base_class, f"{kind} type") if base_class else None
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
            with reading_file():
                return resolve(
                    {**load_json(type_, kind), **merged}, registry, kind, base_class,
                    default_type, first_argument,
                )
        if isinstance(type_, str) and type_.lower() not in registry:
            obj = import_object(type_, base_class, f"{kind} type") if base_class else None
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
