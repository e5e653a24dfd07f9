"""The code in `docs/` runs as documented.

Every fenced block whose info string is exactly `python` is executed: the
blocks of one page run in order, in-process, in one fresh namespace per page
(so a later block can use names from an earlier one), inside a temporary
working directory. Blocks marked `python no-run` (long trainings, fragments)
and non-Python blocks (`bash`, `json`, `text`) are not executed.
"""

from __future__ import annotations

import re
import time
import traceback
from pathlib import Path

import keras
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

#: Fence info strings allowed in the docs; anything else is probably a typo
#: that would silently skip a snippet.
EXECUTED = "python"
INFO_STRINGS = {EXECUTED, "python no-run", "bash", "json", "text", ""}

#: Pages written with runnable snippets: each must exist and execute at least
#: one block. (`performance.md` is maintained separately.)
PAGES_WITH_CODE = (
    "index.md",
    "getting-started.md",
    "agents.md",
    "generic-agent.md",
    "specs.md",
    "networks.md",
    "masking.md",
    "distributions.md",
    "parameters.md",
    "environments.md",
    "runner.md",
    "backends.md",
    "errors.md",
    "algorithms/ppo.md",
    "algorithms/vpg.md",
    "algorithms/ac.md",
    "algorithms/trpo.md",
    "saving.md",
    "record-and-pretrain.md",
    "parallel.md",
    "security.md",
    "migrating-from-tensorforce.md",
    "recurrent.md",
    "keras-habits.md",
)

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^`\n]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def _pages() -> list[str]:
    return sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))


def _blocks(page: str) -> list[tuple[str, str, int, str]]:
    """`(info, code, line, indent)` of every fenced block of a page, in order."""
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(
            (match.group("info").strip(), match.group("code"), line, match.group("indent"))
        )
    return blocks


def test_docs_folder_has_the_pages():
    pages = set(_pages())
    missing = [page for page in PAGES_WITH_CODE if page not in pages]
    assert not missing, f"missing docs pages: {missing}"


@pytest.mark.parametrize("page", PAGES_WITH_CODE)
def test_page_has_executed_snippets(page):
    if not (DOCS / page).is_file():
        pytest.fail(f"docs/{page} does not exist")
    executed = [b for b in _blocks(page) if b[0] == EXECUTED]
    assert executed, f"docs/{page} has no executed ```python block"


@pytest.mark.parametrize("page", _pages())
def test_fences_are_well_formed(page):
    """Known info strings only, and no indented python fence (it would not run)."""
    text = (DOCS / page).read_text(encoding="utf-8")
    assert text.count("```") % 2 == 0, f"docs/{page} has an unclosed code fence"
    for info, _, line, indent in _blocks(page):
        assert info in INFO_STRINGS, (
            f"docs/{page}:{line}: unknown fence info string {info!r} "
            f"(use one of {sorted(INFO_STRINGS)})"
        )
        assert not (indent and info == EXECUTED), (
            f"docs/{page}:{line}: a ```python block must start at column 0 to be executed"
        )


_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: str) -> set[str]:
    text = _FENCE.sub("", (DOCS / page).read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", _pages())
def test_links_resolve(page):
    """Relative links point to existing pages and headings."""
    text = _FENCE.sub("", (DOCS / page).read_text(encoding="utf-8"))
    for match in _LINK.finditer(text):
        target = match.group("target")
        if re.match(r"^[a-z]+:", target):
            continue  # external
        path, _, anchor = target.partition("#")
        resolved = ((DOCS / page).parent / path).resolve() if path else (DOCS / page)
        name = resolved.relative_to(DOCS.resolve()).as_posix() if path else page
        if name == "performance.md" and not resolved.exists():
            continue  # written separately; checked once it exists
        assert resolved.is_file(), f"docs/{page}: broken link {target!r}"
        if anchor:
            assert anchor in _anchors(name), f"docs/{page}: no heading for {target!r}"


@pytest.mark.parametrize("page", _pages())
def test_page_snippets_run(page, tmp_path, monkeypatch):
    blocks = [b for b in _blocks(page) if b[0] == EXECUTED]
    if not blocks:
        pytest.skip(f"docs/{page} has no executed snippets")
    monkeypatch.chdir(tmp_path)
    keras.backend.clear_session()
    namespace: dict = {"__name__": "__main__"}
    for _, code, line, _ in blocks:
        start = time.perf_counter()
        try:
            exec(compile(code, f"docs/{page}:{line}", "exec"), namespace)  # noqa: S102
        except Exception:  # noqa: BLE001 - any failure of a documented snippet
            pytest.fail(
                f"snippet at docs/{page}:{line} failed:\n{traceback.format_exc()}",
                pytrace=False,
            )
        print(f"docs/{page}:{line}: {time.perf_counter() - start:.2f} s")
