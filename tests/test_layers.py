"""The layers of the code stay a line: nothing imports upward, no import circles, and
plugins use only the public API.

Every ``import`` counts, wherever it is: at module level, inside a function, or under
``TYPE_CHECKING``.  The layers, bottom to top (``docs/architecture.md``, "Layers"), each
a list of module prefixes; a module may import modules of its own layer and of the
layers below it, and modules of one layer must not import each other in a circle:

- **records**: errors, markers, the version, secrets, the allocator, C library calls, the home folder,
  the user's configuration, registries, the vault's records, ``policy`` (schedules,
  retention rules and the policy record: pure functions of their inputs), and
  ``processes`` (child processes tied to strongroom, process identities);
- **storage**: named objects on any fsspec filesystem, and storage backends;
- **repository**: encrypted blobs, packs, the index, keys and leases;
- **catalog**: recovery-point trees and entries, what a workload yields (``sources``)
  and what a restore reports (``results``);
- **engine**: backup, restore, verify, garbage collection;
- **workload API**: the workload base class and the contexts a workload is given;
- **services**: the vault's operations;
- **plugins**: the hook specifications and the plugin host;
- **facade**: the Vault;
- **public API**: the ``strongroom`` package itself;
- **front ends**: the command line, the test kit and the vault server.

Plugins (``plugins/strongroom_*`` and every ``contrib/*`` package, their tests
included) may import the standard library, third-party packages, ``strongroom`` (names
in ``strongroom.__all__`` only), ``strongroom.testing`` and their own package.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import strongroom

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("records", ("strongroom.errors", "strongroom.markers", "strongroom.version", "strongroom.secrets",
                 "strongroom.allocator", "strongroom.libc", "strongroom.bulkcopy", "strongroom.home", "strongroom.config", "strongroom.registry",
                 "strongroom.models", "strongroom.policy", "strongroom.processes", "strongroom.converters")),
    ("storage", ("strongroom.storage",)),
    ("repository", ("strongroom.repository",)),
    ("catalog", ("strongroom.catalog", "strongroom.sources", "strongroom.results")),
    ("engine", ("strongroom.engine",)),
    ("workload API", ("strongroom.workload", "strongroom.contexts")),
    ("services", ("strongroom.services",)),
    ("plugins", ("strongroom.hookspecs", "strongroom.plugins")),
    ("facade", ("strongroom.vault",)),
    ("public API", ("strongroom",)),
    ("front ends", ("strongroom.cli", "strongroom.__main__", "strongroom.testing", "strongroom.server")),
]

#: (importing module, imported module) pairs allowed to point upward, each with its reason.
#: Keep it empty: where a lower layer must call back up, it takes a callable or a protocol.
EXCEPTIONS: dict[tuple[str, str], str] = {}


# --- reading imports -----------------------------------------------------------------------


def module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str, is_package: bool) -> list[tuple[str, int, list[str]]]:
    """(imported module, line, names imported from it) for every import statement in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno, [alias.name for alias in node.names]))
    return found


def core_modules() -> dict[str, Path]:
    return {module_name(p, CORE): p for p in sorted((CORE / "strongroom").rglob("*.py"))}


def resolve(target: str, names: list[str], known: dict[str, Path]) -> list[str]:
    """The modules an import statement depends on: ``from pkg import sub`` on ``pkg.sub``
    (and on ``pkg`` itself only for names that are not submodules)."""
    submodules = [f"{target}.{name}" for name in names if f"{target}.{name}" in known]
    return submodules if names and len(submodules) == len(names) else [target, *submodules]


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return best[1] if best else None


def core_graph() -> dict[str, dict[str, int]]:
    """module -> {imported core module: line} over every import in core/strongroom."""
    known = core_modules()
    graph: dict[str, dict[str, int]] = {}
    for module, path in known.items():
        edges: dict[str, int] = {}
        for target, line, names in imports_of(path, module, path.name == "__init__.py"):
            for imported in resolve(target, names, known):
                if imported in known and imported != module:
                    edges.setdefault(imported, line)
        graph[module] = edges
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# --- the rules -----------------------------------------------------------------------------


class TestCoreLayers:
    def test_every_core_module_has_a_layer(self):
        """Every module of core/strongroom belongs to one of the layers."""
        assert [m for m in core_modules() if layer_of(m) is None] == []

    def test_nothing_imports_upward(self):
        """No core module imports a module of a higher layer, at any level of the file."""
        graph = core_graph()
        upward = []
        for module, edges in sorted(graph.items()):
            for imported, line in sorted(edges.items()):
                if layer_of(imported) > layer_of(module) and (module, imported) not in EXCEPTIONS:
                    upward.append(f"{module} (layer {LAYERS[layer_of(module)][0]}) imports {imported}"
                                  f" (layer {LAYERS[layer_of(imported)][0]}) at line {line}")
        assert upward == [], "imports that point up a layer:\n" + "\n".join(upward)

    def test_no_import_circles(self):
        """No set of core modules imports each other in a circle."""
        assert circles(core_graph()) == []

    def test_exceptions_are_still_needed(self):
        """Every listed exception names an import that exists."""
        graph = core_graph()
        assert [pair for pair in EXCEPTIONS if pair[1] not in graph.get(pair[0], {})] == []


def plugin_packages() -> list[tuple[str, Path, list[Path]]]:
    """(package name, folder, files to check) of every built-in and contrib plugin."""
    found = []
    for folder in sorted((ROOT / "plugins").glob("strongroom_*/")):
        found.append((folder.name, folder, sorted(folder.rglob("*.py"))))
    for dist in sorted((ROOT / "contrib").glob("*")):
        for folder in sorted(p.parent for p in dist.glob("strongroom_*/__init__.py")):
            files = sorted(folder.rglob("*.py")) + sorted((dist / "tests").rglob("*.py"))
            found.append((folder.name, folder, files))
    return found


def stdlib_or_third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top != "strongroom" and not top.startswith("strongroom_")


@pytest.mark.parametrize("package, folder, files", plugin_packages(), ids=[p[0] for p in plugin_packages()])
def test_plugin_imports_only_the_public_api(package, folder, files):
    """A plugin imports only strongroom's public names, strongroom.testing and itself."""
    public = set(strongroom.__all__)
    wrong = []
    for path in files:
        base = folder.parent if path.is_relative_to(folder) else path.parent
        module = module_name(path, base) if path.is_relative_to(folder) else path.stem
        for target, line, names in imports_of(path, module, path.name == "__init__.py"):
            where = f"{path.relative_to(ROOT)}:{line}"
            if target == "strongroom":
                wrong += [f"{where}: strongroom.{name} is not public" for name in names if name not in public]
            elif target == "strongroom.testing" or target.startswith("strongroom.testing."):
                continue
            elif target == package or target.startswith(package + "."):
                continue
            elif not stdlib_or_third_party(target):
                wrong.append(f"{where}: imports {target}")
    assert wrong == [], "imports beyond the public API:\n" + "\n".join(wrong)


def test_there_are_contrib_packages():
    """contrib/ holds at least two packages, each with a pyproject.toml, a README and tests."""
    dists = [d for d in sorted((ROOT / "contrib").glob("*")) if d.is_dir()]
    assert len(dists) >= 2
    for dist in dists:
        assert (dist / "pyproject.toml").is_file() and (dist / "README.md").is_file(), dist
        assert list((dist / "tests").glob("test_*.py")), dist
