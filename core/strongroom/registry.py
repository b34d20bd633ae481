"""Named registries that plugins fill during start-up.

A registration hook receives a :class:`Registry` and calls ``registry.add(name, obj)``.
The core then finds workloads, key providers and other named things by name, never by
asking every plugin in turn.  A name can be registered once: a second registration is a
:class:`~strongroom.errors.DuplicateRegistration` naming both plugins, and looking up a
name nobody registered is an :class:`~strongroom.errors.UnknownName` listing the known ones.

Plugins do not say who they are: while :class:`~strongroom.plugins.PluginHost` calls one
plugin's registration hook, it wraps the call in :meth:`Registry.on_behalf_of`, so every
``add`` made during that call is attributed to that plugin.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Generic, TypeVar

import attrs

from strongroom.errors import DuplicateRegistration, PluginError, UnknownName

T = TypeVar("T")

#: What a registered name must look like: lower case, starting with a letter.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")

#: How a registration that was made outside any plugin is described in messages.
UNATTRIBUTED = "an unnamed caller"


@attrs.frozen
class _Entry(Generic[T]):
    obj: T
    plugin: str | None


class Registry(Generic[T]):
    """Objects of one kind (``"workload"``, ``"key provider"``, ...) by unique name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, _Entry[T]] = {}
        self._current_plugin: str | None = None

    def __repr__(self) -> str:
        return f"<Registry of {self.kind}s: {', '.join(self.names()) or 'empty'}>"

    def add(self, name: str, obj: T, *, plugin: str | None = None) -> None:
        """Register *obj* under *name*.

        *plugin* names the registering plugin; it defaults to the plugin whose
        registration hook is running (see :meth:`on_behalf_of`).  Raises
        :class:`~strongroom.errors.PluginError` for a malformed name and
        :class:`~strongroom.errors.DuplicateRegistration` if *name* is taken.
        """
        if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
            raise PluginError(
                message=f"invalid {self.kind} name {name!r}: use lower-case letters, digits,"
                " '-' and '_', starting with a letter"
            )
        owner = plugin if plugin is not None else self._current_plugin
        existing = self._entries.get(name)
        if existing is not None:
            raise DuplicateRegistration(
                kind=self.kind.capitalize(),
                name=name,
                first=existing.plugin or UNATTRIBUTED,
                second=owner or UNATTRIBUTED,
            )
        self._entries[name] = _Entry(obj, owner)

    def get(self, name: str) -> T:
        """The object registered as *name*; :class:`~strongroom.errors.UnknownName` if none."""
        try:
            return self._entries[name].obj
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise UnknownName(kind=self.kind, name=name, known=known) from None

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)

    def owner(self, name: str) -> str | None:
        """The plugin that registered *name*; None if it was added outside any plugin.

        Like :meth:`get`, raises :class:`~strongroom.errors.UnknownName` for an unknown name.
        """
        self.get(name)
        return self._entries[name].plugin

    @contextlib.contextmanager
    def on_behalf_of(self, plugin: str) -> Iterator[None]:
        """Attribute every :meth:`add` without an explicit plugin to *plugin* inside the block."""
        previous, self._current_plugin = self._current_plugin, plugin
        try:
            yield
        finally:
            self._current_plugin = previous

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["NAME_PATTERN", "Registry"]
