"""A Linux guest for the instant-restore test: the host's kernel, a small initramfs that
loads the virtio block driver and hands over to the root file system of disk ``vda``
partition 1, and a root file system whose ``/sbin/init.sh`` (run as ``init=/bin/sh`` would
run it) prints a marker on the serial console and powers off.

The kernel is ``STRONGROOM_TEST_KERNEL`` (a ``vmlinuz-VERSION`` whose modules are in
``lib/modules/VERSION`` beside its ``boot/`` folder, as ``dpkg-deb -x`` of a Debian
``linux-image-*`` package leaves them), the one ``scripts/test-kernel.sh`` unpacks into
``build/test-kernel`` (the tests' set-up does), or the newest ``/boot/vmlinuz-*`` with
``/lib/modules/VERSION``; busybox is ``STRONGROOM_TEST_BUSYBOX`` or the ``busybox`` on the
PATH, and must be static (Debian ``busybox-static``).  No root and no mounting: the
initramfs is written here (newc cpio), the root file system with ``mke2fs -d``.
"""

from __future__ import annotations

import glob
import gzip
import lzma
import os
import shutil
import stat

from vmkit import ext4_at, partition

#: Loaded in this order where they are modules (built-in ones are simply not there).
MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk")
MARKER = "STRONGROOM-MARKER: init runs from the point's root file system"

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /dev /proc /mnt
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
for m in {modules}; do [ -f /lib/$m.ko ] && insmod /lib/$m.ko; done
n=0; while [ ! -b /dev/vda1 ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n+1)); done
mount -t ext4 -o ro /dev/vda1 /mnt || {{ echo "initramfs: cannot mount /dev/vda1"; poweroff -f; }}
mount --move /dev /mnt/dev
exec switch_root /mnt /bin/sh /sbin/init.sh
"""

ROOT_INIT = f"""/bin/busybox echo "{MARKER}"
/bin/busybox cat /etc/motd
/bin/busybox poweroff -f
"""


def find_kernel() -> tuple[str, str] | str:
    """(kernel image, modules folder), or why there is none."""
    given = os.environ.get("STRONGROOM_TEST_KERNEL")
    unpacked = os.path.join(os.path.dirname(__file__), "..", "..", "build", "test-kernel", "boot", "vmlinuz-*")
    candidates = [given] if given else sorted(glob.glob(unpacked), reverse=True) + sorted(glob.glob("/boot/vmlinuz-*"), reverse=True)
    for kernel in candidates:
        version = os.path.basename(kernel).removeprefix("vmlinuz-")
        beside = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(kernel))), "lib", "modules", version)
        for modules in (beside, f"/lib/modules/{version}"):
            if os.path.isfile(kernel) and os.path.isdir(modules):
                return kernel, modules
    return ("no Linux kernel with its modules (apt-get install linux-image-cloud-amd64, or set "
            "STRONGROOM_TEST_KERNEL to boot/vmlinuz-VERSION of an unpacked linux-image package)")


def find_busybox() -> str | None:
    path = os.environ.get("STRONGROOM_TEST_BUSYBOX") or shutil.which("busybox")
    if not path:
        return None
    with open(path, "rb") as fh:
        head = fh.read(8192)
    return None if b"ld-linux" in head else path  # a dynamic busybox cannot run alone


def _cpio(files: dict[str, tuple[int, bytes]]) -> bytes:
    """A newc cpio archive of {path: (mode, content)} (folders: content b"")."""
    out = bytearray()
    for ino, (name, (mode, data)) in enumerate([*files.items(), ("TRAILER!!!", (0, b""))], start=1):
        raw = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data), 0, 0, 0, 0, len(raw), 0)
        out += b"070701" + "".join(f"{v:08x}" for v in fields).encode() + raw
        out += bytes(-len(out) % 4) + data
        out += bytes(-len(out) % 4)
    return bytes(out)


def initramfs(path, modules: str, busybox: str) -> None:
    files: dict[str, tuple[int, bytes]] = {
        "bin": (stat.S_IFDIR | 0o755, b""), "lib": (stat.S_IFDIR | 0o755, b""),
        "bin/busybox": (stat.S_IFREG | 0o755, open(busybox, "rb").read()),
        "init": (stat.S_IFREG | 0o755, INIT.format(modules=" ".join(MODULES)).encode()),
    }
    for name in MODULES:
        for found in glob.glob(f"{modules}/kernel/**/{name}.ko*", recursive=True):
            data = open(found, "rb").read()
            files[f"lib/{name}.ko"] = (stat.S_IFREG | 0o644, lzma.decompress(data) if found.endswith(".xz") else data)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(_cpio(files), 1))


def root_disk(path, busybox: str, scratch) -> None:
    """A 128 MiB GPT disk whose partition 1 (64 MiB ext4) is the guest's root file system."""
    tree = os.path.join(scratch, "rootfs")
    for folder in ("bin", "sbin", "etc", "dev", "proc"):
        os.makedirs(os.path.join(tree, folder), exist_ok=True)
    shutil.copy(busybox, os.path.join(tree, "bin", "busybox"))
    os.symlink("busybox", os.path.join(tree, "bin", "sh"))
    with open(os.path.join(tree, "sbin", "init.sh"), "w") as fh:
        fh.write(ROOT_INIT)
    with open(os.path.join(tree, "etc", "motd"), "w") as fh:
        fh.write("read from the backup\n")
    parts = partition(path, 128, "label: gpt\nstart=2048, size=64MiB, type=L, name=root\n")
    ext4_at(path, tree, parts[0]["start"], 64)
