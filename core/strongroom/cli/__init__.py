"""The ``strongroom`` command line.

Every command that works on a vault takes it from ``--vault URL``,
``STRONGROOM_VAULT`` or the config file's ``default_vault``, and the storage options for it from ``--storage-option
KEY=VALUE`` over those of the config file and the environment
(:mod:`strongroom.config`).  Errors print one line and exit with the error class's code
(``docs/cli.md`` lists them); ``STRONGROOM_DEBUG=1`` shows tracebacks.  ``-q``, ``-v``,
``--log-file`` and ``--log-level`` set the logging of the one command (:mod:`.logsetup`).

SIGINT (Ctrl-C) and SIGTERM end a command the same way: the children it started are
sent SIGTERM (:func:`strongroom.processes.end_children`), then the command unwinds as
for ``KeyboardInterrupt`` (a SIGTERM as :class:`Terminated`, a subclass), so a running
job is recorded ``cancelled`` and what it started is cleaned up; the command prints one
line and exits with 130 (SIGINT) or 143 (SIGTERM).  A second SIGTERM during that
clean-up is ignored; a second SIGINT interrupts it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import sys
import threading
import traceback
from typing import Callable, Iterator, Sequence

import attrs
import click

from ..config import parse_storage_option
from ..errors import NoVaultGiven, StrongroomError
from ..plugins import DISABLE_ENV, PluginHost
from ..processes import deferrable, end_children, forget_children_ended
from ..repository.keyproviders import PassphraseSource
from ..storage.ticket import ticket_scope

EXIT_WARNINGS = 1
EXIT_INTERNAL = 99
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
#: The reader of standard output went away (``strongroom jobs | head -1``): as a program
#: killed by SIGPIPE, 128 + 13, silently.
EXIT_PIPE_CLOSED = 141


class Terminated(KeyboardInterrupt):
    """SIGTERM: the command ends as for Ctrl-C (jobs end ``cancelled``), with exit code 143."""


class _Deferred:
    """A command of :class:`StrongroomGroup` loaded when first asked for: :meth:`load`
    returns it (``loaded`` once it was)."""

    __slots__ = ("_loader", "loaded")

    def __init__(self, loader: Callable[[], click.Command]) -> None:
        self._loader = loader
        self.loaded: click.Command | None = None

    def load(self) -> click.Command:
        if self.loaded is None:
            self.loaded = self._loader()
        return self.loaded


def _command_at(module: str, attribute: str) -> Callable[[], click.Command]:
    """A loader of the command ``attribute`` of this package's module ``module``."""
    return lambda: getattr(importlib.import_module(f".{module}", __name__), attribute)


class _Interrupted(Exception):
    """Carries an interrupt out of click, which would otherwise print a line of its own."""

    def __init__(self, interrupt: KeyboardInterrupt) -> None:
        super().__init__(str(interrupt))
        self.interrupt = interrupt


@contextlib.contextmanager
def interrupts_end_jobs() -> Iterator[None]:
    """SIGINT and SIGTERM handlers for the block (see the module docstring); the previous
    handlers come back after it, and :func:`~strongroom.processes.children_ended` is False
    again (the job a signal stopped has unwound).  Outside the main thread nothing is
    changed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    terminated = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal terminated
        if signum == signal.SIGTERM:
            if terminated:
                return  # already ending: let the clean-up finish
            terminated = True
            end_children()
            raise Terminated("terminated by SIGTERM")
        end_children()
        raise KeyboardInterrupt

    handler = deferrable(on_signal)  # never inside a child's start (see start_child)
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        forget_children_ended()  # the job the signal ended has unwound: the next one starts afresh


def _prompt(text: str, confirm: bool) -> str:
    return click.prompt(text, hide_input=True, confirmation_prompt=confirm)


@attrs.define
class AppContext:
    """What every command gets as ``ctx.obj``: plugins, vault URL, passphrase source,
    storage options (never shown: they may hold credentials)."""

    plugins: PluginHost
    _vault_url: str | None = attrs.field(default=None, alias="vault_url")
    passphrase_env: str | None = None
    storage_options: dict = attrs.field(factory=dict, repr=False)
    _vault: object = None
    #: Open the vault's geo secondary instead (read-only), as this machine recorded it.
    from_secondary: bool = False

    @property
    def vault_url(self) -> str | None:
        """``--vault`` (or ``STRONGROOM_VAULT``), else the config file's ``default_vault``
        (read only when a command asks for the vault)."""
        if not self._vault_url:
            from ..config import default_vault

            self._vault_url = default_vault()
        return self._vault_url

    @vault_url.setter
    def vault_url(self, url: str | None) -> None:
        self._vault_url = url

    @property
    def passphrase(self) -> PassphraseSource:
        return PassphraseSource(env_var=self.passphrase_env, prompt=_prompt)

    def open_vault(self):
        from ..vault import Vault

        if self._vault is None:
            if not self.vault_url:
                raise NoVaultGiven()
            url, options = self.vault_url, self.storage_options
            if self.from_secondary:  # its own storage options: the user's config for its URL
                url, options = _secondary_of(url), {}
            self._vault = Vault.open(url, passphrase=self.passphrase, plugins=self.plugins,
                                     storage_options=options)
            self._vault.jobs.notify = note
            self._vault.alerts.notify = _warn
            command = click.get_current_context(silent=True)
            if command is not None:  # its storage's connections end with the command
                command.find_root().call_on_close(self._vault.close)
        return self._vault


def _warn(message: str) -> None:
    from .output import warn

    warn(message)


def _secondary_of(primary: str) -> str:
    from ..errors import UsageError
    from ..home import strongroom_home
    from ..services.geo import recorded_secondary

    secondary = recorded_secondary(strongroom_home(), primary)
    if secondary is None:
        raise UsageError(message=f"no geo secondary of {primary} is recorded on this machine:"
                                 " open it with --vault SECONDARY_URL")
    return secondary


def note(message: str) -> None:
    """A notice on standard error: not a problem, but worth knowing (left out by ``-q``)."""
    from .output import quiet

    if not quiet():
        click.echo(f"note: {message}", err=True)


class StrongroomGroup(click.Group):
    """The root group: turns strongroom errors into one line and a stable exit code.

    Its built-in commands are deferred (:meth:`add_deferred`): a command's module is
    imported, and a command built from the plugins (``protect``, ``restore``) built, only
    when click asks for that command (:meth:`get_command`: the command run, or every
    command for ``--help``).  A command therefore imports only its own modules: the other
    commands' were a fifth of the start-up.  Reading :attr:`commands` resolves them all, so
    a plugin or a test that looks a command up there finds the command itself.
    """

    @property
    def commands(self) -> dict[str, click.Command]:  # type: ignore[override]
        for name, value in list(self._table.items()):
            if isinstance(value, _Deferred):
                self._table[name] = value.load()
        return self._table  # type: ignore[return-value]

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._table: dict[str, click.Command | _Deferred] = dict(value)

    def command_table(self) -> dict[str, object]:
        """The commands by name, a deferred one as its loader (nothing is imported)."""
        return self._table

    def add_deferred(self, name: str, load: Callable[[], click.Command]) -> None:
        """Add the command ``name`` that ``load()`` returns, when it is first asked for."""
        self._table[name] = _Deferred(load)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if name is None:
            raise TypeError("Command has no name.")
        self._table[name] = cmd

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        value = self._table.get(cmd_name)
        if isinstance(value, _Deferred):
            value = self._table[cmd_name] = value.load()
        return value

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._table)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Interrupted(exc) from exc
        except BrokenPipeError:  # before click's own handling, which exits 1 (our "warnings")
            _stdout_closed()

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra):  # type: ignore[override]
        extra.pop("standalone_mode", None)
        try:
            with interrupts_end_jobs():
                result = super().main(args, prog_name or "strongroom", standalone_mode=False, **extra)
        except _Interrupted as exc:
            if isinstance(exc.interrupt, Terminated):
                click.echo("strongroom: terminated (SIGTERM)", err=True)
                sys.exit(EXIT_TERMINATED)
            click.echo("strongroom: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Terminated:
            click.echo("strongroom: terminated (SIGTERM)", err=True)
            sys.exit(EXIT_TERMINATED)
        except KeyboardInterrupt:
            click.echo("strongroom: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            _stdout_closed()
        except StrongroomError as exc:
            if os.environ.get("STRONGROOM_DEBUG"):
                traceback.print_exc()
            click.echo(f"strongroom: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except Exception as exc:  # a bug: still one line, with a way to see more
            if os.environ.get("STRONGROOM_DEBUG"):
                traceback.print_exc()
            message = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(
                f"strongroom: internal error: {type(exc).__name__}: {message}"
                " (set STRONGROOM_DEBUG=1 for details)", err=True,
            )
            sys.exit(EXIT_INTERNAL)
        sys.exit(result if isinstance(result, int) else 0)


def _stdout_closed() -> None:
    """Standard output's reader is gone: exit :data:`EXIT_PIPE_CLOSED` without another word.

    What is still buffered cannot be written; stdout is pointed at /dev/null first so the
    interpreter's own flush at exit does not fail again (and print a traceback).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    sys.exit(EXIT_PIPE_CLOSED)


def build_cli(plugins: PluginHost) -> click.Group:
    """The root command with every built-in command (deferred: see :class:`StrongroomGroup`)
    and the plugins' commands."""
    from . import logsetup

    @click.group(cls=StrongroomGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--vault", "vault_url", envvar="STRONGROOM_VAULT", metavar="URL",
                  help="The vault: a local folder or an fsspec URL (env STRONGROOM_VAULT).")
    @click.option("--passphrase-env", metavar="VAR",
                  help="Read the vault passphrase from environment variable VAR.")
    @click.option("--disable-plugin", "disabled", multiple=True, metavar="NAME",
                  help=f"Do not load plugin NAME (repeatable; env {DISABLE_ENV}).")
    @click.option("--storage-option", "storage_option", multiple=True, metavar="KEY=VALUE",
                  help="An option of the vault's storage, e.g. endpoint_url=URL (repeatable);"
                       " put secrets in the config file or STRONGROOM_STORAGE_OPTIONS instead.")
    @click.option("--limit-upload", type=click.FloatRange(min=0, min_open=True), metavar="KIB/S",
                  help="Send at most KIB/S KiB per second to the vault's storage (storage option limit_upload).")
    @click.option("--limit-download", type=click.FloatRange(min=0, min_open=True), metavar="KIB/S",
                  help="Read at most KIB/S KiB per second from the vault's storage (storage option limit_download).")
    @click.option("--token-file", metavar="FILE",
                  help="For a vault on a strongroom server (https://HOST:PORT/vaults/NAME): the file holding"
                       " your token (default: the STRONGROOM_TOKEN environment variable).")
    @click.option("--from-secondary", is_flag=True,
                  help="Open the vault's geo secondary (read-only) instead of the vault, as this machine"
                       " recorded it: for when the vault's storage is out of reach.")
    @logsetup.options
    @click.version_option(package_name="strongroom", prog_name="strongroom")
    @click.pass_context
    def cli(ctx: click.Context, vault_url: str | None, passphrase_env: str | None, disabled: tuple[str, ...],
            storage_option: tuple[str, ...], limit_upload: float | None, limit_download: float | None,
            token_file: str | None, from_secondary: bool, quiet: bool, verbose: int, log_file: str | None, log_level: str | None) -> None:
        """strongroom: vaults, policies and recovery points for your own machines."""
        ctx.with_resource(logsetup.configure(ctx, logsetup.settings_from(quiet, verbose, log_file, log_level)))
        logsetup.log_start(ctx)
        options = dict(parse_storage_option(text) for text in storage_option)
        for key, limit in (("limit_upload", limit_upload), ("limit_download", limit_download)):
            if limit is not None:
                options[key] = limit
        if token_file:
            if not (vault_url or "").lower().startswith("https://"):
                raise click.UsageError("--token-file is for a vault on a strongroom server (--vault https://HOST:PORT/vaults/NAME)")
            options["token_file"] = token_file  # read by the server store; the token itself is never kept
        ctx.obj = AppContext(plugins, vault_url, passphrase_env, options, from_secondary=from_secondary)
        ctx.with_resource(ticket_scope())  # a guard ticket lives as long as this one command

    for name, module, attribute in _BUILT_IN:
        cli.add_deferred(name, _command_at(module, attribute))
    cli.add_deferred("items", lambda: _items_group(plugins))
    cli.add_deferred("protect", lambda: importlib.import_module(".protect_cmd", __name__).build_protect_group(plugins))
    cli.add_deferred("restore", lambda: importlib.import_module(".restore_cmd", __name__).build_restore_command(plugins))
    plugins.register_commands(cli)
    return cli


#: The built-in commands: (name, module of this package, attribute).
_BUILT_IN = (
    ("vault", "vault_cmd", "vault"), ("backup", "backup_cmd", "backup"), ("points", "points_cmd", "points"),
    ("browse", "browse_cmd", "browse"), ("jobs", "jobs_cmd", "jobs"), ("plugins", "plugins_cmd", "plugins_command"),
    ("policy", "policy_cmd", "policy"), ("prune", "prune_cmd", "prune"), ("schedule", "schedule_cmd", "schedule"),
    ("run-due", "schedule_cmd", "run_due"), ("agent", "schedule_cmd", "agent"), ("guard", "guard_cmd", "guard"),
    ("dump", "dump_cmd", "dump"), ("diff", "diff_cmd", "diff"), ("find", "find_cmd", "find"),
    ("mount", "mount_cmd", "mount"), ("copy", "copy_cmd", "copy"), ("alerts", "alerts_cmd", "alerts"),
    ("server", "server_cmd", "server"), ("drill", "drill_cmd", "drill"), ("stats", "stats_cmd", "stats"),
    ("install-units", "units_cmd", "install_units"), ("man", "man_cmd", "man"), ("apply", "apply_cmd", "apply"),
    ("export-config", "apply_cmd", "export_config"),
)


def _items_group(plugins: PluginHost) -> click.Group:
    from .items_cmd import items
    from .items_update_cmd import build_update_command

    items.add_command(build_update_command(plugins))
    return items


def _disabled_from_argv(argv: Sequence[str]) -> list[str]:
    names = []
    for i, arg in enumerate(argv):
        if arg == "--disable-plugin" and i + 1 < len(argv):
            names.append(argv[i + 1])
        elif arg.startswith("--disable-plugin="):
            names.append(arg.split("=", 1)[1])
    return names


def _started() -> None:
    """Start-up is over: what it made is frozen (never collected: it lives as long as the
    process) and the garbage collector is on again (:func:`strongroom.__main__.run` keeps
    it off while the command line starts)."""
    gc.freeze()
    gc.enable()


def _no_collection_at_exit() -> None:
    """The interpreter's exit skips its last garbage collection over every object.

    That collection frees nothing the end of the process would not free, and it walks
    every object the command made, including every function and class of the modules it
    imported: about 40 ms of CPU per command.  Frozen objects are left out of it; exit
    handlers (``atexit``, ``weakref.finalize``) still run.  Only when :func:`main` is the
    process's command line, never for a caller that goes on after it.
    """
    gc.freeze()


def main(argv: Sequence[str] | None = None) -> None:
    """The ``strongroom`` command line; without ``argv``, the process's own (then the
    process ends with it: see :func:`_no_collection_at_exit`)."""
    whole_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cli = build_cli(PluginHost.create(disabled=_disabled_from_argv(argv)))
    except StrongroomError as exc:  # a broken plugin, before any command runs
        click.echo(f"strongroom: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    if whole_process:
        _started()
    try:
        cli.main(argv)
    finally:  # the last output is written here, where a closed pipe shows
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_closed()
        finally:
            if whole_process:
                _no_collection_at_exit()
