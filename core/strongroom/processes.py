"""The programs strongroom starts, and the processes it finds again after a crash.

What it promises:

- :class:`ProcessId` names one process for good: its host, its pid and its start
  (``"<boot id>/<start tick>"``, read from ``/proc``), so neither a pid the system has
  given to another program since, nor the same pid after a reboot, is taken for it.
  :meth:`ProcessId.state` is ``running``, ``gone`` or ``unknown`` (a process of another
  host, which cannot be checked from here); :attr:`ProcessId.tag` is its form for file
  and folder names, read back by :meth:`ProcessId.from_tag`.
- :func:`start_child` and :func:`run_child` start a program as ``subprocess.Popen`` and
  ``subprocess.run`` do, tied to this process: on Linux ``PR_SET_PDEATHSIG`` sends the
  child its ``end_signal`` (SIGTERM unless the caller chooses SIGKILL, for a program
  that may miss a SIGTERM that comes while it starts) when strongroom ends, however it
  ends (SIGKILL included), and a child whose parent died while it was being started
  exits at once.  The death signal comes when the *thread* that started the child ends,
  not the process: start a child from a thread that outlives it (the main thread, or an
  engine reader thread for the length of its read).  :func:`end_children` sends every
  such child still running its ``end_signal``; the command line's SIGTERM and SIGINT
  handler calls it, so that threads blocked reading a child return and the job can end.
  A SIGINT or SIGTERM that comes while the main thread starts a child is held back until
  the child is started (and registered), so the handler, which raises, never runs inside
  Python's at-fork hooks, where it would leave the ``logging`` lock held for good.
- **Children never inherit strongroom's secrets.**  Every child started through
  :func:`start_child` or :func:`run_child` gets the environment it is given (``env=``),
  or this process's, without the variables that hold secrets strongroom reads
  (:func:`child_environment`): ``STRONGROOM_PASSPHRASE``, ``STRONGROOM_STORAGE_OPTIONS``
  and every variable named as a passphrase source (``--passphrase-env VAR``,
  ``--new-passphrase-env VAR``, a recovery kit's), which :func:`keep_from_children`
  adds.  A ``qemu-img`` or ``pg_dump`` has no use for them, and a child's environment is
  readable by the child, by whatever it starts, and by its crash reports.
- :func:`list_processes` lists this machine's processes (program, arguments, parent and
  identity) and :func:`end_process` ends one (SIGTERM, then SIGKILL), so that a plugin
  can find what a strongroom that is gone left running.

Elsewhere than Linux (no ``/proc``, no ``prctl``) children are started untied, the
list is empty and states are ``unknown``.  Nothing here writes a file, and no process
is ended but those named to :func:`end_process` and the children of this process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, Callable, Mapping, Sequence

import attrs

__all__ = [
    "GONE", "RUNNING", "UNKNOWN", "ProcessId", "ProcessInfo", "child_environment", "children_ended", "cpus",
    "deferrable", "end_children", "end_process", "forget_children_ended", "keep_from_children", "list_processes",
    "run_child",
    "start_child", "tied_to_parent",
]

RUNNING = "running"
GONE = "gone"
UNKNOWN = "unknown"

_PROC = "/proc"
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_PR_SET_PDEATHSIG = 1
_DEAD_STATES = frozenset("ZXx")  # zombie, dead: ended, not yet reaped


def this_host() -> str:
    return socket.gethostname()


def _boot_id() -> str | None:
    try:
        with open(_BOOT_ID) as fh:
            return fh.read().strip().replace("-", "")
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, parent pid, start tick) of a process, None if there is none."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the program name may hold spaces and ")"
    try:
        return fields[0], int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _argv(pid: int) -> tuple[str, ...]:
    try:
        with open(f"{_PROC}/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return ()
    return tuple(part.decode("utf-8", "surrogateescape") for part in raw.split(b"\0")[:-1])


@attrs.frozen
class ProcessId:
    """One process, for good (see the module docstring)."""

    host: str
    pid: int
    start: str | None = None  # "<boot id>/<start tick>"; None where there is no /proc

    @classmethod
    def current(cls) -> ProcessId:
        """This process."""
        return cls.of(os.getpid())  # type: ignore[return-value]

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The process ``pid`` of this host, None if there is none."""
        boot, stat = _boot_id(), _stat(pid)
        if boot is None or stat is None:
            return cls(this_host(), pid) if pid == os.getpid() else None
        return cls(this_host(), pid, f"{boot}/{stat[2]}")

    def state(self) -> str:
        """``running``, ``gone`` (ended, or its pid now runs another program) or ``unknown``."""
        if self.host != this_host():
            return UNKNOWN
        if self.start is None or _boot_id() is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return GONE
            except PermissionError:
                return RUNNING
            return RUNNING if self.start is None else UNKNOWN
        boot, _, tick = self.start.partition("/")
        stat = _stat(self.pid)
        if boot != _boot_id() or stat is None or stat[0] in _DEAD_STATES or str(stat[2]) != tick:
            return GONE
        return RUNNING

    def is_gone(self) -> bool:
        """Whether the process is known to have ended (``state() == "gone"``)."""
        return self.state() == GONE

    @property
    def tag(self) -> str:
        """``<pid>-<boot id's first 8 hex digits>-<start tick>``: for names of files and folders."""
        boot, _, tick = (self.start or "/").partition("/")
        return f"{self.pid}-{boot[:8] or 'x'}-{tick or 'x'}"

    @classmethod
    def from_tag(cls, tag: str) -> ProcessId | None:
        """The process of this host that :attr:`tag` names (None for text that is no tag)."""
        parts = tag.split("-")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
            return None
        boot = _boot_id() or ""
        if boot[:8] != parts[1]:
            boot = parts[1]  # another boot: state() says gone
        return cls(this_host(), int(parts[0]), f"{boot}/{parts[2]}")


@attrs.frozen
class ProcessInfo:
    """A process of this machine: its identity, parent, program path and arguments."""

    id: ProcessId
    ppid: int
    argv: tuple[str, ...]

    @property
    def pid(self) -> int:
        return self.id.pid

    @property
    def program(self) -> str:
        """The base name of the program (``qemu-nbd``)."""
        return os.path.basename(self.argv[0]) if self.argv else ""

    def option(self, name: str) -> str | None:
        """The value of option ``name`` given as ``name VALUE`` or ``name=VALUE``."""
        for i, arg in enumerate(self.argv):
            if arg == name and i + 1 < len(self.argv):
                return self.argv[i + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1:]
        return None


def list_processes(program: str | None = None) -> list[ProcessInfo]:
    """The processes of this machine (those running ``program`` only, if given)."""
    try:
        names = os.listdir(_PROC)
    except OSError:
        return []
    boot, host = _boot_id() or "", this_host()
    found = []
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        stat, argv = _stat(pid), _argv(pid)
        if stat is None or not argv or stat[0] in _DEAD_STATES:
            continue  # ended meanwhile, a kernel thread, or a zombie
        info = ProcessInfo(ProcessId(host, pid, f"{boot}/{stat[2]}"), stat[1], argv)
        if program is None or info.program == program:
            found.append(info)
    return found


def end_process(process: ProcessId, timeout: float = 5.0) -> bool:
    """End ``process`` (SIGTERM, then SIGKILL after ``timeout`` seconds); False if it was not running."""
    if process.state() != RUNNING:
        return False
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        try:
            os.kill(process.pid, signum)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.state() != RUNNING:
                return True
            time.sleep(0.02)
    return process.state() != RUNNING


# --- children tied to this process --------------------------------------------------------

_children: "weakref.WeakKeyDictionary[subprocess.Popen, int]" = weakref.WeakKeyDictionary()
_children_lock = threading.RLock()  # end_children may run in a signal handler of a thread holding it
_prctl: Any = None


def _load_prctl() -> Any:
    global _prctl
    if _prctl is None:
        _prctl = False
        if sys.platform.startswith("linux"):
            try:
                function = ctypes.CDLL(None, use_errno=True).prctl
                function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
                function.restype = ctypes.c_int
                _prctl = function
            except (OSError, AttributeError):
                pass
    return _prctl


def _tie(end_signal: int, then: Callable[[], Any] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks for ``end_signal`` when the starting thread ends (see the module docstring)."""
    prctl, parent = _load_prctl(), os.getpid()
    if not prctl:
        return then

    def preexec() -> None:  # runs in the child, between fork and exec: nothing that may lock
        prctl(_PR_SET_PDEATHSIG, end_signal, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the death signal was asked for
            os._exit(1)
        if then is not None:
            then()

    return preexec


def cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def tied_to_parent(end_signal: int = signal.SIGTERM) -> Callable[[], None] | None:
    """What a process forked from this one (without exec) calls first, to get ``end_signal``
    when the forking thread ends, or to exit at once if this process is already gone;
    None where that cannot be asked for.  Fork from a thread that outlives the child."""
    return _tie(end_signal, None)


# --- secrets kept from children ------------------------------------------------------------

_secret_variables: set[str] = {"STRONGROOM_PASSPHRASE", "STRONGROOM_STORAGE_OPTIONS"}


def keep_from_children(*names: str | None) -> None:
    """Never pass the environment variables ``names`` to a child (they hold secrets, or settings
    meant for this process only, such as the command line's ``OPENBLAS_NUM_THREADS``)."""
    _secret_variables.update(name for name in names if name)


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (this process's environment if None) without the variables that hold secrets."""
    secret = frozenset(_secret_variables)
    return {key: value for key, value in (os.environ if env is None else env).items() if key not in secret}


#: Held back in the main thread while a child starts (see :func:`start_child`).
_HELD_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

# While the main thread starts a child, a :func:`deferrable` signal handler is not run but
# kept here, and run when the start is over.  Only the main thread reads or changes these
# (Python runs signal handlers in the main thread).
_starting = 0
_deferred: list[tuple[Callable[[int, Any], Any], int]] = []


def deferrable(handler: Callable[[int, Any], Any]) -> Callable[[int, Any], Any]:
    """``handler`` as a signal handler that waits while the main thread starts a child.

    Holding SIGINT and SIGTERM back in the main thread is not enough: the kernel gives a
    signal to any thread that does not hold it back, and Python then runs the handler in
    the main thread at its next instruction, which may be inside the at-fork hooks that
    release the ``logging`` module's lock.  A handler that raises there (Ctrl-C's
    KeyboardInterrupt) leaves the lock held.  Wrapped, the handler runs once the child
    has started (or failed to), where raising is safe."""

    def on_signal(signum: int, frame: Any) -> Any:
        if _starting and threading.current_thread() is threading.main_thread():
            _deferred.append((handler, signum))
            return None
        return handler(signum, frame)

    return on_signal


def _run_deferred() -> None:
    """The handlers :func:`deferrable` kept while a child started, oldest first."""
    while _deferred:
        handler, signum = _deferred.pop(0)
        handler(signum, None)


def start_child(argv: Sequence[str], *, end_signal: int = signal.SIGTERM, block_sigint: bool = False,
                **popen_kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(argv, **popen_kwargs)``, tied to this process, without secrets in its
    environment (see the module docstring).

    ``block_sigint`` starts the child with SIGINT blocked: a helper this process ends itself
    (its ``end_signal``, or the end of its input), which the Ctrl-C a terminal sends to the
    whole process group must not end first.

    In the main thread SIGINT and SIGTERM are held back while the child starts, and come
    right after: a fork with a ``preexec_fn`` runs Python's at-fork hooks, which take and
    release the ``logging`` module's lock, and a signal handler raising between the two
    (as the command line's Ctrl-C and SIGTERM handlers do) would leave the lock held, so
    that any later log record or child start hung.  A signal another thread receives is
    still handled in the main thread: handlers wrapped by :func:`deferrable` wait until
    the start is over.  The child gets the signal mask back before it runs its program."""
    popen_kwargs["env"] = child_environment(popen_kwargs.get("env"))
    preexec = popen_kwargs.pop("preexec_fn", None)
    if block_sigint:
        preexec = _blocking_sigint(preexec)
    preexec = _tie(int(end_signal), preexec)
    global _starting
    hold = preexec is not None and threading.current_thread() is threading.main_thread()
    if hold:
        _starting += 1
        before = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
        preexec = _with_mask(before, preexec)
    try:
        proc = subprocess.Popen(list(argv), preexec_fn=preexec, **popen_kwargs)
        with _children_lock:
            _children[proc] = int(end_signal)
    finally:
        if hold:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)
            _starting -= 1
            if not _starting:
                _run_deferred()  # may raise (KeyboardInterrupt): the child is known by then
    return proc


def _blocking_sigint(then: Callable[[], Any] | None) -> Callable[[], None]:
    """A ``preexec_fn``: SIGINT blocked (the program gets that mask), then ``then()``."""

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        if then is not None:
            then()

    return preexec


def _with_mask(mask: set, then: Callable[[], Any]) -> Callable[[], None]:
    """A ``preexec_fn``: the signal mask ``mask`` back, then ``then()``."""

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        then()

    return preexec


def run_child(argv: Sequence[str], *, input: bytes | str | None = None, timeout: float | None = None,
              check: bool = False, **popen_kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, ...)`` for a child tied to this process."""
    capture = popen_kwargs.pop("capture_output", False)
    if capture:
        popen_kwargs.setdefault("stdout", subprocess.PIPE)
        popen_kwargs.setdefault("stderr", subprocess.PIPE)
    if input is not None:
        popen_kwargs.setdefault("stdin", subprocess.PIPE)
    with start_child(argv, **popen_kwargs) as proc:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.poll()
    if check and code:
        raise subprocess.CalledProcessError(code, proc.args, stdout, stderr)
    return subprocess.CompletedProcess(proc.args, code, stdout, stderr)  # type: ignore[arg-type]


_ending = False  # end_children was called: this process is ending its job


def children_ended() -> bool:
    """Whether :func:`end_children` was called (the job is being stopped): a child that
    dies now was ended, and is no failure to report."""
    return _ending


def forget_children_ended() -> None:
    """The job :func:`end_children` stopped is over: :func:`children_ended` is False
    again, for the next job of this process (a command line run in a process that goes on
    after it).  Otherwise a restore run later would take its workers' packs handed back
    for packs of a job being stopped, and leave their files out."""
    global _ending
    _ending = False


def end_children() -> int:
    """Send every child started here that still runs its ``end_signal``; returns how many.

    Safe in a signal handler: it waits for nothing."""
    global _ending
    _ending = True
    with _children_lock:
        running = [(proc, signum) for proc, signum in _children.items() if proc.returncode is None]
    ended = 0
    for proc, signum in running:
        try:
            proc.send_signal(signum)
            ended += 1
        except OSError:
            pass
    return ended
