"""Fixtures for the vm workload tests: tools, disk images, QEMU VMs, a fake guest agent.

The tests need QEMU's tools (qemu-utils, qemu-system-x86), fdisk, dosfstools, mtools and
pytsk3; scripts/setup.sh installs them (scripts/apt/vm.txt).  Without them the tests are
skipped, saying what to install, except under ``CI`` where that is a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

from strongroom.testing import unavailable
from vmkit import TOOLS, Disk, FakeAgent, QemuVm, gpt_disk, make_tree, remove, scratch_dir


def _require(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        unavailable(f"{tool} is not installed (Debian package {package}; scripts/setup.sh installs it)")


@pytest.fixture(autouse=True)
def vm_tools():
    for tool, package in TOOLS.items():
        _require(tool, package)
    try:
        import pytsk3  # noqa: F401
    except ImportError:
        unavailable("pytsk3 is not installed (pip install 'strongroom[vm]')")


@pytest.fixture
def qemu_system():
    _require("qemu-system-x86_64", "qemu-system-x86")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    files = make_tree(root)
    return root, files


@pytest.fixture
def gpt_image(tmp_path, tree):
    """A 200 MiB GPT disk image: p1 ext4, p2 FAT32, both with the test tree."""
    path = tmp_path / "system.img"
    gpt_disk(path, tree[0])
    return path


@pytest.fixture
def workdir():
    path = scratch_dir()
    yield path
    remove(path)


@pytest.fixture
def make_vm(qemu_system, workdir):
    """Start QEMU VMs on disks ([(id, path, format)]); all are stopped at the end."""
    vms: list[QemuVm] = []

    def start(disks: list[tuple[str, str, str]]) -> QemuVm:
        vm = QemuVm(workdir, [Disk(i, str(p), f) for i, p, f in disks]).start()
        vms.append(vm)
        return vm

    yield start
    for vm in vms:
        if vm.proc is not None and vm.proc.poll() is None:
            vm.proc.kill()
            vm.proc.wait()


@pytest.fixture
def agent(workdir):
    fake = FakeAgent(os.path.join(workdir, "qga.sock")).start()
    yield fake
    fake.stop()
