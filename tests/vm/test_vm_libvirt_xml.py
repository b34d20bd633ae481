"""libvirt domain XML handling without a libvirtd: which disks a backup takes or refuses,
the backup and checkpoint documents, and the XML of a domain re-created from a point."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from strongroom_vm.domainxml import backup_xml, checkpoint_xml, defined_xml, domain_disks, parse
from strongroom_vm.errors import DiskNotFile

DOMAIN = """<domain type='kvm' id='7'>
  <name>web</name>
  <uuid>11111111-2222-3333-4444-555555555555</uuid>
  <os><type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>
    <nvram>/var/lib/libvirt/qemu/nvram/web_VARS.fd</nvram></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/>
      <source file='/srv/vm/web.qcow2' index='2'/><backingStore type='file'><format type='qcow2'/>
      <source file='/srv/vm/base.qcow2'/></backingStore><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/srv/iso/debian.iso'/>
      <target dev='sda' bus='sata'/><readonly/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/srv/vm/data.img'/>
      <target dev='vdb' bus='virtio'/></disk>
    <interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='default'/></interface>
    <interface type='bridge'><source bridge='br0'/></interface>
  </devices>
</domain>"""


def _with_disk(disk: str) -> str:
    return DOMAIN.replace("</devices>", disk + "</devices>")


def test_disks_of_a_domain():
    """File-backed raw and qcow2 disks are taken, sorted by target; CD-ROMs are not disks."""
    disks = domain_disks(parse(DOMAIN), "web")
    assert [(d.name, d.path, d.format) for d in disks] == [
        ("vda", "/srv/vm/web.qcow2", "qcow2"), ("vdb", "/srv/vm/data.img", "raw")]


@pytest.mark.parametrize("disk, said", [
    ("<disk type='block' device='disk'><driver type='raw'/><source dev='/dev/vg0/db'/><target dev='vdc'/></disk>",
     "a block disk (/dev/vg0/db)"),
    ("<disk type='network' device='disk'><driver type='raw'/><source protocol='rbd' name='pool/img'/>"
     "<target dev='vdc'/></disk>", "a network disk (pool/img)"),
    ("<disk type='volume' device='disk'><source pool='default' volume='x.qcow2'/><target dev='vdc'/></disk>",
     "a volume disk (x.qcow2)"),
    ("<disk type='file' device='disk'><driver type='vmdk'/><source file='/srv/vm/old.vmdk'/><target dev='vdc'/></disk>",
     "a vmdk image (/srv/vm/old.vmdk)"),
])
def test_disks_it_cannot_read_are_refused(disk, said):
    with pytest.raises(DiskNotFile) as caught:
        domain_disks(parse(_with_disk(disk)), "web")
    assert str(caught.value) == (f"Disk vdc of domain web is {said}: the libvirt mode backs up file-backed raw "
                                 "and qcow2 disks only.")


def test_backup_and_checkpoint_documents():
    """Pull mode over a unix socket; incremental disks name the checkpoint, others are full."""
    root = ET.fromstring(backup_xml("/tmp/x/nbd.sock", [("vda", "/tmp/x/s-vda.qcow2", "sr-a-1"),
                                                         ("vdb", "/tmp/x/s-vdb.qcow2", None)]))
    assert root.get("mode") == "pull"
    assert root.find("server").attrib == {"transport": "unix", "socket": "/tmp/x/nbd.sock"}
    vda, vdb = root.findall("./disks/disk")
    assert (vda.get("backupmode"), vda.get("incremental")) == ("incremental", "sr-a-1")
    assert (vdb.get("backupmode"), vdb.get("incremental")) == ("full", None)
    assert vdb.find("scratch").get("file") == "/tmp/x/s-vdb.qcow2"
    root = ET.fromstring(checkpoint_xml("sr-a-2", [("vda", True), ("vdb", False)]))
    assert root.findtext("name") == "sr-a-2"
    assert [(d.get("name"), d.get("checkpoint")) for d in root.findall("./disks/disk")] == [
        ("vda", "bitmap"), ("vdb", "no")]


def test_defined_xml():
    """A new name and UUID, new MACs (also where there was none), the restored disks in
    their format without the old backing chain, no NVRAM file and no runtime id; the
    CD-ROM is left as it was."""
    xml, uuid, dropped = defined_xml(DOMAIN, "web2", {"vda": ("/restore/disks/vda.img", "raw"),
                                              "vdb": ("/restore/disks/vdb.img", "raw")})
    root = ET.fromstring(xml)
    assert root.findtext("name") == "web2" and root.findtext("uuid") == uuid
    assert uuid != "11111111-2222-3333-4444-555555555555" and len(uuid) == 36
    assert root.get("id") is None
    macs = [m.get("address") for m in root.findall("./devices/interface/mac")]
    assert len(macs) == 2 and "52:54:00:aa:bb:cc" not in macs and all(m.startswith("52:54:00:") for m in macs)
    assert root.find("./os/nvram") is None and root.find("./os/loader") is not None
    disks = {d.find("target").get("dev"): d for d in root.findall("./devices/disk")}
    assert disks["vda"].find("source").get("file") == "/restore/disks/vda.img"
    assert disks["vda"].find("driver").get("type") == "raw"
    assert disks["vda"].find("driver").get("cache") == "none"
    assert disks["vda"].find("backingStore") is None
    assert disks["sda"].find("source").get("file") == "/srv/iso/debian.iso"
    assert dropped == []
    again, other, dropped = defined_xml(DOMAIN, "web3", {"vda": ("/r/vda.qcow2", "qcow2")})
    assert other != uuid and ET.fromstring(again).find("./devices/disk/driver").get("type") == "qcow2"
    # vdb is not in the map: left out, not left pointing at the original domain's image
    assert dropped == ["vdb"]
    assert [d.find("target").get("dev") for d in ET.fromstring(again).findall("./devices/disk")] == ["vda", "sda"]
