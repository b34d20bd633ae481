"""The package and its tests import only the standard library, their declared dependencies,
strongroom's public API (``strongroom.__all__``), ``strongroom.testing`` and the package itself."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import strongroom
import strongroom.testing

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "strongroom_pkcs11"
#: Distributions whose import name differs from their name.
IMPORT_NAMES = {"python_pkcs11": "pkcs11"}


def declared_dependencies() -> set[str]:
    """Import names of the distributions pyproject.toml depends on (tests' extras included)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        wanted += extra
    names = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].replace("-", "_").lower() for spec in wanted}
    return {IMPORT_NAMES.get(name, name) for name in names}


def forbidden_imports(source: str, *, in_tests: bool) -> list[str]:
    """What ``source`` imports that a third-party plugin may not (one line for each)."""
    allowed_packages = declared_dependencies() - {"strongroom"}
    test_modules = {p.stem for p in (ROOT / "tests").glob("*.py")} if in_tests else set()
    problems = []

    def check(module: str, names: list[str], line: int) -> None:
        top = module.split(".")[0]
        if module == "strongroom":
            problems.extend(f"{line}: strongroom.{n} is not public" for n in names if n not in strongroom.__all__)
        elif module == "strongroom.testing" and in_tests:
            problems.extend(f"{line}: strongroom.testing.{n} is not public" for n in names
                            if n not in strongroom.testing.__all__)
        elif top in sys.stdlib_module_names or top == PACKAGE or top in allowed_packages or top in test_modules:
            return
        else:
            problems.append(f"{line}: import of {module}")

    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check(alias.name, [], node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1 or (node.level == 1 and in_tests):
                problems.append(f"{node.lineno}: relative import outside the package")
            elif node.level == 0:
                check(node.module or "", [alias.name for alias in node.names], node.lineno)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "strongroom"
              and node.attr not in strongroom.__all__ and node.attr != "testing" and not node.attr.startswith("__")):
            problems.append(f"{node.lineno}: strongroom.{node.attr} is not public")
    return problems


def python_files() -> list[Path]:
    return sorted((ROOT / PACKAGE).glob("*.py")) + sorted((ROOT / "tests").glob("*.py"))


def test_every_import_is_allowed():
    """No module of the package or of its tests imports strongroom's internals or anything undeclared."""
    found = {}
    for path in python_files():
        problems = forbidden_imports(path.read_text(), in_tests=path.parent.name == "tests")
        if problems:
            found[str(path.relative_to(ROOT))] = problems
    assert not found, found


def test_the_check_catches_what_it_must():
    """Internals, non-public names, undeclared packages and strongroom.testing outside tests are reported."""
    bad = {
        "from strongroom.vault import Vault": False,
        "import strongroom.errors": False,
        "from strongroom import errors": False,
        "import strongroom_postgres": False,
        "import PyKCS11": False,
        "from strongroom.testing import Cli": False,
        "from strongroom.testing import strongroom_cli": True,
        "x = strongroom.vault": False,
    }
    for source, in_tests in bad.items():
        assert forbidden_imports(source, in_tests=in_tests), source
    good = ["from strongroom import WrappingKey, KeyNotAvailable", "import os", "import pkcs11", "import attrs",
            "from strongroom_pkcs11.token import TokenRef", "x = strongroom.SecretProvider"]
    for source in good:
        assert not forbidden_imports(source, in_tests=False), source
