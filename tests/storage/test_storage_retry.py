"""RetryingStore: which failures are retried, how long it waits, and when it gives up."""

from __future__ import annotations

import errno

import pytest

from strongroom.errors import ObjectNotFound, StorageError, TransientStorageError
from strongroom.storage import MemoryStore, RetryingStore


class Flaky(MemoryStore):
    """A MemoryStore whose calls fail with ``error`` the first ``failures`` times."""

    def __init__(self, failures: int, error: BaseException) -> None:
        super().__init__()
        self.failures = failures
        self.error = error
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error

    def get(self, name):
        self._maybe_fail()
        return super().get(name)

    def put(self, name, data):
        self._maybe_fail()
        return super().put(name, data)

    def list(self, prefix=""):
        self._maybe_fail()
        return super().list(prefix)


def retrying(inner, **kwargs):
    sleeps: list[float] = []
    store = RetryingStore(inner, sleep=sleeps.append, **kwargs)
    return store, sleeps


class TestRetryingStore:
    def test_transient_failures_are_retried_with_growing_delays(self):
        """Three transient failures then success: the call succeeds after three sleeps."""
        inner = Flaky(3, TransientStorageError(message="connection reset"))
        MemoryStore.put(inner, "x", b"data")
        store, sleeps = retrying(inner, attempts=5, base_delay=0.2, max_delay=5.0)
        assert store.get("x") == b"data"
        assert inner.calls == 4
        assert len(sleeps) == 3
        assert sleeps == sorted(sleeps) and sleeps[-1] > sleeps[0]
        for n, pause in enumerate(sleeps, start=1):
            cap = 0.2 * 2 ** (n - 1)
            assert cap / 2 <= pause <= cap

    def test_delays_are_capped(self):
        """No pause exceeds max_delay however many attempts are made."""
        store = RetryingStore(MemoryStore(), attempts=20, base_delay=1.0, max_delay=3.0)
        assert all(store.delay(n) <= 3.0 for n in range(1, 20))
        assert store.delay(10) >= 1.5

    def test_gives_up_after_attempts_with_a_clear_message(self):
        """A store that always fails transiently raises StorageError naming the attempts."""
        inner = Flaky(10**9, TransientStorageError(message="timed out talking to host"))
        store, sleeps = retrying(inner, attempts=4)
        with pytest.raises(StorageError) as info:
            store.put("data/ab/p", b"x")
        assert not isinstance(info.value, TransientStorageError)
        message = str(info.value)
        assert "4 attempts" in message and "timed out talking to host" in message
        assert "data/ab/p" in message
        assert inner.calls == 4
        assert len(sleeps) == 3
        assert isinstance(info.value.__cause__, TransientStorageError)

    def test_object_not_found_is_not_retried(self):
        """A missing object is a final answer: one call, no sleep."""
        inner = Flaky(0, TransientStorageError(message="unused"))
        store, sleeps = retrying(inner)
        with pytest.raises(ObjectNotFound):
            store.get("missing")
        assert inner.calls == 1 and sleeps == []

    def test_permanent_errors_are_not_retried(self):
        """A permanent StorageError is raised at once."""
        inner = Flaky(1, StorageError(message="permission denied"))
        store, sleeps = retrying(inner)
        with pytest.raises(StorageError, match="permission denied"):
            store.get("x")
        assert inner.calls == 1 and sleeps == []

    @pytest.mark.parametrize(
        "error",
        [
            ConnectionResetError("reset by peer"),
            TimeoutError("slow"),
            OSError(errno.ETIMEDOUT, "timed out"),
        ],
    )
    def test_raw_transient_os_errors_are_retried(self, error):
        """Connection resets and timeouts that an inner store lets through are retried too."""
        inner = Flaky(2, error)
        store, sleeps = retrying(inner)
        store.put("x", b"1")
        assert inner.calls == 3 and len(sleeps) == 2

    def test_programming_errors_are_not_retried(self):
        """A ValueError (bad name) propagates at once."""
        store, sleeps = retrying(MemoryStore())
        with pytest.raises(ValueError):
            store.get("../etc/passwd")
        assert sleeps == []

    def test_list_is_retried_as_a_whole(self):
        """A listing that fails first is repeated and yields each name once."""
        inner = Flaky(1, TransientStorageError(message="reset"))
        for name in ("a/1", "a/2"):
            MemoryStore.put(inner, name, b"x")
        store, sleeps = retrying(inner)
        assert list(store.list("a/")) == ["a/1", "a/2"]
        assert len(sleeps) == 1

    def test_exposes_inner_and_url(self):
        """The wrapped store is available as ``inner`` and its url is shown unchanged."""
        inner = MemoryStore()
        store = RetryingStore(inner)
        assert store.inner is inner
        assert store.url == inner.url

    def test_rejects_zero_attempts(self):
        """At least one attempt is required."""
        with pytest.raises(ValueError):
            RetryingStore(MemoryStore(), attempts=0)
