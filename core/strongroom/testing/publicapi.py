"""Whether a plugin package is written as a third party would: :class:`PublicImportCheck`.

A plugin package (and a contrib package of strongroom's own) may import the standard
library, the distributions its ``pyproject.toml`` declares (its dependencies and extras),
itself, and of strongroom only the public API: ``strongroom`` (names in
``strongroom.__all__``) and, in its tests, ``strongroom.testing`` (names in its
``__all__``).  The check reads the source (``ast``), imports nothing of the package.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path
from typing import Mapping

import attrs

__all__ = ["PublicImportCheck"]


@attrs.frozen
class PublicImportCheck:
    """The import rules of the package ``package`` whose project folder is ``root`` (holding
    ``pyproject.toml``, the package folder and ``tests/``); ``import_names`` maps a
    distribution's name (lower case, ``-`` as ``_``) to its import name where they differ."""

    root: Path = attrs.field(converter=Path)
    package: str
    import_names: Mapping[str, str] = attrs.field(factory=dict)

    def declared_dependencies(self) -> set[str]:
        """Import names of the distributions pyproject.toml depends on (tests' extras included)."""
        project = tomllib.loads((self.root / "pyproject.toml").read_text())["project"]
        wanted = list(project["dependencies"])
        for extra in project.get("optional-dependencies", {}).values():
            wanted += extra
        names = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].replace("-", "_").lower() for spec in wanted}
        return {self.import_names.get(name, name) for name in names}

    def forbidden_imports(self, source: str, *, in_tests: bool) -> list[str]:
        """What ``source`` imports that a third-party plugin may not (one line for each)."""
        import strongroom

        # the names strongroom.testing makes public: the package is loaded (this module is in
        # it, and a package runs before its modules), and importing it here would be a circle
        testing_names = set(sys.modules["strongroom.testing"].__all__)
        allowed_packages = self.declared_dependencies() - {"strongroom"}
        test_modules = {p.stem for p in (self.root / "tests").glob("*.py")} if in_tests else set()
        problems: list[str] = []

        def check(module: str, names: list[str], line: int) -> None:
            top = module.split(".")[0]
            if module == "strongroom":
                problems.extend(f"{line}: strongroom.{n} is not public" for n in names if n not in strongroom.__all__)
            elif module == "strongroom.testing" and in_tests:
                problems.extend(f"{line}: strongroom.testing.{n} is not public" for n in names
                                if n not in testing_names)
            elif (top in sys.stdlib_module_names or top == self.package or top in allowed_packages
                  or top in test_modules):
                return
            else:
                problems.append(f"{line}: import of {module}")

        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    check(alias.name, [], node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level > 1 or (node.level == 1 and in_tests):
                    problems.append(f"{node.lineno}: relative import outside the package")
                elif node.level == 0:
                    check(node.module or "", [alias.name for alias in node.names], node.lineno)
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "strongroom" and node.attr not in strongroom.__all__
                  and node.attr != "testing" and not node.attr.startswith("__")):
                problems.append(f"{node.lineno}: strongroom.{node.attr} is not public")
        return problems

    def python_files(self) -> list[Path]:
        """The package's modules and its tests' modules."""
        return sorted((self.root / self.package).glob("*.py")) + sorted((self.root / "tests").glob("*.py"))

    def problems(self) -> dict[str, list[str]]:
        """Every forbidden import of the package and its tests, by file (relative to ``root``)."""
        found = {}
        for path in self.python_files():
            lines = self.forbidden_imports(path.read_text(), in_tests=path.parent.name == "tests")
            if lines:
                found[str(path.relative_to(self.root))] = lines
        return found
