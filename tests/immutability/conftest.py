"""The fixtures of these tests; they and the helpers the tests import live in ``lockkit.py``
(a module of its own: every test folder has a ``conftest``, so ``from conftest import`` is ambiguous)."""

from lockkit import lock_bucket, plain_bucket  # noqa: F401
