"""ReadSlots: one large file fewer read at once while the walk is busy, all of them while
it waits or once it has ended, never none (readslots.py)."""

from __future__ import annotations

import threading
import time

import pytest

from strongroom.engine.readslots import ReadSlots


class _Readers:
    """Threads that each hold a slot until told to let go; counts the most at once."""

    def __init__(self, slots: ReadSlots, count: int) -> None:
        self.slots = slots
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()
        self.go = threading.Event()
        self.threads = [threading.Thread(target=self._read) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _read(self) -> None:
        with self.slots.reading():
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            self.go.wait(30)
            with self.lock:
                self.running -= 1

    def settle(self, expected: int) -> int:
        """The number running once it is ``expected`` (or after 5 s)."""
        deadline = time.monotonic() + 5
        while self.running != expected and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # none more starts meanwhile
        return self.running

    def finish(self) -> None:
        self.go.set()
        for thread in self.threads:
            thread.join(30)


@pytest.mark.parametrize("slots", [2, 4])
def test_a_busy_walk_takes_one_slot_until_it_waits_or_ends(slots):
    """With the walk busy, one reader fewer than slots runs; while it waits, and once it
    has ended, all of them."""
    read_slots = ReadSlots(slots)
    read_slots.walking(True)
    readers = _Readers(read_slots, slots + 1)
    try:
        assert readers.settle(slots - 1) == slots - 1
        with read_slots.walk_waits():
            assert readers.settle(slots) == slots
        read_slots.walking(False)
        assert readers.settle(slots) == slots
    finally:
        read_slots.walking(False)
        readers.finish()
    assert readers.most == slots


def test_one_slot_reads_one_file_whatever_the_walk_does():
    """With one slot, a busy walk never stops the reads: one at a time."""
    read_slots = ReadSlots(1)
    read_slots.walking(True)
    readers = _Readers(read_slots, 3)
    try:
        assert readers.settle(1) == 1
    finally:
        readers.finish()
    assert readers.most == 1


def test_a_walk_that_is_not_busy_gives_nothing_back_when_it_waits():
    """A walk that was not busy (a first backup) waits without freeing a slot it does not
    hold: the readers stay at one per slot."""
    read_slots = ReadSlots(2)
    readers = _Readers(read_slots, 4)
    try:
        assert readers.settle(2) == 2
        with read_slots.walk_waits():
            assert readers.settle(2) == 2
        assert read_slots.allowed == 2
    finally:
        readers.finish()
    assert readers.most == 2
