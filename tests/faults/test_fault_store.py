"""FaultyStore: each kind of fault, the seeded schedule, and how the retry layer meets it."""

from __future__ import annotations

import threading

import pytest

from strongroom.errors import StorageError, TransientStorageError
from strongroom.storage import (
    FaultPlan, FaultyStore, MemoryStore, RetryingStore, capabilities_of, object_lock_of,
)


def filled(n: int = 50) -> MemoryStore:
    store = MemoryStore()
    for i in range(n):
        store.put(f"data/{i:02d}/p", bytes([i]) * 1000)
    return store


def outcomes(store: FaultyStore, n: int = 50) -> list[str]:
    seen = []
    for i in range(n):
        try:
            store.get(f"data/{i:02d}/p")
            seen.append("ok")
        except TransientStorageError:
            seen.append("transient")
        except StorageError:
            seen.append("permanent")
    return seen


class TestFaultPlan:
    def test_probabilities_are_checked(self):
        """A probability outside 0..1 is refused where the plan is made."""
        with pytest.raises(ValueError, match="transient"):
            FaultPlan(transient=1.5)

    def test_unknown_operations_are_refused(self):
        """Only Store operations can be named."""
        with pytest.raises(ValueError, match="frobnicate"):
            FaultPlan(operations={"get", "frobnicate"})


class TestSchedule:
    def test_same_seed_same_faults(self):
        """Two stores with the same plan fail the same calls; another seed fails others."""
        plan = FaultPlan(seed=11, transient=0.3, permanent=0.1)
        first = outcomes(FaultyStore(filled(), plan))
        assert first == outcomes(FaultyStore(filled(), plan))
        assert first != outcomes(FaultyStore(filled(), FaultPlan(seed=12, transient=0.3, permanent=0.1)))
        assert {"ok", "transient", "permanent"} <= set(first)

    def test_schedule_does_not_depend_on_thread_order(self):
        """Calls made from many threads in any order meet the same faults per name."""
        plan = FaultPlan(seed=5, transient=0.5)
        expected = outcomes(FaultyStore(filled(), plan))
        store = FaultyStore(filled(), plan)
        results: dict[int, str] = {}

        def one(i: int) -> None:
            try:
                store.get(f"data/{i:02d}/p")
                results[i] = "ok"
            except TransientStorageError:
                results[i] = "transient"

        threads = [threading.Thread(target=one, args=(i,)) for i in reversed(range(50))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [results[i] for i in range(50)] == expected

    def test_rates_follow_the_plan(self):
        """About the planned share of 2000 calls fails."""
        store = FaultyStore(filled(1), FaultPlan(seed=3, transient=0.05))
        failures = 0
        for _ in range(2000):
            try:
                store.get("data/00/p")
            except TransientStorageError:
                failures += 1
        assert 60 <= failures <= 140
        assert store.injected["transient"] == failures

    def test_prefixes_and_operations_limit_the_faults(self):
        """Faults hit only the named operations on names with the given prefixes."""
        store = FaultyStore(filled(), FaultPlan(transient=1.0, operations={"get"}, prefixes=("data/0",)))
        with pytest.raises(TransientStorageError):
            store.get("data/01/p")
        assert store.get("data/11/p") == bytes([11]) * 1000
        assert store.size("data/01/p") == 1000
        store.put("data/02/q", b"x")


class TestFaultKinds:
    def test_delay_sleeps_before_the_operation(self):
        """A delay fault sleeps for the planned time and then does the operation."""
        sleeps: list[float] = []
        store = FaultyStore(filled(), FaultPlan(delay=1.0, delay_seconds=0.25), sleep=sleeps.append)
        assert store.get("data/03/p") == bytes([3]) * 1000
        assert sleeps == [0.25]

    def test_truncated_put_leaves_a_prefix_and_a_retry_writes_it_whole(self):
        """A cut-off put stores a prefix and raises transiently; the retry layer rewrites it whole."""
        inner = MemoryStore()
        faulty = FaultyStore(inner, FaultPlan(seed=1, truncate=1.0, operations={"put"}))
        with pytest.raises(TransientStorageError, match="cut off"):
            faulty.put("data/aa/pack", b"z" * 10_000)
        assert len(inner.get("data/aa/pack")) < 10_000
        flaky_once = FaultyStore(inner, FaultPlan(seed=2, truncate=0.5, operations={"put"}))
        RetryingStore(flaky_once, sleep=lambda s: None, attempts=20).put("data/aa/pack", b"z" * 10_000)
        assert inner.get("data/aa/pack") == b"z" * 10_000

    def test_bitflip_changes_exactly_one_bit_of_reads(self):
        """A flipped read differs from the object in exactly one bit; the object is intact."""
        inner = filled()
        store = FaultyStore(inner, FaultPlan(bitflip=1.0))
        for read in (lambda: store.get("data/07/p"), lambda: store.get_range("data/07/p", 100, 300)):
            got = read()
            want = inner.get("data/07/p")[: len(got)] if len(got) == 1000 else inner.get_range("data/07/p", 100, 300)
            diff = sum(bin(a ^ b).count("1") for a, b in zip(got, want))
            assert diff == 1
        assert inner.get("data/07/p") == bytes([7]) * 1000
        assert store.injected["bitflip"] == 2

    def test_permanent_faults_are_not_retried(self):
        """The retry layer gives up on a permanent fault at once, with its message."""
        faulty = FaultyStore(filled(), FaultPlan(permanent=1.0))
        store = RetryingStore(faulty, sleep=lambda s: pytest.fail("slept on a permanent error"))
        with pytest.raises(StorageError, match="injected permanent fault: get 'data/01/p' refused"):
            store.get("data/01/p")
        assert faulty.injected["permanent"] == 1

    def test_endless_transient_faults_give_up_clearly(self):
        """A store that always drops the connection fails after the planned attempts, saying so."""
        store = RetryingStore(FaultyStore(filled(), FaultPlan(transient=1.0)), attempts=3, sleep=lambda s: None)
        with pytest.raises(StorageError, match=r"get 'data/01/p' on memory-store: failed after 3 attempts"):
            store.get("data/01/p")

    def test_capabilities_pass_through(self):
        """The decorator reports its inner store's capabilities and object lock."""
        store = FaultyStore(MemoryStore(), FaultPlan())
        assert capabilities_of(store) == capabilities_of(MemoryStore())
        assert not object_lock_of(store).enabled
