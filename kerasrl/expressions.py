"""Restricted expressions: the only code a spec or file may carry as text.

A `function` layer (`"ops.tanh(x) * 2.0"`) and an environment's
`reward_shaping` (`"reward - 0.01 * abs(actions)"`) are strings that come from
specs, JSON files and checkpoints, so they must not be able to run arbitrary
code. `compile_restricted` parses the text with `ast` and accepts only:

- constants, arithmetic, comparisons, boolean operators, `a if c else b`,
  subscripts and slices, tuples and lists, calls with keyword arguments;
- the names it is given (the variables and the allowed functions);
- attributes of an allowed module (`ops.tanh`, `math.sqrt`, `np.clip`), where
  each step of the chain must be an allowed attribute of that module, and a few
  array attributes and pure array methods of values (`shape`, `dtype`, `sum`,
  `mean`, `astype`, ... see `VALUE_ATTRIBUTES`).

Everything else (lambdas, comprehensions, assignments, names such as
`__import__` or `open`, any attribute starting with `_`, submodules outside
the allowed ones) is refused with `UnsafeSpecError` naming the expression.
The evaluation runs with no builtins. Compilation happens once; evaluating is
a plain `eval` of the checked code object.

Example:

>>> import math
>>> code = compile_restricted("2.0 * math.sqrt(x)", {"math": math}, ("x",), "expression")
>>> evaluate(code, {"math": math}, {"x": 4.0})
4.0
>>> compile_restricted("().__class__", {}, (), "expression")
Traceback (most recent call last):
...
kerasrl.errors.UnsafeSpecError: Invalid argument 'expression': expected a restricted expression (no private attribute '__class__'), received '().__class__'.
"""

from __future__ import annotations

import ast
import types
from collections.abc import Iterable, Mapping
from typing import Any

from kerasrl.errors import UnsafeSpecError

_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.IfExp, ast.Call,
    ast.Name, ast.Load, ast.Constant, ast.Attribute, ast.Subscript, ast.Slice, ast.Tuple,
    ast.List, ast.keyword, ast.operator, ast.unaryop, ast.cmpop, ast.boolop,
)
#: Attributes allowed on values (arrays, tensors, numbers): data and pure array methods.
VALUE_ATTRIBUTES = frozenset({
    "shape", "dtype", "ndim", "size", "T", "real", "imag", "sum", "mean", "max", "min",
    "prod", "std", "var", "any", "all", "argmax", "argmin", "item", "astype", "reshape",
    "flatten", "ravel", "clip", "round", "copy", "squeeze",
})


def _module_attribute(module: types.ModuleType, name: str) -> Any:
    """The attribute `name` of an allowed module, or None where it is not allowed.

    Allowed: functions, classes and numbers of the module, and its own
    submodules (`keras.ops.nn`; of numpy only `numpy.linalg`). Numpy's file,
    memory and build tools are never allowed.
    """
    if name.startswith("_") or not hasattr(module, name):
        return None
    value = getattr(module, name)
    numpy = module.__name__.split(".")[0] == "numpy"
    if isinstance(value, types.ModuleType):
        inside = value.__name__.startswith(module.__name__ + ".")
        return value if inside and (not numpy or value.__name__ == "numpy.linalg") else None
    if numpy and name in _NUMPY_DENIED:
        return None
    return value if callable(value) or isinstance(value, (int, float)) else None


#: Numpy names that read or write files or memory, or expose the build system.
_NUMPY_DENIED = frozenset({
    "load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt",
    "fromfile", "fromregex", "memmap", "frombuffer", "ctypeslib", "lib", "f2py", "testing",
    "show_config", "show_runtime", "info", "source", "lookfor", "who", "get_include",
    "DataSource", "recfromcsv", "recfromtxt", "tofile",
})


def compile_restricted(expression: Any, namespace: Mapping[str, Any],
                       variables: Iterable[str], argument: str,
                       where: str | None = None) -> types.CodeType:
    """Checks and compiles a restricted expression.

    Args:
        expression: The text.
        namespace: The allowed names and their values (functions, constants,
            modules).
        variables: Names of the variables given at evaluation.
        argument: Argument name for messages (e.g. `'function'`).
        where: Optional context for messages.

    Returns:
        A code object for `evaluate`.

    Raises:
        UnsafeSpecError: for a syntax error or anything outside the
            restricted language.
    """
    if not isinstance(expression, str):
        raise UnsafeSpecError.invalid(argument, "an expression string", expression, where)
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise UnsafeSpecError.invalid(
            argument, f"a valid expression ({exc.msg})", expression, where) from None
    allowed = set(namespace) | set(variables)
    for node in ast.walk(tree):
        problem = None
        if not isinstance(node, _ALLOWED_NODES):
            problem = f"no {type(node).__name__} construct"
        elif isinstance(node, ast.Name) and node.id not in allowed:
            problem = f"only the names {sorted(allowed)}, not '{node.id}'"
        elif isinstance(node, ast.Attribute):
            problem = _attribute_problem(node, namespace)
        if problem is not None:
            raise UnsafeSpecError.invalid(
                argument, f"a restricted expression ({problem})", expression, where)
    return compile(tree, f"<{argument}>", "eval")


def _attribute_problem(node: ast.Attribute, namespace: Mapping[str, Any]) -> str | None:
    if node.attr.startswith("_"):
        return f"no private attribute '{node.attr}'"
    chain = [node.attr]
    base = node.value
    while isinstance(base, ast.Attribute):
        if base.attr.startswith("_"):
            return f"no private attribute '{base.attr}'"
        chain.append(base.attr)
        base = base.value
    root = namespace.get(base.id) if isinstance(base, ast.Name) else None
    if not isinstance(root, types.ModuleType):
        return None if node.attr in VALUE_ATTRIBUTES else (
            f"only the attributes {sorted(VALUE_ATTRIBUTES)} of values, not '{node.attr}'")
    value: Any = root
    for name in reversed(chain):
        if not isinstance(value, types.ModuleType):
            return None if name in VALUE_ATTRIBUTES else f"no attribute '{name}' here"
        value = _module_attribute(value, name)
        if value is None:
            return f"'{name}' is not an allowed function of that module"
    return None


def evaluate(code: types.CodeType, namespace: Mapping[str, Any],
             variables: Mapping[str, Any]) -> Any:
    """Evaluates a code object from `compile_restricted` (no builtins)."""
    return eval(code, {"__builtins__": {}}, {**namespace, **variables})  # noqa: S307


__all__ = ["compile_restricted", "evaluate", "VALUE_ATTRIBUTES"]
