"""Logging for one command: ``-q``, ``-v``/``-vv``, ``--log-file`` and ``--log-level``.

**The level.**  ``--log-level`` (or ``STRONGROOM_LOG_LEVEL``) wins: ``debug``, ``info``,
``warning`` or ``error``.  Without it ``-q`` is ``error``, ``-v`` ``info``, ``-vv`` (or more)
``debug``, and nothing ``warning``, which is what a command printed before these options
existed.  The level applies to the ``strongroom`` loggers only (the core's modules); the
libraries below keep their own.

**Where records go.**  Standard error gets the records at the level or above: at
``warning`` and ``error`` as the message alone (the messages carry their own ``warning:`` or
``note:``, as they always did); at ``info`` and ``debug`` every line starts with an ISO 8601
time with its offset, the level and the logger.  ``--log-file FILE`` appends the same
records to FILE, always timestamped; the file is created 0600 if missing and never
truncated.  Standard error is looked up at each record, so a caller that replaces
``sys.stderr`` (a test runner, the agent's timestamped output) gets the lines.

**Once per command.**  :func:`configure` is entered by the root group for one command and
undoes itself when the command ends (handlers removed, the previous level back), so a
process that runs several commands (tests) does not pile up handlers.  The settings are
kept in the click context's ``meta`` (:func:`current`), where :mod:`.output` reads
``quiet`` to leave out progress and informational lines.

**Secrets.**  Nothing here formats objects of its own; records carry what their callers put
in them, and :class:`~strongroom.secrets.Secret` and the passphrase sources redact
themselves in ``repr``.  The command's arguments are never logged (they may hold storage
credentials).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sys
from typing import Iterator

import attrs
import click

__all__ = ["ENV", "LEVELS", "LogSettings", "configure", "current", "level_from", "options", "log_start", "settings_from", "stamp"]

#: The environment variable read for ``--log-level``.
ENV = "STRONGROOM_LOG_LEVEL"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_META_KEY = "strongroom.logging"


@attrs.frozen
class LogSettings:
    """The logging chosen for one command."""

    level: int = logging.WARNING
    log_file: str | None = None

    @property
    def quiet(self) -> bool:
        """Only errors: no progress, no informational lines, no warnings."""
        return self.level >= logging.ERROR

    @property
    def verbose(self) -> bool:
        return self.level < logging.WARNING


def level_from(quiet: bool, verbose: int, log_level: str | None) -> int:
    """The level the options choose (see the module docstring)."""
    if log_level:
        return LEVELS[log_level.lower()]
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return logging.INFO
    return logging.ERROR if quiet else logging.WARNING


def stamp(moment: dt.datetime | None = None) -> str:
    """An ISO 8601 time with its offset, to the millisecond, in this host's zone."""
    return (moment or dt.datetime.now()).astimezone().isoformat(timespec="milliseconds")


class _StampedFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = stamp(dt.datetime.fromtimestamp(record.created))
        text = f"{when} {record.levelname.lower()} {record.name}: {record.getMessage()}"
        if record.exc_info and record.levelno >= logging.ERROR:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes."""

    def __init__(self, level: int) -> None:
        super().__init__(sys.stderr)
        self.setLevel(level)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it
        pass


def _open_append(path: str):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")


@contextlib.contextmanager
def configure(ctx: click.Context, settings: LogSettings) -> Iterator[LogSettings]:
    """Log as ``settings`` say for the block (the command); see the module docstring.

    A log file that cannot be opened is a usage error naming it."""
    from ..errors import UsageError

    logger = logging.getLogger("strongroom")
    handlers: list[logging.Handler] = []
    stderr = _StderrHandler(settings.level)
    stderr.setFormatter(_StampedFormatter() if settings.verbose else _PlainFormatter())
    handlers.append(stderr)
    stream = None
    if settings.log_file:
        try:
            stream = _open_append(settings.log_file)
        except OSError as exc:
            raise UsageError(message=f"cannot open the log file {settings.log_file}: {exc.strerror}") from None
        to_file = logging.StreamHandler(stream)
        to_file.setLevel(settings.level)
        to_file.setFormatter(_StampedFormatter())
        handlers.append(to_file)
    previous = logger.level
    logger.setLevel(settings.level)
    for handler in handlers:
        logger.addHandler(handler)
    ctx.meta[_META_KEY] = settings
    try:
        yield settings
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(previous)
        if stream is not None:
            stream.close()


def current() -> LogSettings:
    """The settings of the command being run (the defaults outside one)."""
    ctx = click.get_current_context(silent=True)
    found = ctx.meta.get(_META_KEY) if ctx is not None else None
    return found if isinstance(found, LogSettings) else LogSettings()


def _level_choice(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return value.lower() if value else None


def options(f):
    """The root group's logging options (``quiet``, ``verbose``, ``log_file``, ``log_level``)."""
    f = click.option("--log-level", "log_level", envvar=ENV, metavar="LEVEL",
                     type=click.Choice(list(LEVELS), case_sensitive=False), callback=_level_choice,
                     help=f"Log at LEVEL: debug, info, warning or error (overrides -q and -v; env {ENV}).")(f)
    f = click.option("--log-file", "log_file", metavar="FILE", type=click.Path(dir_okay=False),
                     help="Also append the log records, timestamped, to FILE.")(f)
    f = click.option("-v", "--verbose", "verbose", count=True,
                     help="Log more: -v what is done, -vv details (debug).")(f)
    f = click.option("-q", "--quiet", "quiet", is_flag=True,
                     help="Print only errors and results (JSON, tables), no progress or notes.")(f)
    return f


def settings_from(quiet: bool, verbose: int, log_file: str | None, log_level: str | None) -> LogSettings:
    return LogSettings(level=level_from(quiet, verbose, log_level), log_file=log_file)


def log_start(ctx: click.Context) -> None:
    """A debug record naming the command about to run (never its arguments)."""
    log = logging.getLogger("strongroom.cli")
    if log.isEnabledFor(logging.DEBUG):
        from importlib.metadata import PackageNotFoundError, version

        try:
            release = version("strongroom")
        except PackageNotFoundError:
            release = "unknown"
        log.debug("strongroom %s, Python %s, pid %d: command %s", release, sys.version.split()[0],
                  os.getpid(), ctx.invoked_subcommand or "-")
