"""The redundancy setting: the record, its checks, and the vault commands that set and show it."""

from __future__ import annotations

import json

import pytest

from strongroom.errors import IntegrityError
from strongroom.models import VaultSettings
from strongroom.policy.redundancy import Redundancy, RedundancyError, check_redundancy
from strongroom.services.settings import parse_settings


def _settings_doc(**extra) -> dict:
    doc = VaultSettings(name="v", chunker={"min_size": 1 << 18, "avg_size": 1 << 20, "max_size": 1 << 22}).to_dict()
    doc.update(extra)
    return json.loads(json.dumps(doc))  # as stored


def test_record_round_trips_and_empty_is_local():
    assert Redundancy.from_dict({}) == Redundancy("local")
    geo = Redundancy("geo", "s3://other/bucket")
    assert Redundancy.from_dict(geo.to_dict()) == geo
    assert Redundancy.from_dict({"kind": "zonal"}).kind == "zonal"


@pytest.mark.parametrize("doc", [
    [], {"kind": "regional"}, {"kind": 3}, {"kind": "geo"}, {"kind": "geo", "secondary": ""},
    {"kind": "zonal", "secondary": "s3://x"}, {"kind": "local", "secondary": 5},
])
def test_malformed_record_is_an_integrity_error(doc):
    with pytest.raises(IntegrityError):
        Redundancy.from_dict(doc)


def test_settings_without_the_field_are_local_and_a_malformed_one_is_refused():
    doc = _settings_doc()
    del doc["redundancy"]
    assert parse_settings(doc).redundancy == {}
    assert parse_settings(_settings_doc(redundancy={"kind": "zonal"})).redundancy == {"kind": "zonal"}
    with pytest.raises(IntegrityError):
        parse_settings(_settings_doc(redundancy={"kind": "geo"}))


def test_zonal_only_on_storage_that_replicates_itself(tmp_path):
    for url in (str(tmp_path / "v"), "file:///srv/v", "sftp://host/v"):
        with pytest.raises(RedundancyError) as info:
            check_redundancy("zonal", None, url)
        assert "S3" in str(info.value) and "\n" not in str(info.value)
    assert check_redundancy("zonal", None, "s3://bucket/v") == Redundancy("zonal")


def test_geo_needs_a_secondary_other_than_the_primary():
    with pytest.raises(RedundancyError, match="--secondary"):
        check_redundancy("geo", None, "s3://a/v")
    with pytest.raises(RedundancyError, match="own URL"):
        check_redundancy("geo", "s3://a/v/", "s3://a/v")
    with pytest.raises(RedundancyError, match="only for geo"):
        check_redundancy("local", "s3://b/v", "s3://a/v")
    assert check_redundancy("geo", "s3://b/v", "s3://a/v").secondary == "s3://b/v"
