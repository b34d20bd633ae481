"""The command line as scripts use it: --json everywhere, key management, plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from strongroom.models import FORMAT_VERSION


@pytest.fixture
def ready(tmp_path, cli):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("alpha\n")
    (src / "b.bin").write_bytes(os.urandom(70_000))
    cli("vault", "create", cli.vault_url, "--name", "cli-test")
    cli("protect", "files", "docs", "--path", str(src), "--exclude", "*.tmp")
    return src


class TestJsonOutput:
    def test_backup_prints_the_new_point_id(self, ready, cli):
        """backup --json prints the new point's id, and points --json lists it."""
        point = json.loads(cli("backup", "docs", "--json").stdout)
        listed = json.loads(cli("points", "docs", "--json").stdout)
        assert [p["id"] for p in listed] == [point["id"]]
        assert point["stats"]["files"] == 2 and point["item_name"] == "docs"

    def test_listings_are_json(self, ready, cli):
        """items, browse, jobs, vault info and key list all print parseable JSON."""
        cli("backup", "docs")
        items = json.loads(cli("items", "--json").stdout)
        assert [(i["name"], i["workload"]) for i in items] == [("docs", "files")]
        assert items[0]["source"]["excludes"] == ["*.tmp"]
        top = str(ready).lstrip("/") + "/sub"
        browse = json.loads(cli("browse", "docs", top, "--json").stdout)
        assert [(e["name"], e["type"], e["size"]) for e in browse] == [("a.txt", "file", 6)]
        jobs = json.loads(cli("jobs", "--json").stdout)
        assert [(j["type"], j["state"]) for j in jobs] == [("backup", "completed")]
        info = json.loads(cli("vault", "info", "--json").stdout)
        assert info["name"] == "cli-test" and info["points"] == 1 and info["format"] == FORMAT_VERSION
        keys = json.loads(cli("vault", "key", "list", "--json").stdout)
        assert [(k["provider"], k["in_use"]) for k in keys] == [("local", True)]

    def test_human_tables_name_things(self, ready, cli):
        """The human output of points and items names the item and short point id."""
        point = json.loads(cli("backup", "docs", "--json").stdout)
        assert point["id"][:8] in cli("points").stdout
        assert "docs" in cli("items").stdout
        restored = cli("restore", f"docs@{point['id'][:5]}", "--target", str(ready.parent / "out"))
        assert "Restored 2 files" in restored.stdout

    def test_jobs_filters(self, ready, cli, tmp_path):
        """jobs filters by item, type and state."""
        cli("backup", "docs")
        cli("restore", "docs", "--target", str(tmp_path / "o"))
        cli("backup", "nope", expect=41)
        assert [j["type"] for j in json.loads(cli("jobs", "--type", "restore", "--json").stdout)] == ["restore"]
        assert len(json.loads(cli("jobs", "--item", "docs", "--json").stdout)) == 2
        assert json.loads(cli("jobs", "--state", "failed", "--json").stdout) == []

    def test_jobs_refuses_values_it_cannot_filter_by(self, ready, cli):
        """A job type that does not exist and a negative count are usage errors, not empty lists."""
        bogus = cli("jobs", "--type", "bogus", expect=2)
        assert "'bogus' is not one of" in bogus.stderr and "'drill'" in bogus.stderr
        assert "x>=0" in cli("jobs", "--last", "-1", expect=2).stderr
        cli("backup", "docs")
        assert [j["type"] for j in json.loads(cli("jobs", "--type", "backup", "--last", "1", "--json").stdout)] == ["backup"]

    def test_destructive_commands_without_a_terminal_name_yes(self, ready, cli):
        """No terminal to ask on: one line naming --yes, exit 3, and nothing deleted."""
        point = json.loads(cli("backup", "docs", "--json").stdout)
        for args in (("items", "stop", "docs", "--delete-data"), ("points", "delete", f"docs@{point['id']}"),
                     ("vault", "delete")):
            refused = cli(*args, expect=3)
            assert refused.stderr.strip().splitlines() == [refused.stderr.strip()], refused.stderr
            assert "standard input is not a terminal: add --yes" in refused.stderr, refused.stderr
        assert [p["id"] for p in json.loads(cli("points", "docs", "--json").stdout)] == [point["id"]]

    def test_a_closed_output_pipe_ends_quietly_with_141(self, ready, cli, tmp_path):
        """``strongroom jobs | head -1``: the reader going away is exit 141 (SIGPIPE's), no warning code, no text."""
        for _ in range(3):
            cli("backup", "docs")
        exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
        for args in (("jobs", "--last", "0"), ("jobs", "--json")):
            reader_gone = subprocess.Popen(["true"], stdin=subprocess.PIPE)
            reader_gone.wait()  # the pipe's only reader has exited before anything is written
            done = subprocess.run([exe, "--vault", cli.vault_url, *args], stdout=reader_gone.stdin,
                                  stderr=subprocess.PIPE, text=True, env=os.environ)
            reader_gone.stdin.close()
            assert (done.returncode, done.stderr) == (141, ""), args


class TestKeyCommands:
    def test_add_passphrase_slot_then_open_without_local_key(self, ready, cli, strongroom_home):
        """A passphrase slot added with key add opens the vault once the local key is gone."""
        cli("vault", "key", "add", "--provider", "passphrase", "--new-passphrase-env", "NEWPW",
            env={"NEWPW": "s3cret"})
        assert len(json.loads(cli("vault", "key", "list", "--json").stdout)) == 2
        for key in (strongroom_home / "keys").glob("*.key"):
            key.unlink()
        cli("items", expect=31)
        cli("items", env={"STRONGROOM_PASSPHRASE": "s3cret"})

    def test_remove_refuses_last_slot(self, ready, cli):
        """key remove refuses to remove the last slot."""
        slot = json.loads(cli("vault", "key", "list", "--json").stdout)[0]["slot"]
        res = cli("vault", "key", "remove", slot, expect=33)
        assert "last key slot" in res.stderr

    def test_export_and_import_recovery_kit(self, ready, cli, strongroom_home, tmp_path):
        """The exported recovery kit regains access after the local key store is lost."""
        kit = tmp_path / "kit.txt"
        kit.write_text(cli("vault", "key", "export").stdout)
        for key in (strongroom_home / "keys").glob("*.key"):
            key.unlink()
        cli("items", expect=31)
        cli("vault", "key", "import", str(kit))
        assert "docs" in cli("items").stdout

    def test_import_of_a_kit_for_another_vault_is_refused(self, ready, cli, tmp_path):
        """A kit from another vault does not open this one."""
        from vaultkit import Cli

        other = Cli(str(tmp_path / "other"))
        other("vault", "create", other.vault_url)
        kit = tmp_path / "kit.txt"
        kit.write_text(other("vault", "key", "export").stdout)
        res = cli("vault", "key", "import", str(kit), expect=33)
        assert "does not open" in res.stderr and res.stderr.count("\n") == 1


class TestPluginsCommand:
    def test_disable_files_plugin_removes_its_workload(self, ready, cli):
        """--disable-plugin files removes the files workload from protect and marks it disabled."""
        listing = json.loads(cli("--disable-plugin", "files", "plugins", "--json").stdout)
        files = next(p for p in listing if p["name"] == "files")
        assert files["disabled"] is True
        res = cli("--disable-plugin", "files", "protect", "files", "x", "--path", "/tmp", expect=2)
        assert "No such command" in res.output

    def test_env_var_disables_too(self, ready, cli):
        """STRONGROOM_DISABLE_PLUGINS disables a plugin like the flag does."""
        listing = json.loads(cli("plugins", "--json", env={"STRONGROOM_DISABLE_PLUGINS": "files"}).stdout)
        assert next(p for p in listing if p["name"] == "files")["disabled"] is True


def test_new_passphrase_slot_never_takes_the_opening_passphrase(tmp_path):
    """key add does not silently reuse STRONGROOM_PASSPHRASE for the new slot."""
    from vaultkit import Cli

    cli = Cli(str(tmp_path / "pv"))
    env = {"STRONGROOM_PASSPHRASE": "opening", "PW": "opening"}
    cli("vault", "create", cli.vault_url, "--passphrase-env", "PW", env=env)
    res = cli("vault", "key", "add", "--provider", "passphrase", env=env, expect=31)
    assert "--new-passphrase-env" in res.stderr
    assert len(json.loads(cli("vault", "key", "list", "--json", env=env).stdout)) == 1
