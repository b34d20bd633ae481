"""The rate limit decorator: token-bucket accounting (on an injected clock), the store
around it, and how --limit-upload/--limit-download and the storage options set it."""

from __future__ import annotations

import pytest

from strongroom.errors import StorageError
from strongroom.storage import MemoryStore, RetryingStore, open_store
from strongroom.storage.ratelimit import RateLimitedStore, TokenBucket, limit_from_option
from strongroom.testing import StoreContract
from vaultkit import assert_one_line_error


class FakeClock:
    """Time that moves only when someone sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def bucket(rate: float, burst: float | None = None) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep), clock


class TestTokenBucket:
    def test_a_full_bucket_lets_the_burst_through_at_once(self):
        """A new bucket holds one second's worth: that much passes without a wait."""
        limiter, clock = bucket(1000)
        limiter.take(600)
        limiter.take(400)
        assert clock.sleeps == [] and limiter.taken == 1000

    def test_beyond_the_burst_waits_for_the_rate(self):
        """Once empty, each byte costs 1/rate seconds: 2500 more bytes at 1000 B/s wait 2.5 s."""
        limiter, clock = bucket(1000)
        limiter.take(1000)
        for _ in range(5):
            limiter.take(500)
        assert sum(clock.sleeps) == pytest.approx(2.5)
        assert limiter.waited == pytest.approx(2.5)

    def test_time_passing_refills_up_to_the_burst_only(self):
        """An idle hour saves up one burst, not an hour's worth."""
        limiter, clock = bucket(1000)
        limiter.take(1000)
        clock.now += 3600
        limiter.take(1000)
        assert clock.sleeps == []
        limiter.take(1000)
        assert clock.sleeps == [pytest.approx(1.0)]

    def test_an_object_larger_than_the_burst_passes_and_leaves_a_debt(self):
        """A 5000-byte object at 1000 B/s goes through (never refused); the next call waits
        the 4 s of debt plus its own share."""
        limiter, clock = bucket(1000)
        limiter.take(5000)
        assert clock.sleeps == []
        limiter.take(1000)
        assert sum(clock.sleeps) == pytest.approx(5.0)

    def test_the_long_run_rate_holds(self):
        """1 MiB in 4 KiB pieces at 64 KiB/s with a 64 KiB burst takes (1 MiB - 64 KiB) / 64 KiB/s."""
        limiter, clock = bucket(64 * 1024)
        start = clock.now
        for _ in range(256):
            limiter.take(4096)
        assert clock.now - start == pytest.approx((1024 - 64) / 64)

    def test_pay_waits_off_what_already_arrived(self):
        """pay accounts bytes after the fact: the wait comes after, for the debt only."""
        limiter, clock = bucket(1000)
        limiter.pay(800)
        assert clock.sleeps == []
        limiter.pay(1200)
        assert clock.sleeps == [pytest.approx(1.0)]

    def test_options_are_kib_per_second_and_checked(self):
        """limit_upload=2 is 2048 B/s; zero, negative, text and true are refused in one line."""
        assert limit_from_option("limit_upload", 2) == 2048
        assert limit_from_option("limit_upload", "0.5") == 512
        assert limit_from_option("limit_upload", None) is None
        for bad in (0, -1, "fast", True, float("inf")):
            with pytest.raises(ValueError, match="limit_upload must be a positive number"):
                limit_from_option("limit_upload", bad)


class TestRateLimitedStore:
    def test_puts_count_against_upload_gets_against_download(self):
        """Bytes put go to the upload bucket, bytes got (whole or ranged) to the download one;
        nothing else is counted."""
        up, up_clock = bucket(1000)
        down, down_clock = bucket(1000)
        store = RateLimitedStore(MemoryStore(), upload=up, download=down)
        for i in range(3):
            store.put(f"data/{i}", bytes(1000))
        assert store.get("data/0") == bytes(1000)
        assert store.get_range("data/1", 10, 500) == bytes(500)
        assert store.exists("data/2") and store.size("data/2") == 1000 and sorted(store.list("data/"))
        store.delete("data/2")
        assert (up.taken, down.taken) == (3000, 1500)
        assert sum(up_clock.sleeps) == pytest.approx(2.0) and sum(down_clock.sleeps) == pytest.approx(0.5)

    def test_one_direction_only(self):
        """With only a download limit, puts are not slowed."""
        down, clock = bucket(10)
        store = RateLimitedStore(MemoryStore(), download=down)
        store.put("x", bytes(10_000))
        assert clock.sleeps == [] and down.taken == 0


class TestLimitedStoreKeepsTheContract(StoreContract):
    """A rate-limited store over a local folder, opened as the CLI opens it, keeps the Store
    contract (generous limits: the contract's objects pass at once)."""

    @pytest.fixture
    def store(self, tmp_path):
        store = open_store(str(tmp_path / "s"), {"limit_upload": 1 << 20, "limit_download": 1 << 20},
                           create=True)
        assert isinstance(store.inner, RateLimitedStore)
        return store


class TestOpening:
    def test_open_store_wraps_the_store_under_the_retry(self, tmp_path):
        """limit_upload/limit_download storage options put the limiter under the retry
        decorator, with the rates in bytes per second."""
        store = open_store(str(tmp_path / "s"), {"limit_upload": 8, "limit_download": 16}, create=True)
        assert isinstance(store, RetryingStore) and isinstance(store.inner, RateLimitedStore)
        assert (store.inner.upload.rate, store.inner.download.rate) == (8192, 16384)
        store.put("a", b"abc")
        assert store.get("a") == b"abc" and store.inner.upload.taken == 3 and store.inner.download.taken == 3

    def test_no_option_no_limiter(self, tmp_path):
        """Without the options the store is not wrapped."""
        store = open_store(str(tmp_path / "s"), {}, create=True)
        assert not isinstance(store.inner, RateLimitedStore)

    def test_a_bad_value_is_a_storage_error(self, tmp_path):
        """A value that is not a positive number is refused when the store is opened."""
        with pytest.raises(StorageError, match="limit_download must be a positive number"):
            open_store(str(tmp_path / "s"), {"limit_download": "lots"})


class TestCommandLine:
    def test_root_options_reach_the_vault_store(self, cli, vault_url, tmp_path):
        """--limit-upload/--limit-download set the limits of the store the command opens; a
        backup and a restore go through them."""
        from strongroom.cli import AppContext

        seen = {}
        original = AppContext.open_vault

        def spy(self):
            vault = original(self)
            seen["options"] = dict(self.storage_options)
            return vault

        src = tmp_path / "src"
        src.mkdir()
        (src / "f").write_bytes(b"x" * 5000)
        cli("vault", "create", vault_url)
        cli("protect", "files", "f", "--path", str(src))
        try:
            AppContext.open_vault = spy
            cli("--limit-upload", "100000", "--limit-download", "200000", "backup", "f")
        finally:
            AppContext.open_vault = original
        assert seen["options"] == {"limit_upload": 100000.0, "limit_download": 200000.0}
        cli("--limit-download", "100000", "restore", "f", "--target", str(tmp_path / "out"))
        assert (tmp_path / "out" / str(src).lstrip("/") / "f").read_bytes() == b"x" * 5000

    def test_zero_is_refused_by_the_option(self, cli):
        """--limit-upload 0 is a usage error (exit 2) before anything is opened."""
        done = cli("--limit-upload", "0", "items", expect=None)
        assert done.exit_code == 2 and "--limit-upload" in done.output

    def test_config_file_value_is_checked(self, cli, vault_url, strongroom_home):
        """A bad limit in the config file is one error line naming the option."""
        cli("vault", "create", vault_url)
        (strongroom_home / "config.toml").write_text(f'[storage."{vault_url}"]\nlimit_upload = "fast"\n')
        done = cli("items", expect=None)
        assert_one_line_error(done, 20, "limit_upload must be a positive number")
