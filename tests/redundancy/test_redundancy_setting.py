"""The redundancy setting: the record, its checks, and the vault commands that set and show it."""

from __future__ import annotations

import json
import os

import pytest

from strongroom.errors import IntegrityError
from strongroom.models import VaultSettings
from strongroom.policy.redundancy import Redundancy, RedundancyError, check_redundancy
from strongroom.services.settings import parse_settings
from strongroom.testing import VaultLocation
from strongroom.vault import Vault


def _settings_doc(**extra) -> dict:
    doc = VaultSettings(name="v", chunker={"min_size": 1 << 18, "avg_size": 1 << 20, "max_size": 1 << 22}).to_dict()
    doc.update(extra)
    return json.loads(json.dumps(doc))  # as stored


def test_record_round_trips_and_empty_is_local():
    """A record survives to_dict/from_dict, and an empty document (older vaults) is local."""
    assert Redundancy.from_dict({}) == Redundancy("local")
    geo = Redundancy("geo", "s3://other/bucket")
    assert Redundancy.from_dict(geo.to_dict()) == geo
    assert Redundancy.from_dict({"kind": "zonal"}).kind == "zonal"


@pytest.mark.parametrize("doc", [
    [], {"kind": "regional"}, {"kind": 3}, {"kind": "geo"}, {"kind": "geo", "secondary": ""},
    {"kind": "zonal", "secondary": "s3://x"}, {"kind": "local", "secondary": 5},
])
def test_malformed_record_is_an_integrity_error(doc):
    """An unknown kind, a geo without secondary or a secondary on another kind is damage."""
    with pytest.raises(IntegrityError):
        Redundancy.from_dict(doc)


def test_settings_without_the_field_are_local_and_a_malformed_one_is_refused():
    """parse_settings takes settings written before the field, and refuses a malformed one."""
    doc = _settings_doc()
    del doc["redundancy"]
    assert parse_settings(doc).redundancy == {}
    assert parse_settings(_settings_doc(redundancy={"kind": "zonal"})).redundancy == {"kind": "zonal"}
    with pytest.raises(IntegrityError):
        parse_settings(_settings_doc(redundancy={"kind": "geo"}))


def test_zonal_only_on_storage_that_replicates_itself(tmp_path):
    """Zonal is refused on a folder or SFTP, in one line naming where it works, and taken on S3."""
    for url in (str(tmp_path / "v"), "file:///srv/v", "sftp://host/v"):
        with pytest.raises(RedundancyError) as info:
            check_redundancy("zonal", None, url)
        assert "S3" in str(info.value) and "\n" not in str(info.value)
    assert check_redundancy("zonal", None, "s3://bucket/v") == Redundancy("zonal")


def test_geo_needs_a_secondary_other_than_the_primary():
    """Geo needs --secondary, never the vault's own URL (however it is spelled), and only geo takes one."""
    with pytest.raises(RedundancyError, match="--secondary"):
        check_redundancy("geo", None, "s3://a/v")
    with pytest.raises(RedundancyError, match="own URL"):
        check_redundancy("geo", "s3://a/v/", "s3://a/v")
    with pytest.raises(RedundancyError, match="own URL"):
        check_redundancy("geo", f"file://{os.getcwd()}/v", "v/")
    with pytest.raises(RedundancyError, match="only for geo"):
        check_redundancy("local", "s3://b/v", "s3://a/v")
    assert check_redundancy("geo", "s3://b/v", "s3://a/v").secondary == "s3://b/v"


# --- the commands ----------------------------------------------------------------------


def _one_line(result, code: int, *words: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], lines[0]


def test_local_is_the_default_and_zonal_is_refused_on_a_folder(cli, tmp_path):
    """A new vault is local; zonal on a folder is refused before anything is written (exit 15)."""
    _one_line(cli("vault", "create", cli.vault_url, "--redundancy", "zonal", expect=None), 15, "Zonal", "S3")
    assert not (tmp_path / "vault").exists()  # refused before anything was written
    cli("vault", "create", cli.vault_url)
    assert json.loads(cli("vault", "info", "--json").stdout)["redundancy"] == {"kind": "local"}
    assert "redundancy:" in cli("vault", "info").stdout
    assert cli("vault", "redundancy").stdout.strip() == "Redundancy: local"
    _one_line(cli("vault", "redundancy", "set", "zonal", expect=None), 15, "Zonal")
    _one_line(cli("vault", "redundancy", "set", "geo", expect=None), 15, "--secondary")
    _one_line(cli("vault", "redundancy", "set", "geo", "--secondary", cli.vault_url, expect=None), 15, "own URL")
    assert json.loads(cli("vault", "redundancy", "show", "--json").stdout)["kind"] == "local"


def test_geo_at_create_and_set_only_while_no_item_is_protected(cli, tmp_path):
    """Geo is set at create; a change is refused (exit 16, journaled) while an item is protected."""
    other = str(tmp_path / "elsewhere")
    _one_line(cli("vault", "create", cli.vault_url, "--redundancy", "geo", expect=None), 15, "--secondary")
    created = json.loads(cli("vault", "create", cli.vault_url, "--redundancy", "geo", "--secondary", other,
                             "--json").stdout)
    assert created["redundancy"] == {"kind": "geo", "secondary": other}
    assert json.loads(cli("vault", "redundancy", "--json").stdout)["secondary"] == other
    cli("vault", "redundancy", "set", "local")
    assert json.loads(cli("vault", "info", "--json").stdout)["redundancy"] == {"kind": "local"}

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a")
    vault = Vault.open(cli.vault_url)
    vault.protect("files", "docs", {"paths": [str(data)]})
    _one_line(cli("vault", "redundancy", "set", "geo", "--secondary", other, expect=None), 16, "1 item")
    assert Vault.open(cli.vault_url).redundancy == Redundancy("local")
    journal = [e for e in Vault.open(cli.vault_url).journal.entries() if e.operation == "vault.redundancy"]
    assert journal and journal[-1].outcome in ("failed", "refused")

    vault.stop("docs", delete_data=True)
    cli("vault", "redundancy", "set", "geo", "--secondary", other)
    reopened = Vault.open(cli.vault_url)
    assert reopened.redundancy == Redundancy("geo", other)
    assert reopened.settings.redundancy == {"kind": "geo", "secondary": other}


def test_zonal_is_accepted_and_recorded_on_s3(strongroom_s3_server, strongroom_cli):
    """On S3 zonal is accepted and recorded in the settings."""
    bucket = strongroom_s3_server.create_bucket()
    location = VaultLocation("s3", f"s3://{bucket}/zonal", strongroom_s3_server.storage_options)
    cli = strongroom_cli(location)
    out = cli("vault", "create", location.url, "--redundancy", "zonal").stdout
    assert "Redundancy: zonal" in out
    vault = Vault.open(location.url, storage_options=location.storage_options)
    assert vault.redundancy == Redundancy("zonal") and vault.info()["redundancy"] == {"kind": "zonal"}
