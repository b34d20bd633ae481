"""The package and its tests import only the standard library, their declared dependencies,
strongroom's public API (``strongroom.__all__``), ``strongroom.testing`` and the package itself."""

from __future__ import annotations

from pathlib import Path

from strongroom.testing import PublicImportCheck

CHECK = PublicImportCheck(Path(__file__).resolve().parent.parent, "strongroom_pkcs11", import_names={"python_pkcs11": "pkcs11"})


def test_every_import_is_allowed():
    """No module of the package or of its tests imports strongroom's internals or anything undeclared."""
    found = CHECK.problems()
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
        assert CHECK.forbidden_imports(source, in_tests=in_tests), source
    good = ["from strongroom import WrappingKey, KeyNotAvailable", "import os", "import pkcs11", "import attrs",
            "from strongroom_pkcs11.token import TokenRef", "x = strongroom.SecretProvider"]
    for source in good:
        assert not CHECK.forbidden_imports(source, in_tests=False), source
