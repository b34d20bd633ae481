"""strongroom.processes on real processes: identities that survive pid reuse, children
that die with strongroom even when it is killed with SIGKILL, and ending them on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from functools import partial

import pytest

from strongroom import ProcessId, end_process, list_processes, run_child, start_child
from strongroom import processes
from strongroom.processes import GONE, RUNNING, UNKNOWN, end_children
from vaultkit import wait_until as poll_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and prctl")


wait_until = partial(poll_until, limit=30.0, step=0.02)


def alive(pid: int) -> bool:
    info = ProcessId.of(pid)
    return info is not None and info.state() == RUNNING


class TestProcessId:
    def test_this_process_runs(self):
        """The current process is running, and its tag names it again."""
        me = ProcessId.current()
        assert me.pid == os.getpid() and me.state() == RUNNING
        assert ProcessId.from_tag(me.tag) == me

    def test_an_ended_process_is_gone(self):
        """A child that exited (and was reaped) is gone."""
        proc = subprocess.Popen(["sleep", "30"])
        child = ProcessId.of(proc.pid)
        assert child is not None and child.state() == RUNNING
        proc.kill()
        proc.wait()
        assert child.state() == GONE and child.is_gone()

    def test_a_reused_pid_is_another_process(self):
        """The same pid with another start time (the pid was given to another program) is gone."""
        me = ProcessId.current()
        boot, _, tick = me.start.partition("/")
        assert ProcessId(me.host, me.pid, f"{boot}/{int(tick) + 1}").state() == GONE
        assert ProcessId(me.host, me.pid, f"{'0' * len(boot)}/{tick}").state() == GONE  # another boot

    def test_a_process_of_another_host_cannot_be_checked(self):
        """Another host's process is unknown, never gone."""
        assert ProcessId("elsewhere.example", os.getpid(), "x/1").state() == UNKNOWN

    def test_text_that_is_no_tag(self):
        """Random folder-name suffixes are not tags."""
        assert ProcessId.from_tag("k2j3_a9x") is None and ProcessId.from_tag("12-ab-cd") is None


class TestChildren:
    def test_a_child_dies_with_a_parent_killed_by_sigkill(self, tmp_path):
        """A child started with start_child ends when its parent is killed with SIGKILL; a
        plain Popen child of the same parent lives on (what qemu-nbd did)."""
        pids = tmp_path / "pids"
        script = textwrap.dedent(f"""
            import subprocess, sys, time
            from strongroom import start_child
            tied = start_child(["sleep", "300"])
            loose = subprocess.Popen(["sleep", "300"])
            open({str(pids)!r}, "w").write(f"{{tied.pid}} {{loose.pid}}")
            time.sleep(300)
        """)
        parent = subprocess.Popen([sys.executable, "-c", script])
        wait_until(lambda: pids.exists() and pids.read_text(), "the parent started its children")
        tied, loose = map(int, pids.read_text().split())
        loose_id = ProcessId.of(loose)
        try:
            parent.kill()
            parent.wait()
            wait_until(lambda: not alive(tied), "the tied child ended")
            assert loose_id is not None and loose_id.state() == RUNNING
        finally:
            if loose_id is not None:
                end_process(loose_id)

    def test_end_children_terminates_running_children(self, monkeypatch):
        """end_children sends SIGTERM to each child still running, so a reader blocked on it returns."""
        # the flag end_children sets (the job is ending) goes back as it was after this test:
        # later tests of this process would otherwise take every dead child for an ended one
        monkeypatch.setattr(processes, "_ending", processes._ending)
        proc = start_child(["sleep", "300"], stdout=subprocess.PIPE)
        assert end_children() >= 1
        assert proc.stdout.read() == b""  # EOF: the reader is free
        assert proc.wait() == -signal.SIGTERM

    @pytest.mark.parametrize("block", [True, False])
    def test_block_sigint_starts_the_program_with_sigint_blocked(self, block):
        """block_sigint: the program runs with SIGINT in its blocked mask (a Ctrl-C to the
        process group leaves it alone); without it, the mask is this thread's (SIGINT free)."""
        proc = start_child(["sleep", "300"], end_signal=signal.SIGKILL, block_sigint=block)
        try:
            poll_until(lambda: open(f"/proc/{proc.pid}/comm").read() == "sleep\n", "sleep runs")
            with open(f"/proc/{proc.pid}/status") as fh:
                mask = int(dict(line.split(":", 1) for line in fh)["SigBlk"], 16)
            assert bool(mask & (1 << (signal.SIGINT - 1))) is block
        finally:
            proc.kill()
            proc.wait()

    def test_run_child_returns_what_the_program_did(self):
        """run_child captures output and the exit code as subprocess.run does."""
        done = run_child(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True, text=True)
        assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


class TestListing:
    def test_lists_a_program_with_its_arguments_and_parent(self):
        """list_processes finds a running program by name, with its argv and parent pid."""
        proc = start_child(["sleep", "271"])
        try:
            found = [p for p in list_processes("sleep") if p.pid == proc.pid]
            assert len(found) == 1
            assert found[0].argv == ("sleep", "271") and found[0].ppid == os.getpid()
            assert found[0].id == ProcessId.of(proc.pid)
        finally:
            assert end_process(ProcessId.of(proc.pid))
            proc.wait()


STORM_CHILD = textwrap.dedent("""
    import logging, sys, threading, time
    from strongroom.cli import interrupts_end_jobs
    from strongroom.processes import start_child

    log = logging.getLogger("strongroom.test")
    log.addHandler(logging.NullHandler())
    stop = threading.Event()

    def chatter():  # log records from another thread all along
        while not stop.is_set():
            log.warning("tick")

    threading.Thread(target=chatter, daemon=True).start()
    deadline = time.monotonic() + float(sys.argv[1])
    caught = 0

    def starts():
        global caught
        while time.monotonic() < deadline:
            try:
                start_child(["true"]).wait()
            except KeyboardInterrupt:
                caught += 1

    ready = False
    with interrupts_end_jobs():
        while time.monotonic() < deadline:  # an interrupt outside a start: start again
            try:
                if not ready:  # the handlers are in place: signals may come
                    ready = True
                    print("ready", flush=True)
                starts()
            except KeyboardInterrupt:
                caught += 1
    stop.set()
    done = threading.Event()

    def late():  # a record and a child from another thread: the logging lock must be free
        log.warning("late")
        start_child(["true"]).wait()
        done.set()

    threading.Thread(target=late, daemon=True).start()
    print("ok" if done.wait(30) else "hung", caught, flush=True)
""")


def test_ctrl_c_while_children_start_never_leaves_the_logging_lock_held(tmp_path):
    """Ctrl-C arriving again and again while the main thread starts children (and another
    thread logs): afterwards a log record and a child start from another thread still work.
    (A signal handler raising inside Python's at-fork hooks left logging's lock held.)"""
    import random
    import time

    script = tmp_path / "storm.py"
    script.write_text(STORM_CHILD)
    outcomes = []
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, str(script), "4"], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        until = time.monotonic() + 2.5  # the child listens for 4 s: none comes after its handlers are gone
        while time.monotonic() < until and proc.poll() is None:
            time.sleep(random.uniform(0.0002, 0.002))
            proc.send_signal(signal.SIGINT)
        try:
            outcomes.append(proc.communicate(timeout=60)[0].split())
        except subprocess.TimeoutExpired:
            proc.kill()
            outcomes.append(["timeout"])
    assert all(o and o[0] == "ok" for o in outcomes), outcomes
    assert sum(int(o[1]) for o in outcomes) > 0  # the signals did interrupt child starts


def test_a_signal_another_thread_receives_waits_until_the_child_has_started(monkeypatch):
    """Ctrl-C received by another thread while the main thread starts a child: the command
    line's handler (run in the main thread, where the start holds the signals back) waits
    until the child has started, then ends it and raises; it never runs inside the start."""
    import threading
    import time

    import strongroom.processes as processes
    from strongroom.cli import interrupts_end_jobs

    idle = threading.Event()
    other = threading.Thread(target=idle.wait, daemon=True)
    other.start()
    real_popen = subprocess.Popen
    inside: list[str] = []

    def popen_with_a_signal(*args, **kwargs):  # the signal lands in the middle of the start
        inside.append("begun")
        signal.pthread_kill(other.ident, signal.SIGINT)
        until = time.monotonic() + 0.5
        while time.monotonic() < until:  # Python checks for handlers between instructions
            pass
        child = real_popen(*args, **kwargs)
        inside.append("started")
        return child

    monkeypatch.setattr(processes.subprocess, "Popen", popen_with_a_signal)
    try:
        with interrupts_end_jobs(), pytest.raises(KeyboardInterrupt):
            start_child(["sleep", "30"])
    finally:
        idle.set()
    assert inside == ["begun", "started"]  # the handler did not raise inside the start
    assert processes._deferred == [] and processes._starting == 0
    assert not processes.children_ended()  # the job it stopped is over: the next one is not being stopped

