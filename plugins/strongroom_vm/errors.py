"""The errors of the vm workload: one line each, with a stable exit code.

Each class's docstring is its message template (see :class:`strongroom.StrongroomError`);
the exit codes are listed in ``docs/cli.md``.
"""

from __future__ import annotations

from strongroom import NotFound, StrongroomError

__all__ = ["VmError", "DiskUnreadable", "QemuError", "GuestAgentError", "DiskNotInPoint", "UnknownFilesystem", "ToolMissing", "DiskInUse",
           "NotAVmItem", "ExportAddressRefused", "ExportAddressUnusable", "OverlayUnusable",
           "LibvirtError", "DomainNotFound", "DiskNotFile", "DomainExists", "BackupJobBusy",
           "LuksWrongKey", "LuksNeedsKey", "LuksUnsupported", "LuksKeyUnavailable"]


class VmError(StrongroomError):
    """{message}"""

    exit_code = 90


class DiskUnreadable(VmError):
    """Cannot read disk {disk}: {reason}"""

    exit_code = 91


class QemuError(VmError):
    """QEMU at {socket}: {reason}"""

    exit_code = 92


class GuestAgentError(VmError):
    """Guest agent at {socket}: {reason}"""

    exit_code = 93


class DiskNotInPoint(NotFound):
    """Disk '{disk}' not found in recovery point {point} (disks: {disks})."""

    exit_code = 94


class UnknownFilesystem(VmError):
    """Cannot read {where}: {reason}"""

    exit_code = 95


class ToolMissing(VmError):
    """{tool} is needed to {purpose}; install {package}."""

    exit_code = 96


class DiskInUse(DiskUnreadable):
    """Disk {disk} is in use by a running VM (it holds QEMU's write lock): back the VM up through --qmp, or protect the item with --force to read its disks anyway (points marked inconsistent)."""

    exit_code = 97


class NotAVmItem(VmError):
    """Item {item} is a {workload} item: vm export serves the disks of vm points only."""

    exit_code = 120


class ExportAddressRefused(VmError):
    """Refusing to serve NBD on {address}: it is not a loopback address and whoever reaches it reads the disks; add --allow-remote to serve it anyway."""

    exit_code = 121


class ExportAddressUnusable(VmError):
    """Cannot serve NBD at {address}: {reason}"""

    exit_code = 122


class OverlayUnusable(VmError):
    """Overlay {path}: {reason}"""

    exit_code = 123


class LibvirtError(VmError):
    """libvirt at {uri}: {reason}"""

    exit_code = 92  # as any hypervisor error


class DomainNotFound(VmError):
    """No libvirt domain named '{domain}' at {uri}."""

    exit_code = 98


class DiskNotFile(VmError):
    """Disk {disk} of domain {domain} is {what}: the libvirt mode backs up file-backed raw and qcow2 disks only."""

    exit_code = 47  # as any invalid source


class DomainExists(VmError):
    """A libvirt domain named '{name}' already exists at {uri}: give --define a new name."""

    exit_code = 42  # as any name already taken


class BackupJobBusy(VmError):
    """Domain {domain} runs a backup job strongroom did not start: wait for it to end, or end it with 'virsh domjobabort {domain}'."""

    exit_code = 97  # as a disk another VM holds


class LuksWrongKey(VmError):
    """Cannot unlock {where}: {source} opens none of its LUKS key slots."""

    exit_code = 125


class LuksNeedsKey(VmError):
    """{where} is encrypted ({kind}): give restore --luks-passphrase-env VAR or --luks-key-file FILE (browse reads STRONGROOM_LUKS_PASSPHRASE or STRONGROOM_LUKS_KEY_FILE)."""

    exit_code = 124


class LuksUnsupported(VmError):
    """Cannot unlock {where}: {reason} is not supported."""

    exit_code = 95  # as any volume strongroom cannot read


class LuksKeyUnavailable(VmError):
    """Cannot read the LUKS key: {reason}."""

    exit_code = 36  # as any secret that is not available
