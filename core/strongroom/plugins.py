"""Loading plugins: the plugin-manager factory and the plugin host.

Every command-line run and every test builds its own plugin manager with
:func:`get_plugin_manager`; nothing is loaded at import time and there is no global
manager.  Built-in plugins and third-party ones take the same road: each is an entry point
of the ``strongroom`` group, registered under the entry point's name.  The plugins in
:data:`ESSENTIAL_PLUGINS` cannot be disabled; any other can, with ``--disable-plugin NAME``
or the :data:`DISABLE_ENV` environment variable.

A plugin that cannot be imported, has a malformed hook implementation, implements a hook
that does not exist, or raises in a registration hook stops start-up with a
:class:`~strongroom.errors.PluginLoadError` that names it.

:class:`PluginHost` then asks each plugin in turn to fill the registries, so every
registered name is attributed to the plugin that added it.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.metadata
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from strongroom import hookspecs
from strongroom.version import __version__
from strongroom.errors import DuplicateRegistration, PluginError, PluginLoadError
from strongroom.markers import ENTRY_POINT_GROUP, PROJECT_NAME
from strongroom.registry import Registry
from strongroom.secrets import SecretResolver

if TYPE_CHECKING:
    import click

    from strongroom.secrets import SecretProvider
    from strongroom.services.alertsinks import SinkType
    from strongroom.storage.backends import StorageBackend

#: Entry-point names of plugins that strongroom cannot work without.
ESSENTIAL_PLUGINS = frozenset({"alerts", "keys", "storage"})

#: Environment variable with a comma-separated list of plugin names to disable.
DISABLE_ENV = "STRONGROOM_DISABLE_PLUGINS"


@attrs.frozen
class PluginSource:
    """The installed distribution a plugin came from (both None for a directly registered one)."""

    distribution: str | None = None
    version: str | None = None


class StrongroomPluginManager(pluggy.PluginManager):
    """A pluggy plugin manager that also remembers what was disabled and where plugins come from."""

    def __init__(self, disabled: frozenset[str] = frozenset()) -> None:
        super().__init__(PROJECT_NAME)
        self.disabled = disabled
        #: entry-point name -> the distribution that declared it (None: not from one)
        self.distributions: dict[str, importlib.metadata.Distribution | None] = {}

    @property
    def sources(self) -> dict[str, PluginSource]:
        """Where each plugin came from: the distributions' metadata is read only when asked
        (parsing it for every plugin was half the cost of loading them at start-up)."""
        return {name: _source_of(dist) for name, dist in self.distributions.items()}


def _source_of(dist: importlib.metadata.Distribution | None) -> PluginSource:
    if dist is None:
        return PluginSource()
    metadata = dist.metadata  # parsed once for both fields
    return PluginSource(metadata["Name"], metadata["Version"])


def get_plugin_manager(
    *, disabled: Iterable[str] = (), load_entry_points: bool = True
) -> StrongroomPluginManager:
    """Build a new plugin manager: hook specifications, blocklist, entry points, checks.

    *disabled* and the names listed in :data:`DISABLE_ENV` are blocked; they are not even
    imported.  With *load_entry_points* false only the specifications are added (tests
    then register their own plugins).
    """
    pm = StrongroomPluginManager(_disabled_names(disabled))
    pm.add_hookspecs(hookspecs)
    for name in sorted(pm.disabled):
        pm.set_blocked(name)
    if load_entry_points:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        for entry_point in sorted(entry_points, key=lambda ep: ep.name):
            _load_entry_point(pm, entry_point)
    _check_pending(pm)
    return pm


def _check_pending(pm: pluggy.PluginManager) -> None:
    """Refuse hook implementations for hooks that do not exist (``pm.check_pending()``)."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        unknown = sorted(c.name for c in pm.get_hookcallers(exc.plugin) or () if not c.has_spec())
        reason = _describe(exc)
        if unknown:
            hooks = ("hooks " if len(unknown) > 1 else "hook ") + ", ".join(unknown)
            reason = f"implements {hooks}, which strongroom {__version__} does not define"
        raise PluginLoadError(plugin=name, reason=reason) from exc


def _disabled_names(disabled: Iterable[str]) -> frozenset[str]:
    from_env = os.environ.get(DISABLE_ENV, "").split(",")
    names = {name.strip() for name in [*disabled, *from_env]} - {""}
    essential = sorted(names & ESSENTIAL_PLUGINS)
    if essential:
        raise PluginError(message=f"plugin '{essential[0]}' is essential and cannot be disabled")
    return frozenset(names)


def _load_entry_point(
    pm: StrongroomPluginManager, entry_point: importlib.metadata.EntryPoint
) -> None:
    name = entry_point.name
    dist = entry_point.dist
    if name in pm.distributions:
        first, second = _source_of(pm.distributions[name]), _source_of(dist)
        reason = f"declared by both {first.distribution} and {second.distribution}"
        raise PluginLoadError(plugin=name, reason=reason)
    pm.distributions[name] = dist
    if pm.is_blocked(name):
        return
    with _blame(name):
        pm.register(entry_point.load(), name=name)


def _describe(exc: BaseException) -> str:
    """One line for a message: the exception's type and its message, lines joined."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def _blame(plugin: str) -> Iterator[None]:
    """Turn any exception raised inside the block into a PluginLoadError naming *plugin*.

    Errors that already name the plugins involved (PluginLoadError, DuplicateRegistration)
    pass through unchanged.
    """
    try:
        yield
    except (PluginLoadError, DuplicateRegistration):
        raise
    except Exception as exc:
        raise PluginLoadError(plugin=plugin, reason=_describe(exc)) from exc


def _command_table(cli: click.Group) -> dict[str, Any]:
    """The commands of ``cli`` by name; the root group's deferred commands as they are
    (not loaded: see :meth:`strongroom.cli.StrongroomGroup.command_table`)."""
    table = getattr(cli, "command_table", None)
    return table() if table is not None else cli.commands


@attrs.frozen
class PluginInfo:
    """What ``strongroom plugins`` shows about one plugin."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]  # hook names it implements, sorted
    registered: tuple[str, ...]  # e.g. ("workload:files", "command:files-check")
    blocked: bool  # disabled: not imported, no hooks called


@attrs.define
class PluginHost:
    """A plugin manager together with the registries its plugins filled.

    Build one with :meth:`create`; call hooks through :attr:`hook`.
    """

    pm: StrongroomPluginManager
    workloads: Registry[type[Any]] = attrs.field(factory=lambda: Registry("workload"))
    key_providers: Registry[Any] = attrs.field(factory=lambda: Registry("key provider"))
    storage_backends: Registry[StorageBackend] = attrs.field(factory=lambda: Registry("storage backend"))
    commands: Registry[click.Command] = attrs.field(factory=lambda: Registry("command"))
    alert_sinks: Registry[SinkType] = attrs.field(factory=lambda: Registry("alert sink"))
    secret_providers: Registry[SecretProvider] = attrs.field(factory=lambda: Registry("secret provider"))

    @classmethod
    def create(
        cls,
        *,
        disabled: Iterable[str] = (),
        extra_plugins: Iterable[tuple[str, object]] = (),
        load_entry_points: bool = True,
    ) -> PluginHost:
        """Load the plugins, register *extra_plugins* (name, object), fill the registries."""
        pm = get_plugin_manager(disabled=disabled, load_entry_points=load_entry_points)
        for name, plugin in extra_plugins:
            with _blame(name):
                pm.register(plugin, name=name)
        _check_pending(pm)
        host = cls(pm)
        host._fill("strongroom_register_workloads", host.workloads)
        host._fill("strongroom_register_key_providers", host.key_providers)
        host._fill("strongroom_register_storage_backends", host.storage_backends)
        host._fill("strongroom_register_alert_sinks", host.alert_sinks)
        host._fill("strongroom_register_secret_providers", host.secret_providers)
        return host

    @property
    def secrets(self) -> SecretResolver:
        """Resolves secret references with the registered secret providers."""
        return SecretResolver(self.secret_providers)

    @property
    def hook(self) -> pluggy.HookRelay:
        """The hook relay: ``host.hook.strongroom_vault_opened(vault=vault)``."""
        return self.pm.hook

    def register_commands(self, cli: click.Group) -> None:
        """Let every plugin add commands to *cli*; call it once per root group.

        A plugin replacing a command that is already there is a DuplicateRegistration.
        """
        for plugin, call in self._each_plugin("strongroom_register_commands"):
            before = dict(_command_table(cli))
            with _blame(plugin):
                call(cli=cli)
            for name, command in _command_table(cli).items():
                if name not in before:
                    with _blame(plugin):
                        self.commands.add(name, command, plugin=plugin)
                elif before[name] is not command and getattr(before[name], "loaded", None) is not command:
                    first = self.commands.owner(name) if name in self.commands else PROJECT_NAME
                    raise DuplicateRegistration(
                        kind="Command", name=name, first=first, second=plugin
                    )

    def plugin_infos(self) -> list[PluginInfo]:
        """Every loaded or disabled plugin, sorted by name."""
        registered: dict[str, list[str]] = collections.defaultdict(list)
        for registry in (self.workloads, self.key_providers, self.storage_backends, self.alert_sinks,
                         self.secret_providers, self.commands):
            label = registry.kind.replace(" ", "-")
            for name in registry:
                owner = registry.owner(name)
                if owner is not None:
                    registered[owner].append(f"{label}:{name}")
        names = {self.pm.get_name(plugin) for plugin in self.pm.get_plugins()} | self.pm.disabled
        sources = self.pm.sources
        infos = []
        for name in sorted(n for n in names if n is not None):
            plugin = self.pm.get_plugin(name)
            callers = self.pm.get_hookcallers(plugin) if plugin is not None else None
            source = sources.get(name, PluginSource())
            infos.append(
                PluginInfo(
                    name=name,
                    distribution=source.distribution,
                    version=source.version,
                    hooks=tuple(sorted({caller.name for caller in callers or ()})),
                    registered=tuple(registered[name]),
                    blocked=self.pm.is_blocked(name),
                )
            )
        return infos

    def _fill(self, hook_name: str, registry: Registry[Any]) -> None:
        for plugin, call in self._each_plugin(hook_name):
            with _blame(plugin), registry.on_behalf_of(plugin):
                call(registry=registry)

    def _each_plugin(self, hook_name: str) -> Iterator[tuple[str, Callable[..., Any]]]:
        """Yield (plugin name, caller of *hook_name* for that plugin only), in call order.

        ``subset_hook_caller`` leaves out every other plugin, so pluggy still does the
        argument matching and wrapper handling while we know whose code is running.
        """
        hook = getattr(self.pm.hook, hook_name)
        plugins = self.pm.get_plugins()
        seen: set[str] = set()
        for impl in reversed(hook.get_hookimpls()):
            if impl.plugin_name in seen:
                continue
            seen.add(impl.plugin_name)
            others = [plugin for plugin in plugins if plugin is not impl.plugin]
            yield impl.plugin_name, self.pm.subset_hook_caller(hook_name, remove_plugins=others)


__all__ = [
    "DISABLE_ENV",
    "ESSENTIAL_PLUGINS",
    "PluginHost",
    "PluginInfo",
    "PluginSource",
    "StrongroomPluginManager",
    "get_plugin_manager",
]
