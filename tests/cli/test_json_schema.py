"""Every JSON document carries its schema version; tables show times with their zone."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from strongroom.cli.output import SCHEMA, emit_json, json_document, short_time


class TestJsonDocument:
    def test_an_object_gets_the_schema_first(self, capsys):
        """A top-level object is printed with "schema" as its first key, its fields unchanged."""
        emit_json({"name": "docs", "points": 3})
        printed = capsys.readouterr().out
        assert json.loads(printed) == {"schema": SCHEMA, "name": "docs", "points": 3}
        assert list(json.loads(printed))[0] == "schema"

    def test_an_array_stays_an_array_of_stamped_objects(self, capsys):
        """A top-level array stays an array; each object in it carries the schema."""
        emit_json([{"id": "a"}, {"id": "b"}])
        assert json.loads(capsys.readouterr().out) == [{"schema": SCHEMA, "id": "a"}, {"schema": SCHEMA, "id": "b"}]

    def test_compact_is_one_line(self, capsys):
        """compact=True prints the document on one line (a stream of documents)."""
        emit_json({"started": "x"}, compact=True)
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1 and json.loads(lines[0]) == {"schema": SCHEMA, "started": "x"}

    def test_nested_objects_are_left_alone(self):
        """Only the top level is stamped: nested objects keep their own fields."""
        assert json_document({"a": {"b": 1}}) == {"schema": SCHEMA, "a": {"b": 1}}


class TestShortTime:
    def test_names_the_offset(self):
        """A table time ends with its UTC offset."""
        shown = short_time("2026-12-04T22:06:00+00:00")
        assert shown[-6] in "+-" and shown[-3] == ":"

    def test_in_a_zone_it_is_converted_and_labelled(self):
        """Given a zone, the time is that zone's wall clock, with offset and zone name."""
        moment = dt.datetime(2026, 12, 4, 22, 6, tzinfo=dt.timezone.utc)
        assert short_time(moment, "Europe/Berlin") == "2026-12-04 23:06:00 +01:00 (Europe/Berlin)"
        assert short_time(moment.isoformat(), "UTC") == "2026-12-04 22:06:00 +00:00 (UTC)"

    @pytest.mark.parametrize("empty", [None, ""])
    def test_no_time_is_a_dash(self, empty):
        """No time is shown as '-'."""
        assert short_time(empty) == "-"


class TestTimesInTables:
    @pytest.fixture
    def berlin(self, tmp_path, cli):
        src = tmp_path / "src"
        src.mkdir()
        (src / "a.txt").write_text("a\n")
        cli("vault", "create", cli.vault_url)
        cli("policy", "create", "nightly", "--daily", "03:00", "--timezone", "Europe/Berlin", "--keep-daily", "3")
        cli("protect", "files", "docs", "--path", str(src), "--policy", "nightly")
        cli("backup", "docs")

    def test_a_policy_shows_its_next_runs_in_its_zone(self, berlin, cli):
        """policy show and schedule give a Berlin policy's runs at 03:00 Berlin time, naming the zone."""
        shown = cli("policy", "show", "nightly").stdout
        (line,) = [line for line in shown.splitlines() if line.startswith("next runs:")]
        assert "(Europe/Berlin)" in line and line.count("03:00:00 +0") == 5
        (row,) = [line for line in cli("schedule").stdout.splitlines() if line.startswith("docs ")]
        assert "03:00:00 +0" in row and "(Europe/Berlin)" in row

    def test_jobs_and_points_show_offsets(self, berlin, cli):
        """The times in the jobs and points tables end with their UTC offset."""
        offset = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d")
        for command in ("jobs", "points"):
            rows = cli(command).stdout.splitlines()[1:]
            assert rows and all(offset.search(row) for row in rows), command

    def test_vault_info_is_a_readable_report(self, berlin, cli):
        """vault info prints labelled lines, no Python dict or list repr, the creation time with its offset."""
        lines = cli("vault", "info").stdout.splitlines()
        labels = [line.split(":")[0] for line in lines]
        assert labels[:3] == ["url", "vault id", "name"] and "chunker" in labels and "redundancy" in labels
        text = "\n".join(lines)
        assert not any(mark in text for mark in ("{", "}", "['", "':")), text
        (created,) = [line for line in lines if line.startswith("created:")]
        assert re.search(r"[+-]\d\d:\d\d$", created)
