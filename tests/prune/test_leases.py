"""Leases: one holder at a time, expiry by themselves, renewal, and losing one."""

from __future__ import annotations

import time

import pytest

from strongroom.errors import LeaseHeld, LeaseLost
from strongroom.repository.leases import Lease, read_leases
from strongroom.vault import Vault
from vaultkit import Clock


@pytest.fixture
def repo(tmp_path):
    return Vault.create(str(tmp_path / "vault")).repo


class TestLeases:
    def test_second_holder_is_refused_with_who_holds_it(self, repo):
        """While a lease is held, another acquirer gets LeaseHeld naming the holder and the end."""
        with Lease(repo, "prune", ttl=60):
            with pytest.raises(LeaseHeld, match=r"Prune is already running: lease .* held by .* pid"):
                Lease(repo, "prune", ttl=60).acquire()
        assert list(repo.store.list("leases/")) == []

    def test_any_lease_excludes_any_exclusive_operation(self, repo):
        """rebuild-index and prune exclude each other."""
        with Lease(repo, "rebuild-index", ttl=60):
            with pytest.raises(LeaseHeld, match="Rebuild-index is already running"):
                Lease(repo, "prune", ttl=60).acquire()

    def test_a_lease_left_by_a_killed_process_expires_by_itself(self, repo):
        """A lease never released stops counting once its time is up, and is cleaned away."""
        clock = Clock()
        abandoned = Lease(repo, "prune", ttl=30, clock=clock)
        abandoned._write()  # as acquire() would, without a renewal thread: the process died
        with pytest.raises(LeaseHeld):
            Lease(repo, "prune", ttl=30, clock=clock).acquire()
        clock.advance(seconds=31)
        with Lease(repo, "prune", ttl=30, clock=clock) as lease:
            assert [n for n in repo.store.list("leases/")] == [lease.name]

    def test_renewal_keeps_it_alive(self, repo):
        """The renewal thread writes a fresh lease before the old one runs out."""
        with Lease(repo, "prune", ttl=3) as lease:
            first = lease.name
            time.sleep(1.5)
            lease.check()
            assert lease.name != first
            live, _ = read_leases(repo, lease.clock())
            assert [info.name for info in live] == [lease.name]

    def test_a_lease_that_ran_out_is_lost(self, repo):
        """When the clock passes the lease's end without a renewal, check() raises LeaseLost."""
        clock = Clock()
        lease = Lease(repo, "prune", ttl=300, clock=clock).acquire()
        try:
            lease.check()
            clock.advance(seconds=301)
            with pytest.raises(LeaseLost, match="prune lease was lost"):
                lease.check()
        finally:
            lease.release()

    def test_prune_fails_cleanly_while_another_holds_the_lease(self, tmp_path):
        """vault.prune while a lease is held raises LeaseHeld, changes nothing and records no job."""
        vault = Vault.create(str(tmp_path / "v"))
        with Lease(vault.repo, "prune", ttl=60):
            with pytest.raises(LeaseHeld):
                vault.prune()
        assert vault.jobs.list(type_="prune") == []
        vault.prune()
        assert [j.state for j in vault.jobs.list(type_="prune")] == ["completed"]
