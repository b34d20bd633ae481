"""``strongroom apply FILE [--dry-run]`` and ``strongroom export-config`` on real local vaults:
the round trip (apply to empty vaults, export, apply the export: no change), a one-line
diff for a changed exclude, what is never deleted, and a bad file refused in one line."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from strongroom.declarative import json_schema
from strongroom.testing import Cli
from vaultkit import assert_one_line_error
from webhookkit import webhook  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def site(tmp_path, webhook):
    """Four source folders and a file describing two vaults (four items, two policies, a
    webhook sink); the vaults do not exist yet."""
    for name in ("docs", "mail", "web", "db"):
        (tmp_path / "src" / name).mkdir(parents=True)
        (tmp_path / "src" / name / "a.txt").write_text(name)
        (tmp_path / "src" / name / "b.tmp").write_text("scratch")
    src = tmp_path / "src"
    text = f"""
[vaults.main]
url = "{tmp_path / 'main'}"

[vaults.main.policies.nightly]
daily = "02:00"
timezone = "Europe/Berlin"
keep_daily = 7
keep_weekly = 4

[vaults.main.items.docs]
workload = "files"
policy = "nightly"
path = ["{src / 'docs'}"]
exclude = ["*.tmp"]

[vaults.main.items.mail]
workload = "files"
policy = "nightly"
path = ["{src / 'mail'}"]

[vaults.main.sinks.ops]
type = "webhook"
category = "all"
options = {{ url = "{webhook.url('/hook')}" }}

[vaults.offsite]
url = "{tmp_path / 'offsite'}"

[vaults.offsite.policies.hourly]
every = "4h"
keep_daily = 3
drill_every = "7d"

[vaults.offsite.items.web]
workload = "files"
policy = "hourly"
path = ["{src / 'web'}"]
one-file-system = true

[vaults.offsite.items.db]
workload = "files"
path = ["{src / 'db'}"]
include = ["*.txt"]
"""
    path = tmp_path / "strongroom.toml"
    path.write_text(text)
    return path


def changes(cli: Cli, path, *args: str) -> list[str]:
    doc = json.loads(cli("apply", str(path), "--json", *args).stdout)
    return [c["line"] for v in doc["vaults"] for c in v["changes"]]


class TestRoundTrip:
    def test_apply_to_empty_vaults_then_export_applies_as_no_change(self, site, tmp_path, webhook):
        """The file creates both vaults with their policies, items and sink; export-config
        describes them so that applying the export changes nothing."""
        cli = Cli()
        planned = changes(cli, site, "--dry-run")
        assert "+ vault main at " + str(tmp_path / "main") in planned
        assert "+ item docs (files, policy nightly)" in planned and "+ sink ops (webhook, all)" in planned
        assert not (tmp_path / "main").exists(), "a dry run creates nothing"

        cli("apply", str(site))
        main, offsite = Cli(str(tmp_path / "main")), Cli(str(tmp_path / "offsite"))
        items = {i["name"]: i for i in json.loads(main("items", "--json").stdout)}
        assert items["docs"]["source"]["excludes"] == ["*.tmp"] and items["docs"]["policy"] == "nightly"
        assert set(items) == {"docs", "mail"}
        web = {i["name"]: i for i in json.loads(offsite("items", "--json").stdout)}["web"]
        assert web["source"]["one_file_system"] is True
        policy = json.loads(offsite("policy", "show", "hourly", "--json").stdout)
        assert policy["drill"]["every"] == 7 * 86400
        main("alerts", "test")
        assert webhook.received, "the sink the file added delivers"
        main("backup", "docs")
        names = {r["name"] for r in json.loads(main("browse", "docs", str(tmp_path / "src" / "docs").lstrip("/"),
                                                     "--json").stdout)}
        assert names == {"a.txt"}, "the item's exclude is in force"

        exported = tmp_path / "exported.toml"
        cli("export-config", "--vault", str(tmp_path / "main"), "--vault", str(tmp_path / "offsite"),
            "--output", str(exported))
        assert stat.S_IMODE(exported.stat().st_mode) == 0o600
        assert changes(cli, exported, "--dry-run") == []
        assert changes(cli, site, "--dry-run") == [], "the original file is in force too"
        out = cli("apply", str(exported), "--dry-run").stdout
        assert "Nothing to change." in out

    def test_changed_exclude_is_one_line_and_applies(self, site, tmp_path):
        """A change to one exclude is one '~' line in --dry-run, and apply makes it."""
        cli = Cli()
        cli("apply", str(site))
        site.write_text(site.read_text().replace('exclude = ["*.tmp"]', 'exclude = ["*.tmp", "*.log"]'))
        out = cli("apply", str(site), "--dry-run").stdout
        lines = [line.strip() for line in out.splitlines() if line.strip()[:1] in "+~-"]
        assert lines == ["~ item docs: exclude ['*.tmp'] -> ['*.tmp', '*.log']"]
        items = json.loads(Cli(str(tmp_path / "main"))("items", "--json").stdout)
        assert {i["name"]: i for i in items}["docs"]["source"]["excludes"] == ["*.tmp"], "dry run"
        cli("apply", str(site))
        items = json.loads(Cli(str(tmp_path / "main"))("items", "--json").stdout)
        assert {i["name"]: i for i in items}["docs"]["source"]["excludes"] == ["*.tmp", "*.log"]
        assert changes(cli, site, "--dry-run") == []

    def test_policy_change_and_sink_removal(self, site, tmp_path):
        """A changed retention is a '~ policy' line; a sink left out of the file is removed."""
        cli = Cli()
        cli("apply", str(site))
        text = site.read_text().replace("keep_weekly = 4", "keep_weekly = 8")
        site.write_text(text.split("[vaults.main.sinks.ops]")[0] + "[vaults.offsite]" + text.split("[vaults.offsite]")[1])
        assert changes(cli, site, "--dry-run") == ["~ policy nightly: keep_weekly 4 -> 8", "- sink ops (webhook)"]
        cli("apply", str(site))
        main = Cli(str(tmp_path / "main"))
        assert json.loads(main("policy", "show", "nightly", "--json").stdout)["retention"]["weekly"] == 8
        assert json.loads(main("alerts", "sink", "list", "--json").stdout) == []


class TestNeverDeletes:
    def test_items_and_policies_not_in_the_file_are_left_alone(self, site, tmp_path):
        """An item and a policy made by hand are reported 'not in the file' and kept."""
        cli = Cli()
        cli("apply", str(site))
        main = Cli(str(tmp_path / "main"))
        main("policy", "create", "manual", "--every", "6h")
        main("protect", "files", "extra", "--path", str(tmp_path / "src" / "db"))
        out = cli("apply", str(site)).stdout
        assert "= policy manual: not in the file, left alone" in out
        assert "= item extra: not in the file, left alone" in out
        assert {i["name"] for i in json.loads(main("items", "--json").stdout)} == {"docs", "mail", "extra"}


class TestPlanning:
    def test_every_vault_is_planned_before_any_changes(self, site, tmp_path):
        """A missing path in the second vault's item is the workload's error (47), and the
        first vault is not created."""
        site.write_text(site.read_text().replace(str(tmp_path / "src" / "db"), str(tmp_path / "gone")))
        assert_one_line_error(Cli()("apply", str(site), expect=None), 47, "gone")
        assert not (tmp_path / "main").exists()

    def test_stopped_item_is_left_alone(self, site, tmp_path):
        """A stopped item is reported and not changed, even when the file differs."""
        cli = Cli()
        cli("apply", str(site))
        Cli(str(tmp_path / "main"))("items", "stop", "docs", "--retain", "forever")
        site.write_text(site.read_text().replace('exclude = ["*.tmp"]', 'exclude = ["*.log"]'))
        out = cli("apply", str(site)).stdout
        assert "= item docs (stopped-retain-forever: 'items resume' it to manage it from the file)" in out
        assert changes(cli, site, "--dry-run") == []

    def test_passphrase_vault_and_source_document(self, tmp_path):
        """--passphrase-env gives a new vault a passphrase slot; an item given as its source
        document is protected as it says, and its export applies as no change."""
        (tmp_path / "data").mkdir()
        path = tmp_path / "strongroom.toml"
        path.write_text(f"""
[vaults.locked]
url = "{tmp_path / 'locked'}"

[vaults.locked.items.data]
workload = "files"
source = {{ paths = ["{tmp_path / 'data'}"], excludes = ["*.iso"], includes = [], one_file_system = false }}
""")
        cli, env = Cli(), {"PW": "a long enough passphrase"}
        cli("--passphrase-env", "PW", "apply", str(path), env=env)
        locked = Cli(str(tmp_path / "locked"))
        slots = json.loads(locked("--passphrase-env", "PW", "vault", "key", "list", "--json", env=env).stdout)
        assert [s["provider"] for s in slots] == ["passphrase"]
        out = cli("--passphrase-env", "PW", "apply", str(path), "--dry-run", env=env).stdout
        assert "Nothing to change." in out
        exported = tmp_path / "exported.toml"
        locked("--passphrase-env", "PW", "export-config", "--output", str(exported), env=env)
        assert '"*.iso"' in exported.read_text()
        out = cli("--passphrase-env", "PW", "apply", str(exported), "--dry-run", env=env).stdout
        assert "Nothing to change." in out


class TestBadFiles:
    @pytest.mark.parametrize("body, words", [
        ('[vaults.main]\nurl = "/tmp/v"\ncolour = "red"\n', ["vaults.main.colour", "unknown key"]),
        ('[vaults.main]\nurl = 7\n', ["vaults.main.url", "must be a string"]),
        ('[vaults.main]\nurl = "/tmp/v"\n[vaults.main.items.a]\nworkload = "files"\npath = ["/"]\npolicy = "gone"\n',
         ["vaults.main.items.a.policy", "unknown policy 'gone'"]),
        ('[vaults.main]\nurl = "/tmp/v"\n[vaults.main.items.a]\nworkload = "tape"\n',
         ["vaults.main.items.a.workload", "unknown workload 'tape'"]),
        ('[vaults.main]\nurl = "/tmp/v"\n[vaults.main.items.a]\nworkload = "files"\nexcludes = ["x"]\n',
         ["vaults.main.items.a.excludes", "unknown key"]),
        ('[vaults.main]\nurl = "/tmp/v"\n[vaults.main.policies.p]\nkeep_daily = "7"\n',
         ["vaults.main.policies.p.keep_daily", "must be an integer"]),
        ('[vaults.main]\nurl = "/tmp/v"\n[vaults.main.sinks.s]\ntype = "pager"\n',
         ["vaults.main.sinks.s.type", "unknown sink type 'pager'"]),
        ('[vaults.main]\nurl = "/tmp/v"\n[vaults.main.items."no good"]\nworkload = "files"\n',
         ['vaults.main.items.no good', "an item name is"]),
        ('[vaults.main]\nurl = "/tmp/v"\n[vaults.main.policies.p]\nevery = "4h"\ndrill_every = "7d"\n'
         'drill_from_secondary = true\n', ["vaults.main.policies.p.drill_from_secondary", "redundancy geo"]),
        ('[vaults.main\n', ["not TOML"]),
    ])
    def test_refused_in_one_line_with_exit_code_6(self, tmp_path, body, words):
        """Each bad file is one error line naming the key's dotted path; nothing is created."""
        path = tmp_path / "bad.toml"
        path.write_text(body)
        assert_one_line_error(Cli()("apply", str(path), "--dry-run", expect=None), 6, "bad.toml", *words)


class TestSchema:
    def test_published_schema_is_the_generated_one(self):
        """docs/strongroom.schema.json is what json_schema() writes from the format's definitions."""
        published = json.loads((ROOT / "docs" / "strongroom.schema.json").read_text())
        assert published == json_schema(), "regenerate docs/strongroom.schema.json (docs/declarative.md says how)"

    def test_schema_refuses_unknown_keys_where_the_reader_does(self):
        """Vault, policy and sink tables are closed in the schema, as the reader refuses unknown keys."""
        defs = json_schema()["$defs"]
        assert all(defs[name]["additionalProperties"] is False for name in ("vault", "policy", "sink"))
        assert set(defs["policy"]["properties"]) >= {"every", "daily", "weekly", "keep_daily", "drill_every"}


class TestTomlWriter:
    def test_what_to_toml_writes_reads_back_equal(self):
        """Odd names and values (quotes, backslashes, control characters, DEL, emoji, dots
        in a name, nested source documents) read back with tomllib as they were."""
        import tomllib

        from strongroom.declarative import to_toml

        doc = {"vaults": {"main vault": {
            "url": "/srv/b\\ack\"ups", "policies": {"p": {"every": "4h", "keep_daily": 3}},
            "items": {"a.b": {"workload": "files", "path": ["/x\ty", "/z\x7f\x01", "/\U0001F600"],
                              "one-file-system": True},
                      "vm": {"workload": "vm", "source": {"disks": [{"path": "/d.img", "name": "sda"}],
                                                          "force": False, "config": None}}},
            "sinks": {"s": {"type": "webhook", "category": "all", "options": {"url": "http://h/\u00e9"}}},
        }}}
        read = tomllib.loads(to_toml(doc, header="a header\nof two lines"))
        del doc["vaults"]["main vault"]["items"]["vm"]["source"]["config"]  # TOML has no null
        assert read == doc
