"""Zero runs, end to end: a new vault records ``zero_run`` and lists the feature, and its
backups cut holes out of their chunks.  Vaults made before the setting:
tests/format/test_zero_runs_fixture.py."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from strongroom.repository.chunker import ZERO_RUN
from strongroom.vault import Vault

MIB = 1024 * 1024


def holey_image(path: Path, seed: int, edit: int | None = None) -> None:
    """A 24 MiB sparse image: 64 KiB extents of random data between 64 KiB-aligned holes;
    ``edit``: one extent rewritten with other data."""
    rng = __import__("random").Random(seed)
    with open(path, "wb") as f:
        for n in range(24 * 16):
            if rng.random() < 0.5:
                continue  # a hole
            f.seek(n * 65536)
            f.write(rng.randbytes(65536))
        if edit is not None:
            f.seek(edit * 65536)
            f.write(os.urandom(65536))
        f.truncate(24 * MIB)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def vault_url(tmp_path, strongroom_home) -> str:
    return str(tmp_path / "vault")


def test_new_vault_records_and_uses_zero_runs(vault_url, tmp_path):
    """A new vault's settings name zero_run; backing up a holey image, then the image with
    one extent rewritten, stores little more than that extent; both restore byte for byte."""
    vault = Vault.create(vault_url, name="t")
    assert vault.settings.chunker["zero_run"] == ZERO_RUN
    assert vault.chunker_params.zero_run == ZERO_RUN
    src = tmp_path / "src"
    src.mkdir()
    image = src / "disk.img"
    holey_image(image, seed=1)
    first_sum = sha(image)
    vault.protect("files", "disk", {"paths": [str(src)]})
    first = vault.backup("disk")
    # pick an extent that holds data, in the middle
    data = image.read_bytes()
    extent = next(n for n in range(150, 384) if any(data[n * 65536 : n * 65536 + 16]))
    holey_image(image, seed=1, edit=extent)
    second_sum = sha(image)
    second = vault.backup("disk")
    # without zero runs the edit costs a whole ~1 MiB chunk spanning holes; with them, the
    # extent and the data run it sits in
    assert second.stats["new_bytes"] < 600_000, second.stats
    for point, digest in ((first, first_sum), (second, second_sum)):
        target = tmp_path / f"out-{point.point_id}"
        vault.restore("disk", point.point_id, str(target))
        assert sha(target / str(image).lstrip("/")) == digest


def test_a_new_vault_lists_the_feature_so_older_clients_refuse_it(vault_url, cli, monkeypatch):
    """strongroom.json of a new vault names ``zero-runs``; a strongroom that does not know
    the feature (as one from before it) refuses the vault in one line, exit 13."""
    assert cli("vault", "create", vault_url).exit_code == 0
    assert json.loads((Path(vault_url) / "strongroom.json").read_text())["features"] == ["zero-runs"]
    assert cli("--vault", vault_url, "points").exit_code == 0
    monkeypatch.setattr("strongroom.vault.KNOWN_FEATURES", frozenset())
    refused = cli("--vault", vault_url, "points", expect=13)
    assert "uses unknown features zero-runs" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
