"""The workload contract as an abstract test class: one source of a workload, protected.

Subclass :class:`WorkloadContract` in a workload's test module, set ``workload`` to the
registered name and give it a ``workload_case`` fixture returning a
:class:`WorkloadCase` (it may ask for any fixture: a database server, a disk image)::

    from strongroom.testing import WorkloadCase, WorkloadContract, assert_trees_equal

    class TestMyWorkloadContract(WorkloadContract):
        workload = "mine"

        @pytest.fixture
        def workload_case(self, tmp_path):
            return WorkloadCase(source={...}, check_restore=..., item_path="...",
                                check_item_restore=..., bad_sources=(({...}, "does not exist"),))

Each test gets a new vault in a local folder (keys in ``strongroom_isolated_home``)
with the case's source protected as item ``contract``, and checks that: a backup makes
one point labelled with the workload and a consistency, having read the source; browse
lists the top and reaches ``item_path`` from it; the whole point and the one item
restore equal to the source (the case's checks say what "equal" means); an unchanged
second backup stores almost nothing; damaged data is reported by ``verify --read-data``
and never restored as if it were good; a bad source is refused with one line and makes
no item; the command line lists the point and browses it; and, where the case can
change its source, the change is in the next point.

The contract writes only in pytest's temporary folders (the vault, restore scratch
folders) and in what the case's checks write (a restored database, say), which the
checks clean up.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Callable, ClassVar

import attrs
import pytest

from ..errors import IntegrityError, StrongroomError

if TYPE_CHECKING:  # the vault loads when a test runs, not when pytest loads the plugin
    from ..vault import Vault

__all__ = ["WorkloadCase", "WorkloadContract"]

#: the name of the item every contract test protects
ITEM = "contract"
_BROWSE_DEPTH = 64


@attrs.frozen
class WorkloadCase:
    """What a workload's test module tells the contract about one source it can protect.

    - ``source``: passed to ``vault.protect(workload, item_name, source)``.
    - ``check_restore(vault, item_name, scratch_dir)``: restore the item's latest point in
      full with ``vault.restore(...)`` and assert the result equals the source as it is
      now (bytes and metadata for files; rows and schema for databases; disk bytes).
    - ``item_path``: a path browse reaches from the top by following the rows' paths
      (a file, a table, a file inside a disk), naming one item.
    - ``check_item_restore(vault, item_name, scratch_dir)``: restore only ``item_path``
      (or the workload's equivalent) and assert it equals the source's, and that nothing
      else was restored.
    - ``bad_sources``: ``(source, fragment of the expected one-line message)`` pairs that
      ``protect`` must refuse.
    - ``unchanged_limit``: an unchanged second backup stores fewer new bytes than this.
    - ``restore_options`` and ``restore_target``: the options of the whole restore the
      damage test attempts, and whether it passes a target folder.
    - ``consistency``: the consistency label points must carry (None: any label).
    - ``change_source()``: change the source (a file, a row, a disk block); the next
      backup's restore must pass ``check_restore`` (None: that test is skipped).
    """

    source: dict
    check_restore: Callable[[Vault, str, str], None]
    item_path: str
    check_item_restore: Callable[[Vault, str, str], None]
    bad_sources: tuple[tuple[dict, str], ...] = ()
    unchanged_limit: int = 256 * 1024
    restore_options: dict = attrs.field(factory=dict)
    restore_target: bool = True
    consistency: str | None = None
    change_source: Callable[[], None] | None = None


def _leads_to(row_path: str, wanted: str) -> bool:
    """Whether browsing ``row_path`` can reach ``wanted`` (it is the path or a parent of it)."""
    base = row_path.rstrip("/")
    return wanted in (row_path, base) or wanted.startswith(base + "/") or (
        row_path.endswith("/") and wanted.startswith(row_path))


def _flip_bytes(data: bytes, step: int = 512) -> bytes:
    """``data`` with one bit flipped every ``step`` bytes (so every blob of a pack is hit)."""
    damaged = bytearray(data)
    for offset in range(min(7, len(damaged) - 1), len(damaged), step):
        damaged[offset] ^= 0x40
    return bytes(damaged)


class WorkloadContract:
    """Behaviour every workload must have; subclasses set ``workload`` and provide ``workload_case``."""

    #: the registered workload name
    workload: ClassVar[str]

    @pytest.fixture
    def workload_case(self) -> WorkloadCase:
        raise NotImplementedError("a WorkloadContract subclass provides the workload_case fixture")

    @pytest.fixture
    def contract_vault(self, strongroom_isolated_home, tmp_path_factory) -> Vault:
        """A new vault in a local folder, its key in the isolated home."""
        from ..vault import Vault

        if not getattr(self, "workload", None):
            pytest.fail(f"{type(self).__name__} must set workload to the registered workload name")
        return Vault.create(str(tmp_path_factory.mktemp("contract-vault") / "vault"), name="contract")

    @pytest.fixture
    def scratch(self, tmp_path_factory) -> Callable[[], str]:
        """``scratch()`` -> a new empty folder for a check to restore into."""
        return lambda: str(tmp_path_factory.mktemp("contract-restore"))

    @pytest.fixture
    def backed_up(self, contract_vault, workload_case):
        contract_vault.protect(self.workload, ITEM, workload_case.source)
        return contract_vault, contract_vault.backup(ITEM)

    def test_backup_makes_one_labelled_point(self, backed_up, workload_case):
        """A backup makes one point of the item, labelled with the workload and a consistency, that read data."""
        vault, point = backed_up
        assert [p.point_id for p in vault.points(ITEM)] == [point.point_id]
        assert (point.item_name, point.workload) == (ITEM, self.workload)
        assert isinstance(point.consistency, str) and point.consistency.strip()
        if workload_case.consistency is not None:
            assert point.consistency == workload_case.consistency
        assert point.stats["bytes_read"] > 0, point.stats

    def test_browse_reaches_the_item_path_from_the_top(self, backed_up, workload_case):
        """browse lists the top of the point, and following its rows reaches item_path, which browses too."""
        vault, _ = backed_up
        wanted = workload_case.item_path
        rows = vault.browse(ITEM)
        assert rows, "browse of the top of the point is empty"
        for _ in range(_BROWSE_DEPTH):
            if any(row.path.rstrip("/") == wanted.rstrip("/") for row in rows):
                break
            onward = [row for row in rows if _leads_to(row.path, wanted)]
            assert onward, f"no row leads to {wanted!r}; the last rows browsed: {[r.path for r in rows][:20]}"
            rows = vault.browse(ITEM, None, onward[0].path)
        else:
            pytest.fail(f"{wanted!r} not reached in {_BROWSE_DEPTH} levels of browse")
        assert isinstance(vault.browse(ITEM, None, wanted), list)

    def test_whole_point_restores_equal_to_the_source(self, backed_up, workload_case, scratch):
        """The case's whole-restore check passes on the first point."""
        vault, _ = backed_up
        workload_case.check_restore(vault, ITEM, scratch())

    def test_one_item_restores_alone(self, backed_up, workload_case, scratch):
        """The case's item-level restore check passes on the first point."""
        vault, _ = backed_up
        workload_case.check_item_restore(vault, ITEM, scratch())

    def test_unchanged_second_backup_stores_little(self, backed_up, workload_case):
        """An unchanged second backup makes a second point and stores less than unchanged_limit new bytes."""
        vault, first = backed_up
        second = vault.backup(ITEM)
        assert second.point_id != first.point_id
        assert second.stats["new_bytes"] < workload_case.unchanged_limit, second.stats
        assert [p.point_id for p in vault.points(ITEM)] == [first.point_id, second.point_id]

    def test_changed_source_is_in_the_next_point(self, backed_up, workload_case, scratch):
        """After change_source, the next backup restores equal to the changed source."""
        if workload_case.change_source is None:
            pytest.skip("the case cannot change its source (change_source is None)")
        vault, _ = backed_up
        workload_case.change_source()
        second = vault.backup(ITEM)
        assert second.stats["new_bytes"] > 0, second.stats
        assert len(vault.points(ITEM)) == 2
        workload_case.check_restore(vault, ITEM, scratch())

    def test_damaged_data_is_reported_and_never_restored(self, backed_up, workload_case, scratch):
        """With bytes flipped in every pack, verify reports each pack and a whole restore fails with a StrongroomError."""
        vault, _ = backed_up
        clean = vault.verify(read_data=True)
        assert clean.ok, clean.problems
        packs = sorted(vault.store.list("data/"))
        assert packs, "the backup stored no pack under data/"
        for name in packs:
            vault.store.put(name, _flip_bytes(vault.store.get(name)))
        fresh = type(vault).open(vault.url)  # a new client: nothing cached from before the damage
        report = fresh.verify(read_data=True)
        assert not report.ok
        unreported = [name for name in packs if not any(name in problem for problem in report.problems)]
        assert not unreported, f"damaged packs not reported: {unreported}; problems: {report.problems}"
        target = scratch() if workload_case.restore_target else None
        with pytest.raises(StrongroomError) as info:
            fresh.restore(ITEM, None, target, options=dict(workload_case.restore_options))
        error = info.value
        assert isinstance(error, IntegrityError) or "damaged" in str(error), (
            f"{type(error).__name__} does not say the data is damaged: {error}")

    def test_bad_sources_are_refused_with_one_line(self, contract_vault, workload_case):
        """Each bad source is refused by protect with a one-line StrongroomError naming the fragment, and no item is made."""
        if not workload_case.bad_sources:
            pytest.skip("the case has no bad_sources")
        for number, (source, fragment) in enumerate(workload_case.bad_sources):
            name = f"bad-{number}"
            with pytest.raises(StrongroomError) as info:
                contract_vault.protect(self.workload, name, source)
            error = info.value
            message = str(error)
            assert type(error) is not StrongroomError, f"use a StrongroomError subclass with its exit code: {message}"
            assert message.strip() and "\n" not in message.strip(), f"not one line: {message!r}"
            assert fragment in message, f"{fragment!r} not in {message!r}"
            assert name not in [item.name for item in contract_vault.items()]

    def test_command_line_lists_and_browses_the_point(self, backed_up, strongroom_cli):
        """strongroom points --json lists the point and strongroom browse prints the top."""
        vault, point = backed_up
        cli = strongroom_cli(vault.url)
        listed = json.loads(cli("points", ITEM, "--json").stdout)
        assert [p["id"] for p in listed] == [point.point_id]
        assert listed[0]["workload"] == self.workload
        browsed = cli("browse", ITEM)
        assert browsed.stdout.strip(), browsed.output
