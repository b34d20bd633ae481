"""``strongroom copy ITEM[@POINT] --to VAULT_URL``: points copied into another vault,
re-encrypted for it, deduplicated, and never twice."""

from __future__ import annotations

import json
import os
import pathlib
import stat

import pytest

from strongroom.copying import COPIED_FROM, point_entries
from strongroom.vault import Vault
from vaultkit import assert_one_line_error


def tree_of(root) -> dict[str, tuple]:
    """Every path below ``root`` with its type, mode, content or link text, and mtime."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                what = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    what = ("file", handle.read(), st.st_nlink)
            else:
                what = (stat.S_IFMT(st.st_mode),)
            found[os.path.relpath(path, root)] = (*what, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return found


@pytest.fixture
def two_vaults(tmp_path, vault_url, cli):
    """The vault (item 'docs', two points) and an empty second vault with its own passphrase."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    (src / "a.txt").write_text("alpha\n")
    os.chmod(src / "a.txt", 0o600)
    os.symlink("a.txt", src / "link")
    os.link(src / "a.txt", src / "sub" / "same.txt")
    os.mkfifo(src / "fifo")
    cli("vault", "create", vault_url)
    cli("protect", "files", "docs", "--path", str(src))
    cli("backup", "docs", "--tag", "first")
    (src / "sub" / "new.txt").write_text("new\n")
    cli("backup", "docs")
    other = str(tmp_path / "other")
    cli("--passphrase-env", "OTHER_PW", "vault", "create", other, env={"OTHER_PW": "another passphrase"})
    return src, other


def copy(cli, other, *args, expect=0):
    return cli("copy", *args, "--to", other, "--to-passphrase-env", "OTHER_PW", env={"OTHER_PW": "another passphrase"},
               expect=expect)


def other_cli(other):
    from strongroom.testing import Cli

    cli = Cli(other)
    return lambda *args, **kw: cli("--passphrase-env", "OTHER_PW", *args,
                                   env={"OTHER_PW": "another passphrase"}, **kw)


def data_bytes(url: str) -> int:
    return sum(f.stat().st_size for f in (pathlib.Path(url) / "data").rglob("*") if f.is_file())


class TestCopy:
    def test_copies_restore_byte_for_byte_and_keep_their_headers(self, two_vaults, cli, tmp_path):
        """Both points are copied, oldest first; each restores from the other vault exactly as
        from this one; the copy keeps the original time, tags and host and records its origin."""
        src, other = two_vaults
        done = json.loads(copy(cli, other, "docs", "--json").stdout)
        assert done["schema"] == 1 and done["created_item"] is True and done["skipped"] == []
        originals = json.loads(cli("points", "docs", "--json").stdout)
        there = other_cli(other)
        copies = json.loads(there("points", "docs", "--json").stdout)
        assert [c["point"] for c in done["copied"]] == [p["point_id"] for p in originals]
        assert [c["created"] for c in copies] == [p["created"] for p in originals]
        assert copies[0]["user_tags"] == ["first"] and copies[0]["host"] == originals[0]["host"]
        for original, made in zip(originals, copies):
            cli("restore", f"docs@{original['point_id']}", "--target", tmp_path / "a" / original["point_id"])
            there("restore", f"docs@{made['point_id']}", "--target", tmp_path / "b" / made["point_id"])
            mine, theirs = tree_of(tmp_path / "a" / original["point_id"]), tree_of(tmp_path / "b" / made["point_id"])
            assert mine == theirs and len(mine) > 5
        item = json.loads(there("items", "--json").stdout)[0]
        assert item["workload"] == "files" and item["source"]["paths"] == [str(src)]

    def test_copying_again_copies_nothing(self, two_vaults, cli):
        """A second run skips every point and stores nothing new."""
        src, other = two_vaults
        copy(cli, other, "docs")
        before = data_bytes(other)
        again = json.loads(copy(cli, other, "docs", "--json").stdout)
        assert again["copied"] == [] and len(again["skipped"]) == 2
        assert data_bytes(other) == before
        assert len(json.loads(other_cli(other)("points", "docs", "--json").stdout)) == 2

    def test_one_point_then_the_rest(self, two_vaults, cli):
        """ITEM@POINT copies that point only; a later run of the whole item copies the other
        one and a point made since, skipping the first."""
        src, other = two_vaults
        first = json.loads(cli("points", "docs", "--json").stdout)[0]["point_id"]
        one = json.loads(copy(cli, other, f"docs@{first[:8]}", "--json").stdout)
        assert [c["point"] for c in one["copied"]] == [first]
        cli("backup", "docs")
        rest = json.loads(copy(cli, other, "docs", "--json").stdout)
        assert rest["skipped"] == [first] and len(rest["copied"]) == 2 and rest["created_item"] is False

    def test_deduplicated_against_the_target(self, two_vaults, cli):
        """The second point shares the big file with the first: the target stores it once."""
        src, other = two_vaults
        copy(cli, other, f"docs@{json.loads(cli('points', 'docs', '--json').stdout)[0]['point_id'][:8]}")
        after_first = data_bytes(other)
        copy(cli, other, "docs")
        assert data_bytes(other) - after_first < 256 * 1024  # the 2 MiB file was not stored again

    def test_re_encrypted_for_the_target(self, two_vaults, cli, vault_url):
        """The target's packs are its own: no data object of one vault exists in the other."""
        src, other = two_vaults
        copy(cli, other, "docs")
        names = lambda url: {p.name for p in (pathlib.Path(url) / "data").rglob("*") if p.is_file()}
        assert names(other) and not names(other) & names(vault_url)

    def test_copied_from_is_recorded(self, two_vaults, cli, vault_url):
        """The copy's header says which vault and point it came from."""
        src, other = two_vaults
        copy(cli, other, "docs")
        source = Vault.open(vault_url)
        copies = other_vault(other).points("docs")
        assert [p.extra[COPIED_FROM] for p in copies] == [
            {"vault": source.vault_id, "point": p.point_id} for p in source.points("docs")]
        assert all(p.trigger == "copy" for p in copies)

    def test_bandwidth_limits_hold_for_the_target(self, two_vaults, cli, monkeypatch):
        """--limit-upload/--limit-download given to copy are the other vault's limits too."""
        src, other = two_vaults
        opened = []
        original = Vault.open.__func__

        def spy(cls, url, **kwargs):
            opened.append((url, kwargs.get("storage_options")))
            return original(cls, url, **kwargs)

        monkeypatch.setattr(Vault, "open", classmethod(spy))
        cli("--limit-upload", "50000", "--limit-download", "60000", "copy", "docs", "--to", other,
            "--to-passphrase-env", "OTHER_PW", env={"OTHER_PW": "another passphrase"})
        assert (other, {"limit_upload": 50000.0, "limit_download": 60000.0}) in opened

    def test_a_vm_point_keeps_its_disk_and_holes(self, tmp_path, vault_url, cli):
        """A vm point (a disk image with holes, a stream) restores from the copy byte for byte,
        and its holes take no room in the other vault either."""
        disk = tmp_path / "disk.raw"
        with open(disk, "wb") as handle:
            handle.truncate(8 * 1024 * 1024)
            handle.seek(1024 * 1024)
            handle.write(os.urandom(300_000))
        cli("vault", "create", vault_url)
        if cli("protect", "vm", "m", "--disk", disk, expect=None).exit_code != 0:
            pytest.skip("the vm workload cannot protect a raw image here")
        cli("backup", "m")
        other = str(tmp_path / "other")
        cli("--passphrase-env", "OTHER_PW", "vault", "create", other, env={"OTHER_PW": "another passphrase"})
        copy(cli, other, "m")
        other_cli(other)("restore", "m", "--target", tmp_path / "r")
        assert (tmp_path / "r" / "disks" / "disk.img").read_bytes() == disk.read_bytes()
        assert data_bytes(other) < 1024 * 1024


def other_vault(url: str) -> Vault:
    from strongroom.repository.keyproviders import PassphraseSource

    os.environ["OTHER_PW"] = "another passphrase"
    try:
        return Vault.open(url, passphrase=PassphraseSource(env_var="OTHER_PW"))
    finally:
        del os.environ["OTHER_PW"]


class TestEntries:
    def test_point_entries_rebuild_every_kind(self, vault, tmp_path):
        """point_entries yields a source entry per entry of the point, in the point's order."""
        src = tmp_path / "s"
        src.mkdir()
        (src / "f").write_text("f")
        os.symlink("f", src / "l")
        vault.protect("files", "s", {"paths": [str(src)]})
        vault.backup("s")
        view = vault.point_view("s")
        kinds = [(type(e).__name__, e.path) for e in point_entries(view)]
        assert [p for _, p in kinds] == [p for p, _ in view.walk("")]
        assert {k for k, _ in kinds} == {"FolderSource", "StreamSource", "LinkSource"}


class TestRefusals:
    def test_into_the_same_vault(self, two_vaults, cli, vault_url):
        """Copying a vault into itself is exit 3."""
        assert_one_line_error(cli("copy", "docs", "--to", vault_url, expect=None), 3, "same vault")

    def test_an_item_of_another_workload_there(self, two_vaults, cli, tmp_path):
        """An item of the same name but another workload in the target is exit 3."""
        src, other = two_vaults
        disk = tmp_path / "disk.raw"
        disk.write_bytes(bytes(1024 * 1024))
        there = other_cli(other)
        if there("protect", "vm", "docs", "--disk", disk, expect=None).exit_code != 0:
            pytest.skip("the vm workload cannot protect a raw image here")
        assert_one_line_error(copy(cli, other, "docs", expect=None), 3, "vm item")

    def test_unknown_item(self, two_vaults, cli):
        """An item the source does not have is exit 41; nothing is created in the target."""
        src, other = two_vaults
        assert_one_line_error(copy(cli, other, "nope", expect=None), 41, "nope")
        assert json.loads(other_cli(other)("items", "--json").stdout) == []
