"""Progress with totals, rate and ETA: the meter on a fake clock, the line on a real
terminal (a pty), and the JSON status events of --progress-json."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys

import pytest

from strongroom.cli.meter import Meter, MeterLine, StatusEvents, format_eta
from strongroom.testing import Cli

MiB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestMeter:
    def test_percent_rate_and_eta_follow_the_numbers(self):
        """Done of total gives the percent; bytes over time give the rate; what is left
        over the rate gives the ETA."""
        clock = Clock()
        meter = Meter(clock)
        meter.update(bytes=0, files=0, total=100 * MiB, total_files=10)
        clock.now += 1
        meter.update(bytes=10 * MiB, files=1)
        assert meter.percent == pytest.approx(10.0)
        assert meter.rate == pytest.approx(10 * MiB)
        assert meter.eta_seconds == pytest.approx(9.0)
        line = meter.line(200)
        assert line.startswith(" 10.0%")
        assert "10.0 MiB/100.0 MiB" in line and "1/10 files" in line
        assert "10.0 MiB/s" in line and "ETA 0:09" in line

    def test_the_rate_is_smoothed(self):
        """A burst moves the rate part of the way, not all of it."""
        clock = Clock()
        meter = Meter(clock)
        clock.now += 1
        meter.update(bytes=10 * MiB, total=1000 * MiB)
        clock.now += 1
        meter.update(bytes=110 * MiB)  # 100 MiB in a second, after 10 MiB/s
        assert 10 * MiB < meter.rate < 100 * MiB

    def test_no_total_means_no_percent_or_eta(self):
        """Without an estimate the line says so rather than inventing one."""
        clock = Clock()
        meter = Meter(clock)
        clock.now += 2
        meter.update(bytes=4 * MiB, files=3)
        line = meter.line(200)
        assert "?" in line and "ETA --:--" in line and "2.0 MiB/s" in line and "3 files" in line
        assert meter.status()["percent"] is None and meter.status()["eta_seconds"] is None

    def test_eta_text(self):
        """ETA reads m:ss, h:mm:ss, or --:-- when unknown."""
        assert format_eta(7) == "0:07"
        assert format_eta(754) == "12:34"
        assert format_eta(3723) == "1:02:03"
        assert format_eta(None) == "--:--"

    def test_a_long_current_path_is_shortened_to_the_width(self):
        """The current file is cut in the middle so that the line fits."""
        meter = Meter(Clock())
        meter.update(bytes=1, total=2, current="srv/" + "x" * 200 + "/index.html")
        line = meter.line(80)
        assert len(line) <= 80 and "..." in line and line.endswith("index.html")


class TestLine:
    def test_redrawn_at_most_every_interval(self):
        """Updates closer together than the interval do not redraw; done clears the line."""
        clock = Clock()
        out = io.StringIO()
        line = MeterLine(Meter(clock), out, interval=0.2, width=100)
        line.update(bytes=0, total=100)
        clock.now += 0.05
        line.update(bytes=10)
        clock.now += 0.3
        line.update(bytes=20)
        drawn = [d for d in out.getvalue().split("\r") if d.strip()]
        assert len(drawn) == 2 and drawn[1].startswith(" 20.0%")
        line.done()
        assert out.getvalue().endswith("\r")

    def test_the_complete_line_is_always_drawn(self):
        """Reaching the total draws the line at once, whatever the interval."""
        clock = Clock()
        out = io.StringIO()
        line = MeterLine(Meter(clock), out, interval=10, width=100)
        line.update(bytes=0, total=100)
        clock.now += 0.01
        line.update(bytes=100)
        assert "100.0%" in out.getvalue() and "ETA 0:00" in out.getvalue()


class TestStatusEvents:
    def test_events_at_most_once_a_second_then_the_summary(self):
        """Status events are throttled to the interval; the summary is typed."""
        clock = Clock()
        seen: list[dict] = []
        events = StatusEvents(Meter(clock), interval=1.0, emit=seen.append)
        for i in range(10):
            events.update(bytes=i * MiB, files=i, total=10 * MiB)
            clock.now += 0.25
        events.done()
        events.summary({"id": "p"})
        types = [e["type"] for e in seen]
        assert types[-1] == "summary" and seen[-1]["id"] == "p"
        assert types.count("status") == 4  # t=0, 1, 2 and the last numbers
        assert seen[-2]["bytes"] == 9 * MiB and seen[-2]["percent"] == 90.0


@pytest.fixture
def big_item(tmp_path, cli):
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(24 * MiB))
    (src / "small.txt").write_text("small\n")
    cli("vault", "create", cli.vault_url, "--name", "progress")
    cli("protect", "files", "big", "--path", str(src))
    return src


def _run_in_pty(args: list[str]) -> tuple[int, str]:
    """Run strongroom with its standard error on a pseudo-terminal; return (exit code, what it drew)."""
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    main, child = pty.openpty()
    proc = subprocess.Popen([exe, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=child)
    os.close(child)
    drawn = b""
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        drawn += data
    proc.communicate(timeout=300)
    os.close(main)
    return proc.returncode, drawn.decode("utf-8", "replace")


class TestOnATerminal:
    def test_backup_draws_percent_rate_and_eta(self, big_item, cli):
        """A backup with stderr on a terminal draws the line with %, a rate and an ETA."""
        code, drawn = _run_in_pty(["--vault", cli.vault_url, "backup", "big"])
        assert code == 0, drawn
        lines = [line for line in drawn.split("\r") if line.strip()]
        full = [line for line in lines if re.search(r"\d+\.\d% .* [\d.]+ \w*B/s  ETA \d+:\d\d", line)]
        assert full, lines
        assert any("100.0%" in line and "24.0 MiB/24.0 MiB" in line for line in full), full

    def test_not_on_a_terminal_nothing_is_drawn(self, big_item, cli):
        """Piped, the backup prints its result and no progress line."""
        result = cli("backup", "big")
        assert "\r" not in result.stderr and "ETA" not in result.stderr


    def test_verify_read_data_draws_packs_and_bytes_of_the_total(self, big_item, cli):
        """vault verify --read-data on a terminal counts packs and bytes of the total, with an ETA."""
        cli("backup", "big")
        code, drawn = _run_in_pty(["--vault", cli.vault_url, "vault", "verify", "--read-data"])
        assert code == 0, drawn
        lines = [line for line in drawn.split("\r") if "reading packs" in line]
        assert any(re.search(r"100\.0%  [\d.]+ MiB/[\d.]+ MiB  (\d+)/\1 packs  [\d.]+ \w*B/s  ETA", line)
                   for line in lines), lines


    def test_replicate_draws_objects_of_the_total(self, tmp_path, monkeypatch):
        """vault replicate on a terminal counts the objects copied of those planned, with the bytes' rate."""
        monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")  # the backup leaves every copy to replicate
        src = tmp_path / "src"
        src.mkdir()
        (src / "a.bin").write_bytes(os.urandom(2 * MiB))
        primary = str(tmp_path / "primary")
        cli = Cli(primary)
        cli("vault", "create", primary, "--name", "geo", "--redundancy", "geo", "--secondary", str(tmp_path / "s"))
        cli("protect", "files", "docs", "--path", str(src))
        cli("backup", "docs")
        code, drawn = _run_in_pty(["--vault", primary, "vault", "replicate"])
        assert code == 0, drawn
        lines = [line for line in drawn.split("\r") if "copying objects" in line]
        assert any(re.search(r"100\.0%  [\d.]+ \w*B  (\d+)/\1 objects  [\d.]+ \w*B/s  ETA 0:00", line)
                   for line in lines), lines


class TestMessagesWithNumbers:
    def test_a_step_is_drawn_with_percent_and_eta(self, monkeypatch):
        """A message that carries numbers (Step) gets percent and ETA; a plain one is drawn as it is."""
        from strongroom.cli.output import Progress
        from strongroom.engine.progress import Step

        class Terminal(io.StringIO):
            def isatty(self) -> bool:
                return True

        screen = Terminal()
        monkeypatch.setattr(sys, "stderr", screen)
        progress = Progress(True)
        progress.show("expiring points")
        progress.show(Step("deleting packs: 5/5", done=5, total=5, unit="packs"))
        progress.done()
        drawn = [d for d in screen.getvalue().split("\r") if d.strip()]
        assert drawn[0].endswith("expiring points")
        assert drawn[1].startswith("deleting packs  100.0%  5/5 packs  ETA 0:00")
        assert str(Step("reading packs: 1/2", done=1, total=2)) == "reading packs: 1/2"


class TestMessageEvents:
    def test_phases_and_counted_steps_become_status_events(self):
        """A plain message is a phase event; a Step is counted in its own phase, with its unit."""
        from strongroom.cli.meter import MessageEvents
        from strongroom.engine.progress import Step

        clock = Clock()
        seen: list[dict] = []
        events = MessageEvents(StatusEvents(Meter(clock, unit=""), interval=1.0, emit=seen.append))
        events.show("checking trees")
        events.show(Step("reading packs: 1/4", done=1, total=4, unit="packs", bytes=10, total_bytes=40))
        clock.now += 2
        events.show(Step("reading packs: 4/4", done=4, total=4, unit="packs", bytes=40, total_bytes=40))
        events.done()
        events.summary({"ok": True})
        assert [e.get("phase") for e in seen[:3]] == ["checking trees", "reading packs", "reading packs"]
        assert seen[2]["unit"] == "packs" and seen[2]["percent"] == 100.0 and seen[2]["files"] == 4
        assert seen[-1] == {"type": "summary", "ok": True}


class TestProgressJson:
    def test_backup_and_restore_events_end_with_a_summary(self, big_item, cli, tmp_path):
        """--progress-json prints status events, one a line, then the summary; --json alone
        still prints one document."""
        out = cli("backup", "big", "--progress-json").stdout
        docs = [json.loads(line) for line in out.splitlines()]
        assert {d["schema"] for d in docs} == {1}
        assert [d["type"] for d in docs][-1] == "summary" and set(d["type"] for d in docs[:-1]) == {"status"}
        last = docs[-2]
        assert last["percent"] == 100.0 and last["bytes"] == last["total"] == 24 * MiB + 6
        assert docs[-1]["stats"]["files"] == 2 and docs[-1]["id"]
        plain = json.loads(cli("backup", "big", "--json").stdout)  # one document, as before
        assert "type" not in plain and plain["stats"]["files_unchanged"] == 2
        out = cli("restore", "big", "--target", str(tmp_path / "out"), "--json", "--progress").stdout
        docs = [json.loads(line) for line in out.splitlines()]
        assert docs[-1]["type"] == "summary" and docs[-1]["stats"]["bytes_written"] == 24 * MiB + 6
        assert docs[-2]["type"] == "status" and docs[-2]["total"] == 24 * MiB + 6 and docs[-2]["percent"] == 100.0

    def test_prune_events_name_their_phases(self, big_item, cli):
        """prune --progress-json: phase events, then the prune report as the summary."""
        cli("backup", "big")
        docs = [json.loads(line) for line in cli("prune", "--dry-run", "--progress-json").stdout.splitlines()]
        assert "reading the index" in [d.get("phase") for d in docs if d["type"] == "status"]
        assert docs[-1]["type"] == "summary" and docs[-1]["dry_run"] is True
