"""``strongroom vm export``: a point's disks served over NBD straight from the vault, read
by QEMU's own tools and booted by QEMU, read-only or copy-on-write into an overlay."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys

import pytest

from nbdclient import (
    CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES, OPT_STRUCTURED_REPLY, REP_ACK, REP_ERR_UNKNOWN,
    REP_ERR_UNSUP, NbdClient,
)
from vaultkit import run_strongroom, wait_until
from vmkit import MIB, run, sha256_file, sparse_image, to_qcow2, write_at

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")


class Exporter:
    """A running ``strongroom vm export`` (stopped at the end of the test)."""

    def __init__(self, vault_url: str, spec: str, sock: str, *extra: str, first: str = "Serving") -> None:
        self.sock = sock
        self.proc = subprocess.Popen([STRONGROOM, "--vault", vault_url, "vm", "export", spec, "--nbd", f"unix:{sock}",
                                      *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.first_line = self.proc.stdout.readline()  # printed once it listens
        if not self.first_line.startswith(first):
            raise AssertionError(f"export ended: {self.first_line} {self.proc.communicate()}")

    def uri(self, disk: str) -> str:
        return f"nbd+unix:///{disk}?socket={self.sock}"

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(30)
        return self.proc.returncode, self.first_line + self.proc.stdout.read(), self.proc.stderr.read()


@pytest.fixture
def export(vault_url, workdir):
    started: list[Exporter] = []

    def start(spec: str, *extra: str, name: str = "nbd.sock", first: str = "Serving") -> Exporter:
        exporter = Exporter(vault_url, spec, os.path.join(workdir, name), *extra, first=first)
        started.append(exporter)
        return exporter

    yield start
    for exporter in started:
        if exporter.proc.poll() is None:
            exporter.proc.kill()
            exporter.proc.wait()


@pytest.fixture
def two_disks(tmp_path, gpt_image):
    """A raw GPT system disk and a qcow2 data disk with data far apart."""
    raw = sparse_image(tmp_path / "data-raw.img", 96 * MIB, (3 * MIB, os.urandom(2 * MIB)),
                       (90 * MIB + 12345, b"end of the data disk" * 1000))
    return gpt_image, to_qcow2(raw, tmp_path / "data.qcow2")


def compare(source, fmt: str, uri: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-img", "compare", "-f", fmt, str(source), "-F", "raw", uri],
                          capture_output=True, text=True)


class TestServedBytes:
    def test_raw_and_qcow2_disks_read_back_identical(self, vault, export, two_disks):
        """qemu-img compare finds each export identical to its source disk, raw and qcow2 alike."""
        system, data = two_disks
        vault.protect("vm", "web", {"disks": [str(system), str(data)]})
        point = vault.backup("web")
        server = export("web")
        assert compare(system, "raw", server.uri("system")).returncode == 0
        assert compare(data, "qcow2", server.uri("data")).returncode == 0
        code, out, err = server.stop()
        assert code == 0, err
        assert f"web@{point.short_id}" in server.first_line
        assert f"-drive file={server.uri('system')},format=raw,if=virtio,readonly=on" in out
        assert not os.path.exists(server.sock), "the socket file is left behind"

    def test_a_changed_source_differs_from_the_export(self, vault, export, gpt_image):
        """The comparison is real: after the source changes, the export (the point) differs from it."""
        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        vault.backup("sys")
        write_at(gpt_image, 150 * MIB, b"changed after the backup")
        result = compare(gpt_image, "raw", export("sys").uri("system"))
        assert result.returncode == 1 and f"mismatch at offset {150 * MIB}" in result.stdout

    def test_exports_are_listed_and_unknown_names_refused(self, vault, export, two_disks):
        """NBD_OPT_LIST names every disk; an unknown export and structured replies are refused politely."""
        system, data = two_disks
        vault.protect("vm", "web", {"disks": [str(system), str(data)]})
        vault.backup("web")
        server = export("web")
        client = NbdClient(server.sock)
        assert sorted(client.list()) == ["data", "system"]
        assert client.option(OPT_STRUCTURED_REPLY)[-1][0] == REP_ERR_UNSUP
        assert client.go("nope")[-1][0] == REP_ERR_UNKNOWN
        assert client.go("system")[-1][0] == REP_ACK
        assert client.size == os.path.getsize(system)
        error, block = client.command(CMD_READ, 2048 * 512, 4096)
        with open(system, "rb") as fh:
            fh.seek(2048 * 512)
            assert (error, block) == (0, fh.read(4096))
        assert client.command(CMD_READ, client.size - 512, 1024)[0] == 22  # EINVAL past the end
        client.close()

    def test_json_names_each_disk_and_its_drive_option(self, vault, export, two_disks):
        """--json prints one document, once listening, with each disk's size, URI and -drive option."""
        system, data = two_disks
        vault.protect("vm", "web", {"disks": [str(system), str(data)]})
        point = vault.backup("web")
        server = export("web", "--json", first='{')
        doc = json.loads(server.first_line)  # one line
        assert doc["schema"] and doc["point"] == point.point_id and doc["item"] == "web"
        disks = {d["name"]: d for d in doc["disks"]}
        assert disks["data"]["size"] == 96 * MIB and disks["data"]["uri"] == server.uri("data")
        assert disks["system"]["drive"].endswith(",readonly=on") and disks["system"]["overlay"] is None
        assert compare(system, "raw", disks["system"]["uri"]).returncode == 0

    def test_only_the_disk_asked_for_is_served(self, vault, export, two_disks):
        """--disk serves that disk alone, and the empty export name is it."""
        system, data = two_disks
        vault.protect("vm", "web", {"disks": [str(system), str(data)]})
        vault.backup("web")
        server = export("web", "--disk", "data")
        client = NbdClient(server.sock)
        assert client.list() == ["data"]
        assert client.go("")[-1][0] == REP_ACK and client.size == 96 * MIB
        client.close()


    def test_tcp_loopback_and_clients_at_once(self, vault, vault_url, two_disks):
        """On a loopback TCP port, two qemu-img compares at once (one per disk) both find identical bytes."""
        system, data = two_disks
        vault.protect("vm", "web", {"disks": [str(system), str(data)]})
        vault.backup("web")
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        proc = subprocess.Popen([STRONGROOM, "--vault", vault_url, "vm", "export", "web", "--nbd", f"127.0.0.1:{port}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline()
            assert first.startswith("Serving"), proc.stderr.read() if proc.poll() is not None else first
            jobs = [subprocess.Popen(["qemu-img", "compare", "-f", fmt, str(src), "-F", "raw",
                                      f"nbd://127.0.0.1:{port}/{name}"], stdout=subprocess.PIPE, text=True)
                    for src, fmt, name in ((system, "raw", "system"), (data, "qcow2", "data"))]
            assert [job.wait(120) for job in jobs] == [0, 0]
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0
            assert f"file=nbd://127.0.0.1:{port}/data,format=raw" in proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


    def test_a_damaged_chunk_is_an_io_error_and_serving_goes_on(self, vault, export, gpt_image):
        """A read of a damaged chunk gets EIO (never wrong bytes); other chunks still read right."""
        from isolation.damagekit import damage_blob

        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        point = vault.backup("sys")
        chunks = vault.tree(point).lookup("disks/system").chunks
        assert chunks[0] and chunks[1]
        damage_blob(vault, chunks[0])
        server = export("sys")
        client = NbdClient(server.sock)
        client.go("system")
        assert client.command(CMD_READ, 0, 512)[0] == 5  # EIO
        with open(gpt_image, "rb") as fh:
            fh.seek(4 * MIB)
            assert client.command(CMD_READ, 4 * MIB, 4096) == (0, fh.read(4096))
        assert client.command(CMD_READ, 512, 512)[0] == 5
        client.close()


class TestReadOnly:
    def test_writes_are_refused_with_eperm(self, vault, export, gpt_image):
        """On a read-only export, WRITE, TRIM and WRITE_ZEROES get EPERM; reads and FLUSH work."""
        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        vault.backup("sys")
        server = export("sys")
        client = NbdClient(server.sock)
        client.go("system")
        assert client.flags & 2, "the export does not say it is read-only"
        assert client.command(CMD_WRITE, 0, 512, b"x" * 512)[0] == 1  # EPERM
        assert client.command(CMD_TRIM, 0, 4096)[0] == 1
        assert client.command(CMD_WRITE_ZEROES, 0, 4096)[0] == 1
        assert client.command(CMD_FLUSH)[0] == 0
        with open(gpt_image, "rb") as fh:
            assert client.command(CMD_READ, 0, 512) == (0, fh.read(512))
        client.close()

    def test_qemu_io_cannot_write(self, vault, export, gpt_image):
        """qemu-io refuses to open the export for writing."""
        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        vault.backup("sys")
        server = export("sys")
        result = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0xab 0 4k", server.uri("system")],
                                capture_output=True, text=True)
        assert result.returncode != 0 and "permission denied" in result.stderr.lower(), result.stdout + result.stderr
        assert compare(gpt_image, "raw", server.uri("system")).returncode == 0


class TestOverlay:
    def test_writes_land_in_the_overlay_and_the_vault_is_unchanged(self, vault, vault_url, export, gpt_image,
                                                                  workdir, tmp_path):
        """With --overlay, writes read back (also after serving again), while verify and restore see the original."""
        original = sha256_file(gpt_image)
        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        vault.backup("sys")
        overlay = os.path.join(workdir, "sys.overlay")
        server = export("sys", "--overlay", overlay)
        uri = server.uri("system")
        for command in ("write -P 0xab 1M 64k", "write -P 0xcd 150M 1000", "write -z 8M 128k"):
            done = subprocess.run(["qemu-io", "-f", "raw", "-c", command, uri], capture_output=True, text=True)
            assert done.returncode == 0 and "error" not in done.stdout.lower(), done.stdout + done.stderr
        assert "-drive file=" in server.stop()[1]
        server = export("sys", "--overlay", overlay, name="again.sock")
        uri = server.uri("system")
        for command in ("read -P 0xab 1M 64k", "read -P 0xcd 150M 1000", "read -P 0 8M 128k"):
            done = subprocess.run(["qemu-io", "-f", "raw", "-r", "-c", command, uri], capture_output=True, text=True)
            assert done.returncode == 0 and "Pattern verification failed" not in done.stdout, done.stdout
        with open(gpt_image, "rb") as fh:  # the bytes around a partial write come from the point
            fh.seek(150 * MIB + 1000)
            tail = fh.read(3096)
        client = NbdClient(server.sock)
        client.go("system")
        assert client.command(CMD_READ, 150 * MIB + 1000, 3096) == (0, tail)
        client.close()
        server.stop()
        assert sha256_file(gpt_image) == original  # nothing wrote to the source
        assert run_strongroom("--vault", vault_url, "vault", "verify", "--read-data").returncode == 0
        vault.restore("sys", None, str(tmp_path / "out"))
        assert sha256_file(tmp_path / "out" / "disks" / "system.img") == original

    def test_several_disks_get_an_overlay_each_in_a_folder(self, vault, export, two_disks, workdir):
        """With several disks, --overlay names a folder holding DISK.overlay for each; writes stay per disk."""
        system, data = two_disks
        vault.protect("vm", "web", {"disks": [str(system), str(data)]})
        vault.backup("web")
        folder = os.path.join(workdir, "overlays")
        server = export("web", "--overlay", folder)
        for disk, pattern in (("system", 0x11), ("data", 0x22)):
            done = subprocess.run(["qemu-io", "-f", "raw", "-c", f"write -P {pattern:#x} 4M 64k", server.uri(disk)],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        for disk, pattern in (("system", 0x11), ("data", 0x22)):
            done = subprocess.run(["qemu-io", "-f", "raw", "-r", "-c", f"read -P {pattern:#x} 4M 64k", server.uri(disk)],
                                  capture_output=True, text=True)
            assert "Pattern verification failed" not in done.stdout, done.stdout
        assert sorted(os.listdir(folder)) == ["data.overlay", "system.overlay"]

    def test_an_overlay_of_another_disk_is_refused(self, vault, vault_url, export, two_disks, workdir):
        """An overlay made for one disk is refused for another (exit 123), before anything is served."""
        system, data = two_disks
        vault.protect("vm", "web", {"disks": [str(system), str(data)]})
        vault.backup("web")
        overlay = os.path.join(workdir, "one.overlay")
        export("web", "--disk", "system", "--overlay", overlay).stop()
        done = run_strongroom("--vault", vault_url, "vm", "export", "web", "--disk", "data", "--overlay", overlay,
                              "--nbd", f"unix:{workdir}/x.sock")
        assert done.returncode == 123 and "belongs to disk 'system'" in done.stderr, done.stderr
        assert not os.path.exists(f"{workdir}/x.sock")


# A boot sector (16-bit code at 0x7c00): read one sector (LBA in the packet at the end)
# with int 13h AH=42h from the boot drive to 0x8000 and write its text, up to a NUL, to
# the serial port 0x3f8; 'E' if the read fails; then halt.
BOOT_CODE = bytes.fromhex("fa31c08ed88ec08ed0bc007cfbbe2e7cb442cd13720ebe0080baf803ac84c07409eeebf8baf803b045"
                          "eefaf4ebfc")
MARKER = b"STRONGROOM INSTANT RESTORE: BOOTED FROM THE VAULT"


def make_bootable(image, marker_at: int) -> None:
    """Put the boot code in the MBR's code area (the partition table stays) and the marker
    at ``marker_at`` (a free area of the disk, another chunk than sector 0)."""
    lba = marker_at // 512
    write_at(image, 0, BOOT_CODE + struct.pack("<BBHHHQ", 0x10, 0, 1, 0x8000, 0, lba))
    write_at(image, 510, b"\x55\xaa")
    write_at(image, marker_at, MARKER + b"\n\0")


class TestBoot:
    def test_qemu_boots_from_the_export(self, vault, export, gpt_image, qemu_system, workdir):
        """A TCG VM given only the NBD export boots: the BIOS reads the MBR through it, and the
        boot code reads a sector 150 MiB in and prints the marker on the serial console."""
        make_bootable(gpt_image, 150 * MIB)
        run("sfdisk", "-J", gpt_image)  # still a valid partition table
        original = sha256_file(gpt_image)
        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        vault.backup("sys")
        gpt_image.unlink()  # nothing but the vault holds the disk now
        server = export("sys")
        serial = os.path.join(workdir, "serial.txt")
        drive = f"file={server.uri('system')},format=raw,if=virtio,readonly=on"
        qemu = subprocess.Popen(["qemu-system-x86_64", "-nodefaults", "-display", "none", "-machine", "q35,accel=tcg",
                                 "-m", "64", "-drive", drive, "-serial", f"file:{serial}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: os.path.exists(serial) and MARKER in open(serial, "rb").read()
                       or qemu.poll() is not None, "the VM prints its marker", limit=120, step=0.05)
            assert MARKER in open(serial, "rb").read(), qemu.communicate()[0]
            # while the VM runs from the export, restore copies the disk back
            vault.restore("sys", None, os.path.join(workdir, "restored"))
            assert sha256_file(os.path.join(workdir, "restored", "disks", "system.img")) == original
        finally:
            qemu.kill()
            qemu.wait()

    def test_linux_runs_init_from_the_export(self, vault, export, qemu_system, workdir):
        """A Linux guest whose only disk is the export mounts its root file system through NBD
        and runs /sbin/init.sh from it, which prints the marker and a file of the disk.

        Needs a kernel and a static busybox (linuxkit.py says where they are looked for); the
        tests' set-up provides both (busybox-static in scripts/apt/vm.txt, the kernel unpacked
        by scripts/test-kernel.sh); skipped without them."""
        import linuxkit

        found, busybox = linuxkit.find_kernel(), linuxkit.find_busybox()
        if isinstance(found, str) or busybox is None:
            pytest.skip(found if isinstance(found, str) else "no static busybox (apt-get install busybox-static)")
        kernel, modules = found
        disk, initrd = os.path.join(workdir, "root.img"), os.path.join(workdir, "initrd.gz")
        linuxkit.root_disk(disk, busybox, workdir)
        linuxkit.initramfs(initrd, modules, busybox)
        vault.protect("vm", "linux", {"disks": [f"vda={disk}"]})
        vault.backup("linux")
        os.unlink(disk)  # nothing but the vault holds the disk now
        server = export("linux")
        serial = os.path.join(workdir, "serial.txt")
        qemu = subprocess.run(
            ["qemu-system-x86_64", "-nodefaults", "-display", "none", "-machine", "q35,accel=tcg", "-m", "256",
             "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 quiet panic=-1", "-no-reboot",
             "-drive", f"file={server.uri('vda')},format=raw,if=virtio,readonly=on", "-serial", f"file:{serial}"],
            capture_output=True, text=True, timeout=300)
        console = open(serial, errors="replace").read()
        assert linuxkit.MARKER in console and "read from the backup" in console, console[-2000:] + qemu.stderr



class TestAddresses:
    def test_addresses_parse_and_loopback_is_told_apart(self):
        """unix:PATH, HOST:PORT and [v6]:PORT parse; loopback names and addresses pass, others do not."""
        from strongroom_vm.errors import ExportAddressUnusable
        from strongroom_vm.export import is_loopback, parse_address

        assert parse_address("unix:rel.sock").unix == os.path.abspath("rel.sock")
        v6 = parse_address("[::1]:10809")
        assert (v6.host, v6.port, v6.family) == ("::1", 10809, socket.AF_INET6)
        assert all(is_loopback(parse_address(text)) for text in ("127.0.0.1:1", "[::1]:1", "localhost:1", "unix:/x"))
        assert not any(is_loopback(parse_address(text)) for text in ("192.0.2.1:1", "[2001:db8::1]:1", "0.0.0.0:1"))
        for bad in ("unix:", "10809", "host:0", "host:99999", ":10809", "unix:/" + "x" * 120):
            with pytest.raises(ExportAddressUnusable):
                parse_address(bad)


class TestRefusals:
    def test_an_item_of_another_workload_is_refused(self, vault, vault_url, tmp_path, workdir):
        """A files item is refused with exit 120, naming its workload."""
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "a.txt").write_text("a")
        vault.protect("files", "docs", {"paths": [str(tmp_path / "docs")]})
        vault.backup("docs")
        done = run_strongroom("--vault", vault_url, "vm", "export", "docs", "--nbd", f"unix:{workdir}/x.sock")
        assert done.returncode == 120 and "files item" in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1

    def test_a_non_loopback_address_is_refused(self, vault_url):
        """A TCP address that is not loopback needs --allow-remote (exit 121)."""
        done = run_strongroom("--vault", vault_url, "vm", "export", "web", "--nbd", "192.0.2.1:10809")
        assert done.returncode == 121 and "--allow-remote" in done.stderr, done.stderr

    def test_a_soft_deleted_point_is_refused_as_restore_refuses_it(self, vault, vault_url, gpt_image, workdir,
                                                                    tmp_path):
        """A deleted point is not served: the same exit code and message as restore gives."""
        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        vault.backup("sys")
        point = vault.backup("sys")
        vault.delete_point("sys", point.point_id)
        ref = f"sys@{point.short_id}"
        restore = run_strongroom("--vault", vault_url, "restore", ref, "--target", str(tmp_path / "out"))
        done = run_strongroom("--vault", vault_url, "vm", "export", ref, "--nbd", f"unix:{workdir}/x.sock")
        assert restore.returncode != 0
        assert done.returncode == restore.returncode and done.stderr == restore.stderr
        assert not os.path.exists(f"{workdir}/x.sock")

    def test_unknown_disk_and_busy_socket_are_refused(self, vault, vault_url, export, gpt_image, workdir):
        """An unknown --disk is exit 94; a socket another export listens on is exit 122 and stays its."""
        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        vault.backup("sys")
        done = run_strongroom("--vault", vault_url, "vm", "export", "sys", "--disk", "vdz", "--nbd",
                              f"unix:{workdir}/x.sock")
        assert done.returncode == 94 and "vdz" in done.stderr
        server = export("sys")
        done = run_strongroom("--vault", vault_url, "vm", "export", "sys", "--nbd", f"unix:{server.sock}")
        assert done.returncode == 122 and "another server listens" in done.stderr, done.stderr
        assert compare(gpt_image, "raw", server.uri("system")).returncode == 0

    def test_once_ends_when_the_client_disconnects(self, vault, export, gpt_image):
        """--once serves one client and exits 0 when it is done; a stale socket file is replaced."""
        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        vault.backup("sys")
        server = export("sys", "--once")
        assert compare(gpt_image, "raw", server.uri("system")).returncode == 0
        assert server.proc.wait(30) == 0
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(server.sock)
        stale.close()  # a socket file nobody listens on
        again = export("sys", "--once", name="nbd.sock")
        assert compare(gpt_image, "raw", again.uri("system")).returncode == 0
        assert again.proc.wait(30) == 0
