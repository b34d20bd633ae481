"""A real libvirtd for the vm workload's libvirt tests, and TCG domains on it.

:func:`ensure_libvirtd` makes libvirtd usable as root on a machine without systemd,
idempotently (the one-time set-up CI needs after installing scripts/apt/vm.txt's
libvirt packages): the ``libvirt-qemu`` user, ``/etc/libvirt/qemu.conf`` lines that run
QEMU as root with no security driver, dynamic ownership or cgroups (appended only when
the file sets none of them), the run and log folders, then ``virtlogd -d`` and
``libvirtd -d`` when they are not running.  It returns None when that worked, else why not.

:class:`Domain` defines a TCG domain (no guest OS: SeaBIOS finds nothing to boot and the
disks are left alone) and writes into its disks as the guest would, through QEMU's
``qemu-io`` on the device's block backend (``virsh qemu-monitor-command --hmp``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import attrs

URI = "qemu:///system"
QEMU_CONF = "/etc/libvirt/qemu.conf"
CONF_LINES = {"user": '"root"', "group": '"root"', "security_driver": '"none"', "dynamic_ownership": "0",
              "cgroup_controllers": "[ ]"}


def virsh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["virsh", "-q", "-c", URI, *map(str, args)], capture_output=True, text=True, check=check,
                          stdin=subprocess.DEVNULL)


def _running(name: str) -> bool:
    return subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0


def ensure_libvirtd() -> str | None:
    """None when libvirtd answers at qemu:///system (set up and started if needed), else why not."""
    for tool in ("virsh", "libvirtd", "virtlogd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian packages libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients)"
    if virsh("version", check=False).returncode == 0:
        return None
    if os.geteuid() != 0:
        return "libvirtd is not running and only root starts it here"
    os.makedirs("/var/log/libvirt", exist_ok=True)
    os.makedirs("/run/libvirt", exist_ok=True)
    if subprocess.run(["id", "libvirt-qemu"], capture_output=True).returncode:
        subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", "libvirt-qemu"], check=True)
    text = open(QEMU_CONF).read() if os.path.exists(QEMU_CONF) else ""
    set_keys = {line.split("=")[0].strip() for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#")}
    missing = [f"{key} = {value}\n" for key, value in CONF_LINES.items() if key not in set_keys]
    if missing:
        with open(QEMU_CONF, "a") as fh:
            fh.write("\n# for strongroom's tests: QEMU as root, without systemd\n" + "".join(missing))
    if not _running("virtlogd"):
        subprocess.run(["virtlogd", "-d"], check=True)
    if not _running("libvirtd"):
        subprocess.run(["libvirtd", "-d"], check=True)
    deadline = time.monotonic() + 20
    while virsh("version", check=False).returncode:
        if time.monotonic() > deadline:
            return "libvirtd did not answer at qemu:///system"
        time.sleep(0.2)
    return None


def domain_xml(name: str, disks: list[tuple[str, str, str]], extra: str = "") -> str:
    """A TCG domain with virtio disks [(target, path, format)] and one user-mode NIC."""
    devices = "".join(
        f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/><source file='{path}'/>"
        f"<target dev='{target}' bus='virtio'/></disk>" for target, path, fmt in disks)
    return (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
            f"<devices>{devices}{extra}<interface type='user'><model type='virtio'/><rom enabled='no'/></interface>"
            "</devices></domain>")


@attrs.define
class Domain:
    name: str
    workdir: str

    def define(self, disks: list[tuple[str, str, str]], extra: str = "") -> "Domain":
        path = os.path.join(self.workdir, f"{self.name}.xml")
        with open(path, "w") as fh:
            fh.write(domain_xml(self.name, disks, extra))
        virsh("define", path)
        return self

    def start(self) -> "Domain":
        virsh("start", self.name)
        return self

    def write(self, target: str, offset: int, length: int, pattern: int) -> None:
        """Write ``pattern`` bytes into disk ``target`` as the guest would (virtio-disk<N> is the Nth disk)."""
        index = self.targets().index(target)
        command = (f'qemu-io -d /machine/peripheral/virtio-disk{index}/virtio-backend '
                   f'"write -P {pattern:#x} {offset} {length}"')
        out = virsh("qemu-monitor-command", self.name, "--hmp", command)
        assert "rror" not in out.stdout + out.stderr, out

    def targets(self) -> list[str]:
        import xml.etree.ElementTree as ET

        root = ET.fromstring(virsh("dumpxml", self.name).stdout)
        return [t.get("dev") for t in root.findall("./devices/disk/target")]

    def checkpoints(self) -> list[str]:
        return virsh("checkpoint-list", self.name, "--name").stdout.split()

    def job(self) -> str:
        """``virsh domjobinfo``: "Operation: Backup" while a backup job runs ('' while libvirt is busy)."""
        return virsh("domjobinfo", self.name, check=False).stdout

    def remove(self) -> None:
        virsh("destroy", self.name, check=False)
        virsh("undefine", self.name, "--checkpoints-metadata", check=False)
