"""The hook contract is guarded: every hook is documented, referenced and tested.

Every ``strongroom_*`` hook in ``strongroom.hookspecs`` must be a marked specification
with a docstring describing each parameter, have a section in ``docs/plugins.md`` whose
heading is its exact signature, and be named by at least one test module.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pluggy
import pytest

from strongroom import hookspecs
from strongroom.markers import PROJECT_NAME

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins.md"
TESTS = ROOT / "tests"
HEADING = re.compile(r"^#{2,4} `(strongroom_\w+)\(([^)]*)\)`\s*$", re.MULTILINE)

HOOKS = {
    name: function
    for name, function in vars(hookspecs).items()
    if name.startswith(f"{PROJECT_NAME}_") and inspect.isfunction(function)
}


def signature_text(name: str) -> str:
    return f"{name}({', '.join(inspect.signature(HOOKS[name]).parameters)})"


def documented_signatures() -> dict[str, str]:
    return {name: f"{name}({params})" for name, params in HEADING.findall(DOCS.read_text())}


def test_hooks_are_found():
    """The scan finds the hook specifications at all."""
    assert "strongroom_register_workloads" in HOOKS


@pytest.mark.parametrize("name", sorted(HOOKS))
class TestEachHook:
    def test_is_a_marked_specification(self, name):
        """Each strongroom_* function in hookspecs.py is marked with strongroom.hookspec."""
        manager = pluggy.PluginManager(PROJECT_NAME)
        assert manager.parse_hookspec_opts(hookspecs, name) is not None

    def test_docstring_describes_every_parameter(self, name):
        """The docstring says what the hook is for and documents each parameter."""
        doc = inspect.getdoc(HOOKS[name]) or ""
        assert doc.strip(), f"{name} has no docstring"
        parameters = inspect.signature(HOOKS[name]).parameters
        missing = [p for p in parameters if f":param {p}:" not in doc]
        assert not missing, f"{name} does not document: {', '.join(missing)}"

    def test_has_a_reference_section_with_its_signature(self, name):
        """docs/plugins.md has a heading that is the hook's exact signature."""
        documented = documented_signatures()
        assert name in documented, f"docs/plugins.md has no section '### `{signature_text(name)}`'"
        assert documented[name] == signature_text(name)


def test_reference_has_no_stale_sections():
    """Every hook heading in docs/plugins.md names a hook that exists."""
    stale = sorted(set(documented_signatures()) - set(HOOKS))
    assert not stale, f"docs/plugins.md documents hooks that do not exist: {', '.join(stale)}"


def test_every_hook_has_a_test():
    """Each hook is named in at least one test module besides this one."""
    this = Path(__file__).resolve()
    sources = [path.read_text() for path in TESTS.rglob("test_*.py") if path.resolve() != this]
    untested = [
        name
        for name in sorted(HOOKS)
        if not any(re.search(rf"\b{name}\b", source) for source in sources)
    ]
    assert not untested, f"hooks without a test: {', '.join(untested)}"
