"""Dependencies between kerasrl's packages point one way.

`kerasrl.execution` (runner, recorder, pretraining) drives agents, so it may
import `kerasrl.agents`; agents must never depend on execution. What agents
build on (`kerasrl.networks`, `kerasrl.backend`) must depend on neither.

The check reads the source with `ast` (nothing is imported, so it runs the
same on every backend). It looks at every `import` and `from ... import`
statement, at any nesting level (also inside functions and classes, where
lazy imports live), with relative imports resolved, and at every string
constant other than a docstring (import paths resolved at run time, e.g.
with `registry.import_internal` or `importlib.import_module`). Docstrings
may mention any module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kerasrl"

#: (sources, forbidden packages): the files under each path (relative to
#: `kerasrl/`) may not name a module of the forbidden packages.
RULES = (
    ("agents", ("kerasrl.execution",)),
    ("networks.py", ("kerasrl.agents", "kerasrl.execution")),
    ("backend", ("kerasrl.agents", "kerasrl.execution")),
)


def _module_name(path: Path) -> str:
    """The dotted module name of a file under `kerasrl/`."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes of a module and its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                found.add(id(body[0].value))
    return found


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The absolute names of the modules (or module members) an import statement names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = package[: len(package) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module
    # `from kerasrl import execution` names the module `kerasrl.execution`.
    return [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]


def violations(source: str, module: str, forbidden: tuple[str, ...],
               is_package: bool = False, filename: str = "<source>") -> list[str]:
    """Where `source` (the code of `module`) names a module of a `forbidden` package.

    Args:
        source: Python source code.
        module: Its dotted module name (to resolve relative imports).
        forbidden: Dotted package names, e.g. `('kerasrl.execution',)`.
        is_package: Whether the source is a package's `__init__.py`.
        filename: Name used in the messages.

    Returns:
        One message (`file:line: ...`) per offending import or string constant.
    """
    tree = ast.parse(source, filename=filename)
    docstrings = _docstrings(tree)
    pattern = re.compile(
        r"(?<![\w.])(?:" + "|".join(re.escape(name) for name in forbidden) + r")(?![\w])"
    )
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in _imported(node, module, is_package):
                if any(name == package or name.startswith(package + ".")
                       for package in forbidden):
                    found.append(f"{filename}:{node.lineno}: imports {name}")
                    break
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings and pattern.search(node.value):
            found.append(f"{filename}:{node.lineno}: string {node.value!r}")
    return found


def _files(relative: str) -> list[Path]:
    path = PACKAGE / relative
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


@pytest.mark.parametrize(("relative", "forbidden"), RULES, ids=[rule[0] for rule in RULES])
def test_no_dependency_back(relative, forbidden):
    files = _files(relative)
    assert files and all(file.is_file() for file in files), f"no sources at kerasrl/{relative}"
    found = []
    for file in files:
        found += violations(file.read_text(encoding="utf-8"), _module_name(file), forbidden,
                            is_package=file.name == "__init__.py",
                            filename=file.relative_to(PACKAGE.parent).as_posix())
    assert not found, (
        f"kerasrl/{relative} must not depend on {', '.join(forbidden)}:\n" + "\n".join(found)
    )


def test_agents_are_checked():
    """The rules cover the files that exist (no silent pass on a moved folder)."""
    names = {file.name for file in _files("agents")}
    assert {"__init__.py", "agent.py"} <= names
    assert {"__init__.py", "jax.py", "tensorflow.py", "torch.py"} <= {
        file.name for file in _files("backend")}


VIOLATING = '''
"""Docstrings may mention kerasrl.execution.runner."""
import kerasrl.execution
from kerasrl.execution.runner import Runner
from kerasrl import execution
from ..execution import pretrain
from . import io

PATH = "kerasrl.execution.recorder.create_recorder"


class Driver:
    """The class docstring may mention kerasrl.execution too."""

    def run(self, name):
        """So may a method's docstring (kerasrl.execution)."""
        from kerasrl.execution.drivers import fit

        return f"kerasrl.execution.{name}", fit
'''


def test_checker_finds_every_form():
    found = violations(VIOLATING, "kerasrl.agents.agent", ("kerasrl.execution",))
    lines = sorted(int(message.split(":")[1]) for message in found)
    # Every import of execution (top level, relative, in a method) and every
    # non-docstring string naming it; docstrings and `from . import io` pass.
    assert lines == [3, 4, 5, 6, 9, 17, 19], found


def test_checker_allows_similar_names():
    source = 'import kerasrl.executions\nNAME = "my_kerasrl.execution_log"\nfrom kerasrl import agents\n'
    assert violations(source, "kerasrl.backend.jax", ("kerasrl.execution",)) == []
    assert violations(source, "kerasrl.backend.jax", ("kerasrl.agents",)) == [
        "<source>:3: imports kerasrl.agents"]
