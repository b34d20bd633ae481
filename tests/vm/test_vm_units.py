"""Units of the vm workload: bitmap planning, the NBD client, the LVM metadata reader."""

from __future__ import annotations

import os

import pytest

from vmkit import MIB, CHUNK, run, write_at

from strongroom_vm.bitmaps import chunks_of, checkpoint_name, merge_name, plan_bitmaps
from strongroom_vm.images import serve_image
from strongroom_vm.lvm import parse_metadata
from strongroom_vm.nbd import NbdClient, NbdError, NbdReader

ITEM = "0123456789abcdef"


def _bm(token: str, **extra) -> dict:
    return {"name": checkpoint_name(ITEM, token), "recording": True, **extra}


class TestBitmapPlan:
    parent = {"size": 100, "image": "a.qcow2", "bitmap": checkpoint_name(ITEM, "1000000000000aaaa")}

    def test_union_of_parent_and_later_checkpoints(self):
        """The parent's checkpoint and the failed attempts after it make the union; older ones go."""
        bitmaps = [_bm("0900000000000aaaa"), _bm("1000000000000aaaa"), _bm("1100000000000aaaa"),
                   {"name": merge_name(ITEM, "1100000000000aaaa")}, {"name": "someone-elses"},
                   {"name": checkpoint_name("ffffffffffffffff", "1200000000000aaaa")}]
        plan = plan_bitmaps(ITEM, bitmaps, self.parent, 100, "a.qcow2")
        assert plan.union == (checkpoint_name(ITEM, "1000000000000aaaa"), checkpoint_name(ITEM, "1100000000000aaaa"))
        assert plan.remove == (checkpoint_name(ITEM, "0900000000000aaaa"), merge_name(ITEM, "1100000000000aaaa"))
        assert plan.reason == ""

    @pytest.mark.parametrize("bitmaps, size, image, reason", [
        ([], 100, "a.qcow2", "missing"),
        ([_bm("1000000000000aaaa", inconsistent=True)], 100, "a.qcow2", "inconsistent"),
        ([_bm("1000000000000aaaa")], 200, "a.qcow2", "size changed"),
        ([_bm("1000000000000aaaa")], 100, "b.qcow2", "image changed"),
    ])
    def test_full_read_says_why(self, bitmaps, size, image, reason):
        """A missing or inconsistent bitmap, or a resized or replaced disk, means a full read with a reason."""
        plan = plan_bitmaps(ITEM, bitmaps, self.parent, size, image)
        assert plan.union is None and reason in plan.reason
        assert plan.remove == tuple(b["name"] for b in bitmaps)

    def test_first_backup_is_full_without_warning(self):
        """A disk with no parent record is read whole, silently, and stale bitmaps of the item go."""
        plan = plan_bitmaps(ITEM, [_bm("1000000000000aaaa")], None, 100, "a")
        assert plan.union is None and plan.reason == "" and len(plan.remove) == 1

    def test_extents_map_onto_chunks(self):
        """Dirty extents mark every 4 MiB chunk they touch; clean extents none."""
        extents = [(0, 65536, 1), (65536, CHUNK, 0), (CHUNK * 3 - 1, 2, 1), (CHUNK * 9, CHUNK, 1)]
        assert chunks_of(extents, CHUNK) == {0, 2, 3, 9}


class TestNbdClient:
    @pytest.fixture
    def served(self, tmp_path):
        raw = tmp_path / "d.raw"
        with open(raw, "wb") as fh:
            fh.truncate(40 * MIB)
        data = os.urandom(3 * MIB)
        write_at(raw, 10 * MIB + 5, data)
        image = tmp_path / "d.qcow2"
        run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", raw, image)  # compressed clusters too
        with serve_image(str(image), "qcow2") as sock:
            yield sock, raw.read_bytes()

    def test_reads_match_the_image(self, served):
        """Reads at any offset, across holes and data, equal the raw content."""
        sock, content = served
        with NbdReader(NbdClient(sock, "disk")) as reader:
            assert reader.size == len(content)
            for offset, length in ((0, 4096), (10 * MIB, 2 * MIB), (10 * MIB + 5, 3 * MIB), (39 * MIB, 2 * MIB)):
                reader.seek(offset)
                assert reader.read(length) == content[offset : offset + length]

    def test_block_status(self, served):
        """base:allocation reports the data region as data and the rest as zero holes."""
        sock, content = served
        with NbdClient(sock, "disk", contexts=("base:allocation",)) as client:
            extents = list(client.block_status("base:allocation"))
        assert extents[0][0] == 0 and sum(length for _, length, _ in extents) == len(content)
        data = [(o, n) for o, n, flags in extents if not flags & 2]
        assert data and data[0][0] <= 10 * MIB + 5 and data[-1][0] + data[-1][1] >= 13 * MIB + 5

    def test_unknown_export_and_context(self, served):
        """An export the server does not have, or a context it does not offer, is a clear error."""
        sock, _ = served
        with pytest.raises(NbdError, match="refused export 'nope'"):
            NbdClient(sock, "nope")
        with NbdClient(sock, "disk") as client:
            with pytest.raises(NbdError, match="does not offer"):
                list(client.block_status("qemu:dirty-bitmap:x"))


class TestLvmMetadata:
    def test_parse(self):
        """LVM's metadata text parses into sections, lists, strings and numbers."""
        text = '''vg0 {
id = "abc"
seqno = 3
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 8192  # 4 MiB
physical_volumes {
pv0 {
id = "PV-UUID"
pe_start = 2048
}
}
logical_volumes {
root {
segment_count = 1
segment1 {
start_extent = 0
extent_count = 10
type = "striped"
stripe_count = 1
stripes = [
"pv0", 5
]
}
}
}
}
contents = "Text Format Volume Group"
'''
        doc = parse_metadata(text)
        assert doc["vg0"]["extent_size"] == 8192
        assert doc["vg0"]["status"] == ["RESIZEABLE", "READ", "WRITE"]
        seg = doc["vg0"]["logical_volumes"]["root"]["segment1"]
        assert seg["stripes"] == ["pv0", 5] and seg["type"] == "striped"
        assert doc["contents"] == "Text Format Volume Group"
