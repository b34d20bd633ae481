"""Secrets: values that never show themselves, and references resolved at run time.

A :class:`Secret` is a byte string whose ``repr`` and ``str`` say only that it is one.

A *secret reference* is ``SCHEME:REST``: ``env:PGPASS``, ``file:/etc/strongroom/pg.pass``,
or a plugin's scheme (``pkcs11:...``).  What strongroom stores (an item's source, a
setting) is the reference, never the secret: the secret is read each time it is needed,
by the :class:`SecretProvider` registered for the scheme through the
``strongroom_register_secret_providers`` hook, and handed on as a :class:`Secret`.  A
:class:`SecretResolver` holds the registered providers:

- :meth:`SecretResolver.check` is for when a reference is given (``--password-ref``):
  it refuses a malformed reference or an unknown scheme and returns the reference to
  store (the provider may make it canonical: ``file:`` makes the path absolute).
  Nothing is read.
- :meth:`SecretResolver.resolve` reads the secret; it refuses an empty one.

Errors, one line each and never holding a secret:
:class:`~strongroom.errors.InvalidSecretReference` (exit 35) for a reference that is not
``SCHEME:REST`` (the text is not echoed: it may be the secret itself, given by mistake)
or names an unknown scheme (the known ones are listed);
:class:`~strongroom.errors.SecretNotAvailable` (exit 36) for a secret that cannot be read
(the reference and the reason are named).  An exception other than a
:class:`~strongroom.errors.StrongroomError` raised by a provider becomes a
``SecretNotAvailable`` naming the provider and the exception's type only (its message
might hold the secret).

The built-in providers, registered by the essential ``keys`` plugin:

``env:NAME``
    The value of environment variable ``NAME``; an unset variable is refused.
``file:PATH``
    The content of the file at ``PATH`` (made absolute when the reference is checked),
    with one trailing newline (``\\n`` or ``\\r\\n``) stripped.  A file that is missing,
    unreadable, not a regular file or over 64 KiB is refused.  A file that group or others
    may read or write is still used (a refusal would stop every scheduled backup), but
    every read logs one warning naming the file and the ``chmod`` that fixes it, as ssh
    warns of an unprotected private key and as the local key store does.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from typing import ClassVar, Iterable

import attrs

from .errors import InvalidSecretReference, SecretNotAvailable, StrongroomError
from .markers import hookimpl
from .registry import Registry

log = logging.getLogger(__name__)

#: The largest secret file the ``file:`` provider reads.
MAX_SECRET_FILE = 64 * 1024

_REFERENCE = re.compile(r"([a-z][a-z0-9_-]*):(.+)", re.DOTALL)


@attrs.frozen(repr=False, eq=True)
class Secret:
    """A secret byte string; ``repr`` and ``str`` show only that it is one."""

    value: bytes

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__


class SecretProvider:
    """Base class of secret providers: what ``strongroom_register_secret_providers`` registers.

    Subclasses set :attr:`scheme` and :attr:`description` and implement :meth:`resolve`;
    they may override :meth:`canonical`.  A provider is registered once per plugin host
    and may be called from several threads.
    """

    #: the scheme of the references it resolves (``env`` for ``env:NAME``)
    scheme: ClassVar[str] = ""
    #: one line for ``strongroom plugins`` and messages
    description: ClassVar[str] = ""

    def canonical(self, rest: str) -> str:
        """The ``REST`` of the reference to store, for a ``REST`` the user gave.

        Called when a reference is given, not when it is resolved; raise
        :class:`~strongroom.errors.InvalidSecretReference` with ``reason=`` for one that can
        never resolve.  The default keeps it as it is.
        """
        return rest

    def resolve(self, rest: str) -> Secret:
        """The secret that ``SCHEME:REST`` names, read now.

        Raise :class:`~strongroom.errors.SecretNotAvailable` with ``reason=`` (one line,
        no secret in it) when it cannot be read.
        """
        raise NotImplementedError(f"secret provider {self.scheme!r} does not implement resolve")


class EnvSecretProvider(SecretProvider):
    """``env:NAME``: the value of an environment variable."""

    scheme: ClassVar[str] = "env"
    description: ClassVar[str] = "the value of environment variable NAME"

    def canonical(self, rest: str) -> str:
        if "=" in rest or "\0" in rest:
            raise InvalidSecretReference(reason="env: takes the name of an environment variable")
        return rest

    def resolve(self, rest: str) -> Secret:
        value = os.environ.get(rest)
        if value is None:
            raise SecretNotAvailable(reason=f"environment variable {rest} is not set")
        return Secret(os.fsencode(value))


class FileSecretProvider(SecretProvider):
    """``file:PATH``: the content of a file, one trailing newline stripped."""

    scheme: ClassVar[str] = "file"
    description: ClassVar[str] = "the content of file PATH, one trailing newline stripped"

    def canonical(self, rest: str) -> str:
        if "\0" in rest:
            raise InvalidSecretReference(reason="file: takes a path")
        return os.path.abspath(os.path.expanduser(rest))

    def resolve(self, rest: str) -> Secret:
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)  # a FIFO must not block
        try:
            fd = os.open(rest, flags)
        except OSError as exc:
            raise SecretNotAvailable(reason=f"cannot read {rest}: {exc.strerror or exc}") from None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise SecretNotAvailable(reason=f"{rest} is not a regular file")
            _warn_if_unprotected(rest, stat.S_IMODE(mode))
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read(MAX_SECRET_FILE + 1)
        except OSError as exc:
            raise SecretNotAvailable(reason=f"cannot read {rest}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        if len(data) > MAX_SECRET_FILE:
            raise SecretNotAvailable(reason=f"{rest} is larger than {MAX_SECRET_FILE // 1024} KiB")
        for ending in (b"\r\n", b"\n"):
            if data.endswith(ending):
                data = data[: -len(ending)]
                break
        return Secret(data)


def _warn_if_unprotected(path: str, mode: int) -> None:
    """One warning line if group or others may read or write the secret file."""
    if not mode & 0o066:
        return
    who = " and ".join(w for w, bits in (("group", 0o060), ("others", 0o006)) if mode & bits)
    how = " and ".join(w for w, bits in (("read", 0o044), ("written", 0o022)) if mode & bits)
    log.warning("warning: UNPROTECTED SECRET FILE: %s (mode %04o) can be %s by %s; fix it: chmod 600 %s",
                path, mode, how, who, path)


def builtin_secret_providers() -> list[SecretProvider]:
    """The providers the core registers: ``env`` and ``file``."""
    return [EnvSecretProvider(), FileSecretProvider()]


@attrs.frozen
class SecretResolver:
    """Secret references resolved by the providers of one plugin host (see the module docstring)."""

    providers: Registry[SecretProvider]

    @classmethod
    def of(cls, providers: Iterable[SecretProvider]) -> SecretResolver:
        """A resolver over *providers*, registered under their schemes."""
        registry: Registry[SecretProvider] = Registry("secret provider")
        for provider in providers:
            registry.add(provider.scheme, provider)
        return cls(registry)

    @classmethod
    def builtin(cls) -> SecretResolver:
        """A resolver that knows the built-in schemes only (``env``, ``file``)."""
        return cls.of(builtin_secret_providers())

    def schemes(self) -> list[str]:
        return self.providers.names()

    def check(self, ref: str) -> str:
        """The reference to store for *ref*; InvalidSecretReference if it can never resolve."""
        scheme, rest, provider = self._split(ref)
        return f"{scheme}:{provider.canonical(rest)}"

    def resolve(self, ref: str) -> Secret:
        """The secret *ref* names, read now; never empty."""
        scheme, rest, provider = self._split(ref)
        try:
            secret = provider.resolve(rest)
        except SecretNotAvailable as exc:
            if "ref" in exc.fields:
                raise
            raise SecretNotAvailable(ref=ref, reason=exc.fields.get("reason") or str(exc)) from None
        except StrongroomError:
            raise
        except Exception as exc:  # a plugin's bug or failure: its message might hold the secret
            raise SecretNotAvailable(
                ref=ref, reason=f"the '{scheme}' provider failed ({type(exc).__name__})") from None
        if not isinstance(secret, Secret):
            raise SecretNotAvailable(
                ref=ref, reason=f"the '{scheme}' provider returned a {type(secret).__name__}, not a Secret")
        if not secret.value:
            raise SecretNotAvailable(ref=ref, reason="the secret is empty")
        return secret

    def _split(self, ref: str) -> tuple[str, str, SecretProvider]:
        known = ", ".join(self.schemes()) or "none"
        match = _REFERENCE.fullmatch(ref) if isinstance(ref, str) else None
        if match is None:  # never echoed: it may be the secret itself, given by mistake
            raise InvalidSecretReference(
                reason=f"expected SCHEME:REST, such as env:NAME or file:PATH (known schemes: {known})")
        scheme, rest = match.groups()
        if scheme not in self.providers:
            raise InvalidSecretReference(reason=f"unknown scheme '{scheme}' (known schemes: {known})")
        return scheme, rest, self.providers.get(scheme)


def resolve_secret(ref: str, providers: SecretResolver | None = None) -> Secret:
    """The secret *ref* names, read now, by *providers* (the built-in ones if None)."""
    return (SecretResolver.builtin() if providers is None else providers).resolve(ref)


@hookimpl
def strongroom_register_secret_providers(registry: Registry[SecretProvider]) -> None:
    for provider in builtin_secret_providers():
        registry.add(provider.scheme, provider)

