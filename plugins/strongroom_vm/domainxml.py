"""libvirt domain XML: the disks a backup reads, the backup and checkpoint documents it
gives libvirt, and the XML of a domain re-created from a recovery point.

Pure XML handling, no libvirt call (:mod:`strongroom_vm.libvirt` runs ``virsh``):

- :func:`domain_disks` lists the disks of a domain XML (``<disk device='disk'>``; CD-ROMs,
  floppies and LUNs are not disks of the VM's own).  Only file-backed ``raw`` and ``qcow2``
  disks are taken: any other (a block device, a network disk, another format) is refused
  with :class:`~strongroom_vm.errors.DiskNotFile`, naming it;
- :func:`backup_xml` and :func:`checkpoint_xml` write the ``<domainbackup mode='pull'>``
  and ``<domaincheckpoint>`` documents of one backup;
- :func:`defined_xml` rewrites a saved domain XML for ``restore --define NEW_NAME``: the
  new name and UUID, new MAC addresses, the disks pointing at the restored files (with
  their format), no NVRAM file of the original domain, no disk the point does not hold.
  The original XML is not changed.
"""

from __future__ import annotations

import os
import random
import uuid as uuidlib
import xml.etree.ElementTree as ET

import attrs

from .errors import DiskNotFile, LibvirtError
from .layout import check_disk_name

__all__ = ["DomainDisk", "backup_xml", "checkpoint_xml", "defined_xml", "domain_disks", "domain_identity",
           "new_mac", "parse"]

#: The image formats the libvirt mode reads.
FORMATS = ("raw", "qcow2")


@attrs.frozen
class DomainDisk:
    name: str  # the target device (vda, sdb...): the disk's name in the point and in libvirt's backup
    path: str
    format: str


def parse(xml: str, what: str = "domain XML") -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LibvirtError(uri=what, reason=f"unreadable XML ({exc})") from None


def domain_identity(root: ET.Element) -> tuple[str, str]:
    """The domain's name and UUID."""
    return (root.findtext("name") or "").strip(), (root.findtext("uuid") or "").strip()


def domain_disks(root: ET.Element, domain: str) -> list[DomainDisk]:
    """The domain's file-backed raw and qcow2 disks; any other disk is refused."""
    disks: list[DomainDisk] = []
    for disk in root.findall("./devices/disk"):
        if disk.get("device", "disk") != "disk":
            continue
        target = disk.find("target")
        name = target.get("dev", "") if target is not None else ""
        shown = name or "(no target)"
        source = disk.find("source")
        kind = disk.get("type", "file")
        if kind != "file" or source is None or not source.get("file"):
            where = ""
            if source is not None:
                where = source.get("dev") or source.get("name") or source.get("volume") or source.get("pool") or ""
            raise DiskNotFile(disk=shown, domain=domain, what=f"a {kind} disk" + (f" ({where})" if where else ""))
        driver = disk.find("driver")
        fmt = (driver.get("type") if driver is not None else None) or "raw"
        if fmt not in FORMATS:
            raise DiskNotFile(disk=shown, domain=domain, what=f"a {fmt} image ({source.get('file')})")
        if check_disk_name(name) is not None:
            raise DiskNotFile(disk=shown, domain=domain, what="a disk without a usable target name")
        disks.append(DomainDisk(name=name, path=source.get("file"), format=fmt))
    return sorted(disks, key=lambda d: d.name.encode())


def _text(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode") + "\n"


def backup_xml(socket: str, disks: list[tuple[str, str, str | None]]) -> str:
    """A pull-mode backup over an NBD unix socket; ``disks``: (name, scratch file,
    checkpoint the disk's changes are read since, or None for a full read)."""
    root = ET.Element("domainbackup", mode="pull")
    ET.SubElement(root, "server", transport="unix", socket=socket)
    parent = ET.SubElement(root, "disks")
    for name, scratch, since in disks:
        attributes = {"name": name, "backup": "yes", "type": "file"}
        if since:
            attributes.update(backupmode="incremental", incremental=since)
        else:
            attributes["backupmode"] = "full"
        disk = ET.SubElement(parent, "disk", attributes)
        ET.SubElement(disk, "scratch", file=scratch)
    return _text(root)


def checkpoint_xml(name: str, disks: list[tuple[str, bool]]) -> str:
    """A checkpoint: a persistent dirty bitmap on each disk marked True (qcow2 only)."""
    root = ET.Element("domaincheckpoint")
    ET.SubElement(root, "name").text = name
    parent = ET.SubElement(root, "disks")
    for disk, bitmap in disks:
        ET.SubElement(parent, "disk", name=disk, checkpoint="bitmap" if bitmap else "no")
    return _text(root)


def new_mac() -> str:
    """A random locally administered MAC address in QEMU's 52:54:00 range."""
    return "52:54:00:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))


def defined_xml(xml: str, name: str, disks: dict[str, tuple[str, str]]) -> tuple[str, str, list[str]]:
    """``xml`` rewritten for a new domain ``name``: a new UUID, new MAC addresses, disk
    ``target -> (path, format)`` pointing at the restored images.  A disk of the XML that
    is not in ``disks`` is left out (the new domain must not share the original's image);
    CD-ROMs and floppies stay.  Returns (xml, uuid, the targets of the disks left out)."""
    root = parse(xml, "the saved domain XML")
    root.attrib.pop("id", None)
    found = root.find("name")
    if found is None:
        found = ET.SubElement(root, "name")
    found.text = name
    new_uuid = str(uuidlib.uuid4())
    found = root.find("uuid")
    if found is None:
        found = ET.SubElement(root, "uuid")
    found.text = new_uuid
    for element in root.findall("./devices/interface"):
        mac = element.find("mac")
        if mac is None:
            mac = ET.SubElement(element, "mac")
        mac.set("address", new_mac())
    os_element = root.find("os")
    if os_element is not None:
        for nvram in os_element.findall("nvram"):  # the original domain's UEFI variables stay its own
            os_element.remove(nvram)
    dropped: list[str] = []
    devices = root.find("devices")
    for disk in root.findall("./devices/disk"):
        target = disk.find("target")
        dev = target.get("dev") if target is not None else None
        if dev not in disks:
            if disk.get("device", "disk") == "disk":
                devices.remove(disk)
                dropped.append(dev or "(no target)")
            continue
        path, fmt = disks[dev]
        disk.set("type", "file")
        for child in list(disk):
            if child.tag in ("source", "backingStore"):
                disk.remove(child)
        driver = disk.find("driver")
        if driver is None:
            driver = ET.Element("driver", name="qemu")
            disk.insert(0, driver)
        driver.set("type", fmt)
        source = ET.Element("source", file=os.path.abspath(path))
        disk.insert(list(disk).index(driver) + 1, source)
    return _text(root), new_uuid, dropped
