"""The slots of a folder of the backup walk: a small file read in a batch is done when
its batch's task has ended, read without waiting then, and a failed batch re-raises its
error where the entry is asked for."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from strongroom.catalog.entry import FILE, Entry
from strongroom.engine.slots import Batch, InBatch, OpenDir, is_done, is_ready, resolve


def _batch_of(task) -> tuple[Batch, Future, ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(1)
    batch = Batch()
    batch.future = pool.submit(task)
    batch.future.add_done_callback(batch.finished)
    return batch, batch.future, pool


class TestBatchSlots:
    def test_a_slot_of_a_batch_not_submitted_is_not_done(self):
        """Before its batch is submitted, a small file's slot is not done and its folder not ready."""
        folder = OpenDir("d", None)
        folder.slots.append(InBatch(Batch(), 0))
        assert not is_done(folder.slots[0])
        assert not is_ready(folder)

    def test_slots_are_done_when_their_batch_ends(self):
        """Every slot of a batch turns done once the task ends, and resolves to its entry."""
        release = threading.Event()
        entries = [Entry(f"f{i}", FILE, size=i) for i in range(3)]
        batch, future, pool = _batch_of(lambda: release.wait(10) and entries)
        folder = OpenDir("d", None)
        folder.slots.extend(InBatch(batch, i) for i in range(3))
        folder.slots.append(Entry("link", FILE))
        try:
            assert not is_ready(folder)
            release.set()
            future.result()
        finally:
            pool.shutdown(wait=True)
        assert batch.done and all(is_done(slot) for slot in folder.slots)
        assert is_ready(folder)
        assert [resolve(slot) for slot in folder.slots[:3]] == entries

    def test_a_failed_batch_raises_its_error_when_resolved(self):
        """A batch whose task failed is done, keeps no results, and its slots re-raise the error."""

        def fail():
            raise OSError("disk gone")

        batch, future, pool = _batch_of(fail)
        pool.shutdown(wait=True)
        assert batch.done and batch.results is None
        with pytest.raises(OSError, match="disk gone"):
            resolve(InBatch(batch, 0))
