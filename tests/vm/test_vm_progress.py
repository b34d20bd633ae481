"""A vm backup reports its progress: the disks' size is the total before anything is
read (BackupContext.progress), and the bytes done grow as the disk is read."""

from __future__ import annotations

import json
import os

MIB = 1024 * 1024


def _image(tmp_path, size: int):
    image = tmp_path / "disk0.img"
    with open(image, "wb") as fh:
        for _ in range(size // (4 * MIB)):
            fh.write(os.urandom(4 * MIB))
    return image


class TestVmProgress:
    def test_the_disk_size_is_the_total_before_the_disk_is_read(self, vault, tmp_path):
        """The first report already expects the disk's bytes; the bytes done grow to them."""
        image = _image(tmp_path, 32 * MIB)
        vault.protect("vm", "p", {"disks": [f"disk0={image}"]})
        seen: list[tuple[int, int, str]] = []
        vault.backup("p", progress=lambda s: seen.append((s.bytes_done, s.bytes_estimate, s.current)))
        assert seen[0][0] == 0 and seen[0][1] >= 32 * MIB  # before reading: the estimate is there
        done = [d for d, _total, _current in seen]
        assert done == sorted(done) and done[-1] >= 32 * MIB
        assert len(set(done)) >= 2

    def test_progress_json_events_count_toward_the_disk(self, cli, tmp_path):
        """--progress-json: the first event's total is the disk's size, the bytes grow to it."""
        image = _image(tmp_path, 16 * MIB)
        cli("vault", "create", cli.vault_url, "--name", "vm-progress")
        cli("protect", "vm", "p", "--disk", f"disk0={image}")
        docs = [json.loads(line) for line in cli("backup", "p", "--progress-json").stdout.splitlines()]
        status = [d for d in docs if d["type"] == "status"]
        assert docs[-1]["type"] == "summary" and docs[-1]["workload"] == "vm"
        assert status[0]["total"] >= 16 * MIB and status[0]["bytes"] < 16 * MIB
        assert status[-1]["bytes"] >= 16 * MIB and status[-1]["percent"] == 100.0
