"""Every frozen fixture vault (tests/fixtures/vault-format-*): it is unchanged, opens in its
format, every point restores to what its manifest recorded (files with modes, links and
xattrs; a vm's disk and files inside it; a postgres database into a scratch database),
``verify --read-data`` is clean, every passphrase opens it, and ``vault upgrade`` takes it
to the newest format with every point still restorable.  A vault of a newer format is
refused in one line naming the format.  A new format adds a fixture and gets these tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fixturekit import Fixture, all_fixtures, check_every_point
from strongroom.models import FORMAT_VERSION
from strongroom.vault import Vault
from vaultkit import assert_one_line_error

FIXTURES = [Fixture.load(path) for path in all_fixtures()]


@pytest.fixture(params=FIXTURES, ids=[f.path.name for f in FIXTURES])
def fixture(request) -> Fixture:
    return request.param


@pytest.fixture
def installed(fixture, tmp_path, strongroom_home) -> str:
    """A copy of the fixture's vault, its local key in this test's key store."""
    return fixture.install(tmp_path / "vault", strongroom_home)


def vault_files(url: str) -> dict[str, str]:
    root = Path(url)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


class TestFrozenFixture:
    def test_fixture_is_unchanged(self, fixture):
        """Every file of the fixture has the hash its manifest recorded when it was made, and
        its vault and key store hold no file the manifest does not name."""
        for rel, digest in fixture.files.items():
            assert hashlib.sha256((fixture.path / rel).read_bytes()).hexdigest() == digest, rel
        present = {str(p.relative_to(fixture.path)) for top in ("vault", "home")
                   for p in (fixture.path / top).rglob("*") if p.is_file()}
        assert present <= set(fixture.files), sorted(present - set(fixture.files))
        assert json.loads((fixture.path / "vault" / "strongroom.json").read_text())["format"] == fixture.format
        assert fixture.format <= FORMAT_VERSION

    def test_every_format_has_a_fixture(self):
        """Each format up to this version's has its frozen fixture (a format change adds one)."""
        assert [f.format for f in FIXTURES] == list(range(1, FORMAT_VERSION + 1))

    def test_opens_in_its_format(self, fixture, installed):
        """The copy opens with the local key, as a vault of the fixture's format, with its
        items, points and policies."""
        vault = Vault.open(installed)
        assert vault.vault_id == fixture.vault_id
        assert vault.config.format == fixture.format and vault.format == fixture.format
        assert {i.name for i in vault.items()} == set(fixture.items)
        assert {p.name for p in vault.policies.list()} >= set(fixture.policies)

    def test_every_point_restores(self, fixture, installed, tmp_path, request):
        """Every point restores to what the manifest recorded."""
        check_every_point(Vault.open(installed), fixture, tmp_path / "out", request)

    def test_verify_read_data_is_clean(self, fixture, installed, cli):
        """'vault verify --read-data' reads every pack and finds nothing wrong."""
        result = cli("--vault", installed, "vault", "verify", "--read-data", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        packs = [p for p in Path(installed, "data").rglob("*") if p.is_file()]
        assert report["ok"] and report["packs_read"] == len(packs) > 0, report

    def test_every_passphrase_opens_it(self, fixture, installed, cli, strongroom_home):
        """Without the local key, each passphrase committed with the fixture opens the vault."""
        if not fixture.passphrases:
            pytest.skip(f"{fixture.path.name} has no passphrase slot")
        for key in (Path(strongroom_home) / "keys").iterdir():
            key.unlink()
        assert cli("--vault", installed, "points", expect=None).exit_code != 0
        for passphrase in fixture.passphrases:
            result = cli("--vault", installed, "points", "--json", env={"STRONGROOM_PASSPHRASE": passphrase})
            assert result.exit_code == 0, result.output
            assert len(json.loads(result.stdout)) == sum(len(i["points"]) for i in fixture.items.values())


    def test_recovery_kit_opens_it(self, fixture, installed, cli, strongroom_home, tmp_path):
        """The recovery kit committed with the fixture gives access on a machine without its key."""
        for key in (Path(strongroom_home) / "keys").iterdir():
            key.unlink()
        kit = tmp_path / "kit.txt"
        kit.write_bytes((fixture.path / "recovery-kit.txt").read_bytes())
        result = cli("--vault", installed, "vault", "key", "import", str(kit))
        assert result.exit_code == 0, result.output
        assert cli("--vault", installed, "points").exit_code == 0


class TestUpgrade:
    def test_dry_run_writes_nothing(self, fixture, installed, cli):
        """'vault upgrade --dry-run' lists the changes (none for a fixture of the newest format)
        and leaves every object of the vault as it was."""
        before = vault_files(installed)
        result = cli("--vault", installed, "vault", "upgrade", "--dry-run", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["dry_run"] and not report["upgraded"]
        assert bool(report["changes"]) == (fixture.format < FORMAT_VERSION)
        assert vault_files(installed) == before

    def test_upgrade_keeps_every_point(self, fixture, installed, cli, tmp_path, request):
        """'vault upgrade' moves the vault to the newest format (a vault already there is left
        untouched); every point still restores,
        verify --read-data is clean, a second upgrade has nothing to do, and a new backup is
        written in the new format and restores."""
        before = vault_files(installed)
        result = cli("--vault", installed, "vault", "upgrade")
        assert result.exit_code == 0, result.output
        if fixture.format < FORMAT_VERSION:
            assert f"Upgraded to format {FORMAT_VERSION}" in result.stdout
        else:  # nothing to do: nothing written, not even a journal entry
            assert "nothing to upgrade" in result.stdout and vault_files(installed) == before
        assert json.loads(Path(installed, "strongroom.json").read_text())["format"] == FORMAT_VERSION
        vault = Vault.open(installed)
        assert vault.format == FORMAT_VERSION and vault.settings.format == FORMAT_VERSION
        check_every_point(vault, fixture, tmp_path / "out", request)
        report = vault.verify(read_data=True)
        assert report.ok, report.problems
        again = cli("--vault", installed, "vault", "upgrade")
        assert "nothing to upgrade" in again.stdout

        src = tmp_path / "new-src"
        src.mkdir()
        (src / "after-upgrade.txt").write_text("written after the upgrade\n" * 100)
        vault.protect("files", "after", {"paths": [str(src)]})
        point = vault.backup("after")
        vault.restore("after", point.point_id, str(tmp_path / "after"))
        assert (tmp_path / "after" / str(src).lstrip("/") / "after-upgrade.txt").read_bytes() == \
            (src / "after-upgrade.txt").read_bytes()

    def test_apply_is_still_accepted(self, fixture, installed, cli):
        """'--apply', which older versions needed to upgrade, still upgrades; with --dry-run
        it is refused as a contradiction (exit 3)."""
        assert_one_line_error(cli("--vault", installed, "vault", "upgrade", "--dry-run", "--apply", expect=None),
                              3, "--dry-run", "--apply")
        result = cli("--vault", installed, "vault", "upgrade", "--apply", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["to_format"] == FORMAT_VERSION
        assert Vault.open(installed).format == FORMAT_VERSION


class TestNewerFormatIsRefused:
    def test_strongroom_json_of_a_newer_format(self, fixture, installed, cli):
        """A vault whose strongroom.json names a format newer than this strongroom reads is
        refused in one line naming that format and the newest this version reads (exit 13),
        by 'vault upgrade' too, which changes nothing."""
        config = Path(installed, "strongroom.json")
        doc = json.loads(config.read_text())
        doc["format"] = FORMAT_VERSION + 1
        config.write_text(json.dumps(doc, indent=1))
        before = vault_files(installed)
        for args in (["points"], ["vault", "upgrade"], ["vault", "upgrade", "--dry-run"]):
            result = cli("--vault", installed, *args, expect=None)
            assert_one_line_error(result, 13, f"format {FORMAT_VERSION + 1}", f"reads formats 1 to {FORMAT_VERSION}",
                                  "upgrade strongroom")
        assert vault_files(installed) == before

    def test_settings_of_a_newer_format(self, fixture, installed, cli):
        """The same for a vault whose (authenticated) settings name a newer format while its
        strongroom.json does not: 'vault upgrade' cannot move it back."""
        Vault.open(installed).update_settings(format=FORMAT_VERSION + 1)
        before = vault_files(installed)
        result = cli("--vault", installed, "vault", "upgrade", expect=None)
        assert_one_line_error(result, 13, f"format {FORMAT_VERSION + 1}", "upgrade strongroom")
        assert vault_files(installed) == before
