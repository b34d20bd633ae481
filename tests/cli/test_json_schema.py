"""Every JSON document carries its schema version; tables show times with their zone."""

from __future__ import annotations

import datetime as dt
import json

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
