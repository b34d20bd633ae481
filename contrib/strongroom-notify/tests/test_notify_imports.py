"""strongroom-notify is written as a third party would: only the public API of strongroom."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import strongroom

ROOT = Path(__file__).resolve().parent.parent
#: Distributions the package declares and imports directly (pyproject.toml's dependencies).
DECLARED = {"attrs", "click"}


def imports(folder: Path) -> list[tuple[str, str, list[str]]]:
    """``(file, module, names)`` for every import statement of every .py file under folder."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(path.name, alias.name, []) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import; name the package"
                found.append((path.name, node.module, [alias.name for alias in node.names]))
    return found


def top(module: str) -> str:
    return module.split(".")[0]


class TestImports:
    def test_the_package_imports_only_the_public_api(self):
        """strongroom_notify imports `strongroom` (names in __all__ only), itself, the stdlib and its declared deps."""
        for file, module, names in imports(ROOT / "strongroom_notify"):
            if top(module) == "strongroom":
                assert module == "strongroom", f"{file} imports {module}, which is not the public API"
                unknown = set(names) - set(strongroom.__all__)
                assert not unknown, f"{file} imports {unknown} from strongroom, not in strongroom.__all__"
            else:
                assert (top(module) in sys.stdlib_module_names or top(module) in DECLARED
                        or top(module) == "strongroom_notify"), f"{file} imports {module}"

    def test_the_tests_import_only_the_public_api_and_the_test_kit(self):
        """The tests may also use strongroom.testing and pytest, and nothing else of strongroom."""
        for file, module, names in imports(ROOT / "tests"):
            if top(module) == "strongroom":
                assert module in ("strongroom", "strongroom.testing"), f"{file} imports {module}"
                if module == "strongroom":
                    assert set(names) <= set(strongroom.__all__), f"{file} imports {names}"
            else:
                assert (top(module) in sys.stdlib_module_names or top(module) in DECLARED | {"pytest"}
                        or top(module) == "strongroom_notify"), f"{file} imports {module}"

    def test_the_check_sees_an_internal_import(self, tmp_path):
        """The walk above does find an import of a strongroom internal module."""
        (tmp_path / "bad.py").write_text("from strongroom.vault import Vault\nimport strongroom.errors\n")
        assert [m for _, m, _ in imports(tmp_path)] == ["strongroom.vault", "strongroom.errors"]
