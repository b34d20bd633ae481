"""The fixtures of these tests; they and the helpers the tests import live in ``softkit.py``
(a module of its own: every test folder has a ``conftest``, so ``from conftest import`` is ambiguous)."""

from softkit import world, guard  # noqa: F401
