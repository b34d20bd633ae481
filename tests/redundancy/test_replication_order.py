"""The copy order of a replication, put by put: a group's first copy starts only once every copy
of the groups it comes after has ended, whatever overlaps; the journal lands oldest first.

The order is stated here (:data:`REQUIRED`), not taken from the module.  The secondary is
a store that records when each put starts and ends (one counter for both), for a new
secondary (whose key slots, identity and packs are listed first) and for an incremental run.
"""

from __future__ import annotations

import threading

import attrs

from geokit import write_files
from strongroom.policy.redundancy import Redundancy
from strongroom.services.replication import Replicator, group_of
from strongroom.storage import open_store
from strongroom.vault import Vault


#: (group, the groups whose copies must all have ended before its first starts): commit order.
REQUIRED = {
    "identity": ("keys",),
    "index": ("packs", "keys"),
    "documents": ("identity",),
    "points": ("packs", "index", "documents", "identity", "keys"),
    "records": ("points",),
    "journal": ("points",),
    "heads": ("keys", "identity", "packs", "index", "documents", "points", "records", "journal"),
}


@attrs.define
class Recording:
    """The secondary's store; ``events``: (tick, "start" | "end", name) of every put."""

    inner: object
    events: list = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.inner.url

    def _event(self, what: str, name: str) -> None:
        with self._lock:
            self.events.append((len(self.events), what, name))

    def put(self, name, data):
        self._event("start", name)
        self.inner.put(name, data)
        self._event("end", name)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _check_order(events: list) -> set[str]:
    """Assert the order (see the module docstring); the groups that were copied."""
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    for tick, what, name in events:
        group = group_of(name)
        if group is None:
            continue  # the probe
        if what == "start":
            start[group.name] = min(start.get(group.name, tick), tick)
        else:
            end[group.name] = max(end.get(group.name, tick), tick)
    for group, befores in REQUIRED.items():
        for before in befores:
            if group in start and before in end:
                assert end[before] < start[group], f"{group} started before {before} ended"
    journal = [name for _, what, name in events if what == "end" and name.startswith("journal/")]
    assert journal == sorted(journal)
    return set(start)


def test_every_group_waits_for_the_groups_it_comes_after(strongroom_home, tmp_path, monkeypatch):
    """A first copy and an incremental one keep the order of GROUPS, put by put."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")
    secondary_url = str(tmp_path / "secondary")
    vault = Vault.create(str(tmp_path / "primary"), name="p", redundancy=Redundancy("geo", secondary_url))
    src = write_files(tmp_path / "src", count=20, size=300_000)
    vault.protect("files", "docs", {"paths": [str(src)]})
    vault.backup("docs")
    first = Recording(open_store(secondary_url, {}, create=True))
    assert Replicator(vault.store, first, concurrency=4).run().complete
    assert _check_order(first.events) >= {"keys", "identity", "packs", "index", "documents", "points", "journal",
                                          "heads"}
    write_files(src / "more", count=5, size=300_000, seed="b")
    vault.backup("docs")
    again = Recording(open_store(secondary_url, {}))
    assert Replicator(vault.store, again, concurrency=4).run().complete
    assert {"packs", "index", "points", "heads"} <= _check_order(again.events)
    assert Vault.open(secondary_url).verify(read_data=True).ok
