"""The fixtures of these tests; they and the helpers the tests import live in ``alertkit.py``
(a module of its own: every test folder has a ``conftest``, so ``from conftest import`` is ambiguous)."""

from alertkit import smtp, tls_files, command_script, source, item_vault  # noqa: F401
from webhookkit import webhook  # noqa: F401
