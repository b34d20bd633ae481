"""Every parser of data read from storage gives its clean error or a well-formed result.

A few hypothesis examples per target on each run (the big run is ``python -m
tests.fuzz.run``); a failure is shrunk to the smallest mutation that shows it.  Besides
the random mutations, each family is also given the cases that broke the parsers before
(fixed examples below), so that a regression shows on every run.
"""

from __future__ import annotations

import json

import pytest

from strongroom.errors import IntegrityError

from .corpus import build_corpus
from .mutations import Mutation, deeply_nested
from .run import fuzz
from .targets import FAMILIES, Unclean

EXAMPLES = 12


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("fuzz"))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_mutations_give_a_clean_error_or_a_well_formed_result(corpus, family):
    """Random damage to a real stored object never makes its parser raise anything else."""
    for target in FAMILIES[family](corpus):
        tally = fuzz(target, EXAMPLES, raise_first=True)
        assert tally.tried >= EXAMPLES // 2, target.name


def _document(corpus, kind: str) -> dict:
    return corpus.plain_document(corpus.documents[kind])


def _json(doc) -> Mutation:
    return Mutation(json.dumps(doc).encode(), "fixed example")


def _outcome(corpus, family: str, mode: str, mutation: Mutation) -> str:
    target = next(t for t in FAMILIES[family](corpus) if t.mode == mode)
    return target.attempt(mutation)


class TestKnownBreakers:
    """Documents that made a parser raise a TypeError, KeyError, AttributeError or
    OverflowError, or parse into a record that broke its first user."""

    @pytest.mark.parametrize("family", ["point header", "point status", "settings", "job record",
                                        "prune mark and sweep"])
    def test_a_document_that_is_not_an_object(self, corpus, family):
        """null, a number or a list where a JSON object belongs is damage."""
        for value in (None, 0, [1]):
            assert _outcome(corpus, family, "re-sealed JSON", _json(value)) == "IntegrityError"

    def test_a_header_without_its_ids_or_with_a_bad_time(self, corpus):
        """A point header lacking point_id, with a created time that is not ISO 8601, or
        with counters that are not numbers a float can hold."""
        doc = _document(corpus, "point header")
        for broken in ({k: v for k, v in doc.items() if k != "point_id"}, {**doc, "created": "2026-12-04T16:300"},
                       {**doc, "root": doc["root"][:-1] + "g"}, {**doc, "warnings": "text"},
                       {**doc, "stats": {**doc["stats"], "files": 10**400}}, {**doc, "stats": {"files": "many"}}):
            assert _outcome(corpus, "point header", "re-sealed JSON", _json(broken)) == "IntegrityError"

    def test_a_lease_with_a_naive_expiry_or_a_number_as_operation(self, corpus):
        """Listing leases survives an expiry without a time zone or an operation that is
        not text (it counts as an unreadable lease)."""
        doc = _document(corpus, "lease")
        for broken in ({**doc, "expires": "2026-01-01T00:00:00"}, {**doc, "operation": 7}):
            assert _outcome(corpus, "lease", "re-sealed JSON", _json(broken)) == "parsed"

    def test_a_mark_with_an_endless_grace_or_packs_as_a_list(self, corpus):
        """A prune mark whose grace is infinite or too large for a date, or whose packs are not an object."""
        doc = _document(corpus, "prune mark")
        target = next(t for t in FAMILIES["prune mark and sweep"](corpus)
                      if t.parser == "prune mark" and t.mode == "re-sealed JSON")
        for broken in ({**doc, "grace": 1e300}, {**doc, "grace": 10**400}, {**doc, "packs": []},
                       {**doc, "marked": "2026-01-01T00:00:00"}):
            assert target.attempt(_json(broken)) == "IntegrityError"

    def test_tree_entries_of_the_wrong_types(self, corpus):
        """A tree entry whose numbers are text, whose folder has no subtree, or two of one name."""
        doc = json.loads(corpus.tree_plain)
        folder = next(i for i, e in enumerate(doc["entries"]) if e["type"] == "dir")
        for change in ({"mode": "644"}, {"size": -1}, {"mtime_ns": 2**70}, {"subtree": None}, {"uid": True},
                       {"xattrs": [["user.a", "not base64!"]]}, {"chunks": ["00" * 31]}):
            entries = [dict(e) for e in doc["entries"]]
            entries[folder].update(change)
            mutation = _json({**doc, "entries": entries})
            assert _outcome(corpus, "tree node", "written JSON", mutation) == "IntegrityError", change
        twice = _json({**doc, "entries": doc["entries"] + doc["entries"][:1]})
        assert _outcome(corpus, "tree node", "written JSON", twice) == "IntegrityError"

    def test_json_nested_too_deep(self, corpus):
        """JSON nested deeper than Python's parser recurses is damage, not a RecursionError."""
        for family, mode in (("tree node", "written bytes"), ("strongroom.json", "clear bytes")):
            assert _outcome(corpus, family, mode, deeply_nested()) == "IntegrityError"
        assert _outcome(corpus, "key slot", "clear bytes", deeply_nested()) == "KeySlotError"

    def test_a_passphrase_slot_with_a_damaged_cost(self, corpus):
        """A passphrase slot whose scrypt cost is not numbers, or is huge, is not opened
        (the next slot is tried) and never makes scrypt allocate without bound."""
        name, raw = corpus.slots["passphrase"]
        doc = json.loads(raw)
        target = next(t for t in FAMILIES["key slot"](corpus)
                      if t.parser == "key slot (passphrase)" and t.mode == "clear JSON")
        for params in ({**doc["params"], "n": "1024"}, {**doc["params"], "n": 2**40},
                       {k: v for k, v in doc["params"].items() if k != "salt"}):
            assert target.attempt(_json({**doc, "params": params})) == "KeyNotAvailable"

    def test_strongroom_json_that_is_not_an_object_or_has_a_path_as_vault_id(self, corpus):
        """strongroom.json as a list, or with a vault id that would lead the key file elsewhere."""
        doc = json.loads(corpus.config)
        for broken in ([doc], {**doc, "vault_id": "../../etc/x"}, {**doc, "features": "abc"}):
            assert _outcome(corpus, "strongroom.json", "clear JSON", _json(broken)) == "IntegrityError"

    def test_unclean_outcomes_are_reported(self, corpus):
        """The harness itself: a parser that raises something else is a failure, not a pass."""
        target = FAMILIES["point header"](corpus)[0]
        broken = type(target)(target.parser, target.mode, target.strategy,
                              lambda data: {}["missing"], target.check, target.errors)
        with pytest.raises(Unclean, match="KeyError"):
            broken.attempt(Mutation(b"", "nothing"))
        assert issubclass(IntegrityError, target.errors)
