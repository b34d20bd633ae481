"""The errors of the vm workload: one line each, with a stable exit code.

Each class's docstring is its message template (see :class:`strongroom.StrongroomError`);
the exit codes are listed in ``docs/cli.md``.
"""

from __future__ import annotations

from strongroom import NotFound, StrongroomError

__all__ = ["VmError", "DiskUnreadable", "QemuError", "GuestAgentError", "DiskNotInPoint", "UnknownFilesystem", "ToolMissing", "DiskInUse"]


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
