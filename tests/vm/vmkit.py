"""Test tools for the vm workload: disk images with real file systems, QEMU VMs, a fake
guest agent, and a store that counts what is fetched.

Images are built without root and without mounting: ``mke2fs -d``, ``mkfs.fat`` +
``mcopy``, ``sfdisk`` on image files, ``qemu-img convert``.  Large images are sparse.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import attrs
import pytest

from strongroom_vm.qmp import QmpClient, peer_pid

MIB = 1 << 20
CHUNK = 4 * MIB
TOOLS = {"qemu-img": "qemu-utils", "qemu-nbd": "qemu-utils", "sfdisk": "fdisk", "mkfs.fat": "dosfstools",
         "mcopy": "mtools", "mke2fs": "e2fsprogs"}


def run(*argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, **kwargs)


def sha256_file(path, *, fmt: str = "raw") -> str:
    """The checksum of an image's raw (guest-visible) content, read by QEMU's own tool."""
    if fmt != "raw":
        with tempfile.TemporaryDirectory() as tmp:
            raw = os.path.join(tmp, "raw")
            run("qemu-img", "convert", "-f", fmt, "-O", "raw", path, raw)
            return sha256_file(raw)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 * MIB):
            h.update(block)
    return h.hexdigest()


def make_tree(root, seed: int = 1) -> dict[str, bytes]:
    """A small tree of files; returns {relative path: content}."""
    rng = random.Random(seed)
    files = {
        "etc/motd": b"welcome to the test VM\n",
        "etc/hosts": b"127.0.0.1 localhost\n",
        "home/alice/notes.txt": b"alice's notes\n" * 100,
        "home/alice/docs/report.bin": rng.randbytes(300_000),
        "home/alice/docs/deep/er/file.txt": b"deep\n",
        "home/bob/photo.jpg": rng.randbytes(70_000),
    }
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
    os.chmod(os.path.join(root, "home/alice/notes.txt"), 0o600)
    os.utime(os.path.join(root, "home/alice/notes.txt"), ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    return files


def partition(image, size_mib: int, script: str) -> list[dict]:
    with open(image, "ab") as fh:
        fh.truncate(size_mib * MIB)
    run("sfdisk", "-q", image, input=script.encode())
    return json.loads(run("sfdisk", "-J", image).stdout)["partitiontable"]["partitions"]


def ext4_at(image, tree, start_sector: int, size_mib: int) -> None:
    run("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "testfs", "-E", f"offset={start_sector * 512}",
        "-d", tree, image, f"{size_mib * 1024}k")


def fat_at(image, tree, start_sector: int, size_mib: int) -> None:
    run("mkfs.fat", "-F", "32", "-n", "TESTFAT", "--offset", str(start_sector), image, str(size_mib * 1024))
    entries = [os.path.join(tree, n) for n in sorted(os.listdir(tree))]
    run("mcopy", "-s", "-m", "-i", f"{image}@@{start_sector * 512}", *entries, "::/")


def gpt_disk(path, tree, *, size_mib: int = 200) -> list[dict]:
    """A GPT disk with an ext4 partition (p1) and a FAT32 partition (p2), both holding ``tree``."""
    parts = partition(path, size_mib, "label: gpt\nstart=2048, size=64MiB, type=L, name=linux\n"
                      "size=64MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=data\n")
    ext4_at(path, tree, parts[0]["start"], 64)
    fat_at(path, tree, parts[1]["start"], 64)
    return parts


def ntfs_disk(path, payload, *, size_mib: int = 80) -> list[dict]:
    """A GPT disk with one 64 MiB NTFS partition (label WIN) holding the file ``payload`` as
    ``/report.txt``; the test is skipped where ntfs-3g (mkntfs, ntfscp) is not installed."""
    if shutil.which("mkntfs") is None or shutil.which("ntfscp") is None:
        pytest.skip("ntfs-3g is not installed (it makes the NTFS test image)")
    parts = partition(path, size_mib, "label: gpt\nstart=2048, size=64MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n")
    volume = f"{path}.ntfs-part"
    with open(volume, "wb") as fh:
        fh.truncate(64 * MIB)
    run("mkntfs", "-F", "-Q", "-q", "-L", "WIN", "-p", str(parts[0]["start"]), volume)
    run("ntfscp", volume, payload, "/report.txt")
    with open(volume, "rb") as src:
        write_at(path, parts[0]["start"] * 512, src.read())
    os.remove(volume)
    return parts


def qcow2_vm_item(vault, folder, size: int):
    """Item ``web`` of ``vault``: an offline VM whose one disk, ``folder/disk.qcow2``, holds
    ``size`` random bytes (made from a raw file, removed); returns the image's path."""
    raw = folder / "disk.raw"
    raw.write_bytes(os.urandom(size))
    image = to_qcow2(raw, folder / "disk.qcow2", keep_raw=False)
    vault.protect("vm", "web", {"disks": [str(image)]})
    return image


def backed_up_ntfs_disk(vault, folder, payload_size: int):
    """Item ``win`` of ``vault``: the disk ``folder/win.img`` (:func:`ntfs_disk`) holding
    ``payload_size`` random bytes as ``/report.txt``, backed up once; returns the payload's
    own file (``folder/report.txt``)."""
    image, payload = folder / "win.img", folder / "report.txt"
    payload.write_bytes(os.urandom(payload_size))
    ntfs_disk(image, payload)
    vault.protect("vm", "win", {"disks": [str(image)]})
    vault.backup("win")
    return payload


def write_at(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def sparse_image(path, size: int, *writes: tuple[int, bytes]):
    """A raw image of ``size`` bytes at ``path``: a hole but for each ``(offset, data)`` of
    ``writes``; returns ``path``."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    for offset, data in writes:
        write_at(path, offset, data)
    return path


def to_qcow2(raw, image, *, keep_raw: bool = True):
    """``image``: a qcow2 copy of the raw image ``raw``, made by ``qemu-img convert`` (``raw``
    removed unless ``keep_raw``); returns ``image``."""
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, image)
    if not keep_raw:
        os.unlink(raw)
    return image


def is_sparse(path, at_most: int) -> bool:
    return os.stat(path).st_blocks * 512 <= at_most


# --- QEMU --------------------------------------------------------------------------------


@attrs.define
class Disk:
    id: str
    path: str
    fmt: str


@attrs.define
class QemuVm:
    """A QEMU process with disks and two QMP sockets: ``qmp`` for strongroom, ``control``
    for the test (QEMU serves one client per socket).  The CPU stays paused (-S): disk
    writes come from ``qemu-io`` through the monitor, no guest needed."""

    workdir: str
    disks: list[Disk]
    proc: subprocess.Popen | None = None

    @property
    def qmp(self) -> str:
        return os.path.join(self.workdir, "qmp.sock")

    @property
    def control(self) -> str:
        return os.path.join(self.workdir, "control.sock")

    def start(self, extra: tuple[str, ...] = ()) -> "QemuVm":
        for sock in (self.qmp, self.control):
            if os.path.exists(sock):
                os.unlink(sock)
        argv = ["qemu-system-x86_64", "-nodefaults", "-display", "none", "-machine", "q35,accel=tcg",
                "-m", "64", "-S", "-qmp", f"unix:{self.qmp},server=on,wait=off",
                "-qmp", f"unix:{self.control},server=on,wait=off"]
        for i, disk in enumerate(self.disks):
            argv += ["-blockdev", f"driver=file,filename={disk.path},node-name=file{i}",
                     "-blockdev", f"driver={disk.fmt},file=file{i},node-name=node{i}",
                     "-device", f"virtio-blk-pci,drive=node{i},id={disk.id}"]
        log = open(os.path.join(self.workdir, "qemu.log"), "ab")
        self.proc = subprocess.Popen([*argv, *extra], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                QmpClient(self.control, timeout=2).close()
                return self
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"QEMU did not start: {open(os.path.join(self.workdir, 'qemu.log')).read()}")
                time.sleep(0.05)

    def monitor(self) -> QmpClient:
        return QmpClient(self.control)

    def write(self, disk_id: str, offset: int, length: int, pattern: int) -> None:
        """Write ``pattern`` bytes as the guest would, through the device's block backend."""
        with self.monitor() as mon:
            out = mon.hmp(f'qemu-io -d /machine/peripheral/{disk_id}/virtio-backend '
                          f'"write -P {pattern:#x} {offset} {length}"')
            assert "rror" not in out, out  # qemu-io prints its report on QEMU's stdout

    def bitmaps(self, node: str = "node0") -> list[dict]:
        with self.monitor() as mon:
            for n in mon.execute("query-named-block-nodes", {"flat": True}):
                if n["node-name"] == node:
                    return n.get("dirty-bitmaps") or []
        return []

    def nodes(self) -> list[str]:
        with self.monitor() as mon:
            return [n["node-name"] for n in mon.execute("query-named-block-nodes", {"flat": True})]

    def stop(self) -> None:
        """Quit cleanly (persistent bitmaps are written into qcow2 images)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            with self.monitor() as mon:
                mon.execute("quit")
            self.proc.wait(20)
        except Exception:
            self.proc.kill()
            self.proc.wait()


# --- a fake guest agent ----------------------------------------------------------------------


@attrs.define(eq=False)
class FakeAgent:
    """The host side of a guest agent: answers the freeze commands, keeps the state.

    ``on_freeze(agent)`` runs when a freeze arrives, before the answer; ``clients`` has
    the pid of every process that connected.
    """

    path: str
    state: str = "thawed"
    log: list[str] = attrs.field(factory=list)
    clients: list[int] = attrs.field(factory=list)
    on_freeze: object = None
    _server: socket.socket | None = None

    def start(self) -> "FakeAgent":
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.clients.append(peer_pid(conn) or 0)
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buffer += data.replace(b"\xff", b"")
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    if line.strip():
                        answer = self._answer(json.loads(line))
                        try:
                            conn.sendall(answer)
                        except OSError:  # the client was killed (tests do that on purpose)
                            return

    def _answer(self, request: dict) -> bytes:
        command = request["execute"]
        self.log.append(command)
        if command == "guest-sync-delimited":
            return b"\xff" + json.dumps({"return": request["arguments"]["id"]}).encode() + b"\n"
        if command == "guest-fsfreeze-status":
            result = self.state
        elif command == "guest-fsfreeze-freeze":
            self.state = "frozen"
            if self.on_freeze:
                self.on_freeze(self)
            result = 2
        elif command == "guest-fsfreeze-thaw":
            result = 2 if self.state == "frozen" else 0
            self.state = "thawed"
        else:
            return json.dumps({"error": {"class": "CommandNotFound", "desc": command}}).encode() + b"\n"
        return json.dumps({"return": result}).encode() + b"\n"

    def wait_for(self, state: str, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.state != state:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- counting what is fetched --------------------------------------------------------------


class CountingStore:
    """Wraps a store and counts the bytes of every read."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.bytes = 0
        self.reads = 0

    def get(self, name):
        data = self.inner.get(name)
        self.bytes += len(data)
        self.reads += 1
        return data

    def get_range(self, name, offset, length):
        data = self.inner.get_range(name, offset, length)
        self.bytes += len(data)
        self.reads += 1
        return data

    def __getattr__(self, name):
        return getattr(self.inner, name)


def scratch_dir(prefix: str = "srvm-") -> str:
    """A short folder under /tmp (unix socket paths are limited to 107 bytes)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
