"""``strongroom mount``: recovery points as read-only folders.

The file-system model (:class:`strongroom.mount.tree.PointsFS`) is tested directly, then
through a real FUSE mount in a child process (skipped, with the reason, where
``/dev/fuse`` or mfusepy is missing; under CI a FUSE that is installed must mount).
"""

from __future__ import annotations

import errno
import filecmp
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from fusekit import cannot_mount, require_fuse
from strongroom.mount.tree import LATEST, PointsFS
from strongroom.vault import Vault
from vaultkit import assert_one_line_error


@pytest.fixture
def source(tmp_path):
    """src/ with a 3 MiB file, a small one, a symlink, a hard link, an xattr and a sub folder."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (src / "a.txt").write_bytes(b"alpha\n")
    (src / "sub" / "b.txt").write_bytes(b"beta\n")
    os.chmod(src / "a.txt", 0o640)
    os.symlink("a.txt", src / "link")
    os.link(src / "a.txt", src / "sub" / "same.txt")
    try:
        os.setxattr(src / "a.txt", "user.colour", b"blue")
    except OSError:
        pass
    return src


@pytest.fixture
def backed_up(vault_url, source):
    """A vault with item 'docs' protecting src/, two points (a.txt changed in between)."""
    vault = Vault.create(vault_url, name="test")
    vault.protect("files", "docs", {"paths": [str(source)]})
    first = vault.backup("docs")
    time.sleep(1.1)  # two points, two folder names (they are named by the second)
    (source / "a.txt").write_bytes(b"alpha two\n")
    second = vault.backup("docs")
    return vault, first, second


def inner(source) -> str:
    return str(source).lstrip("/")


class TestPointsFS:
    def test_layout_items_points_latest(self, backed_up):
        """The root lists items; an item lists one folder per point, oldest first, and latest."""
        vault, first, second = backed_up
        fs = PointsFS(vault)
        assert fs.readdir("/") == [".", "..", "docs"]
        names = fs.readdir("/docs")[2:]
        assert len(names) == 3 and names[-1] == LATEST and names[0] < names[1]
        assert fs.readlink(f"/docs/{LATEST}") == names[1]
        assert stat.S_ISDIR(fs.getattr(f"/docs/{names[0]}")["st_mode"])

    def test_a_point_by_its_id(self, backed_up):
        """A point id prefix is a link to its folder, and a path through it reads the point."""
        vault, first, second = backed_up
        fs = PointsFS(vault)
        folder = fs.readdir("/docs")[2]
        assert fs.readlink(f"/docs/{first.point_id[:8]}") == folder
        assert stat.S_ISLNK(fs.getattr(f"/docs/{first.point_id[:8]}")["st_mode"])
        assert folder not in fs.readdir("/docs")[3:]  # ids are not listed
        with pytest.raises(OSError) as caught:
            fs.getattr("/docs/zz")
        assert caught.value.errno == errno.ENOENT

    def test_entries_keep_their_metadata(self, backed_up, source):
        """Mode, owner, size and modification time are the point's; a symlink reads its text."""
        vault, _, _ = backed_up
        fs = PointsFS(vault, "docs")
        st = fs.getattr(f"/latest/{inner(source)}/a.txt")
        real = os.lstat(source / "a.txt")
        assert stat.S_IMODE(st["st_mode"]) == 0o640 and stat.S_ISREG(st["st_mode"])
        assert (st["st_uid"], st["st_gid"], st["st_size"], st["st_mtime"]) == (
            real.st_uid, real.st_gid, real.st_size, real.st_mtime_ns)
        assert fs.readlink(f"/latest/{inner(source)}/link") == "a.txt"
        assert stat.S_ISLNK(fs.getattr(f"/latest/{inner(source)}/link")["st_mode"])

    def test_reads_at_any_offset(self, backed_up, source):
        """read(size, offset) returns those bytes of the file, across chunk boundaries."""
        vault, _, _ = backed_up
        fs = PointsFS(vault, "docs")
        path = f"/latest/{inner(source)}/big.bin"
        data = (source / "big.bin").read_bytes()
        fh = fs.open(path, os.O_RDONLY)
        for offset, size in ((0, 4096), (2_000_000, 131072), (len(data) - 10, 4096), (len(data) + 5, 10)):
            assert fs.read(path, size, offset, fh) == data[offset:offset + size]
        fs.release(path, fh)

    def test_each_point_has_its_own_content(self, backed_up, source):
        """The older point's folder holds the older content; a hard link reads its file."""
        vault, first, _ = backed_up
        fs = PointsFS(vault, "docs")
        old = fs.readdir("/")[2]
        for name, want in ((f"/{old}/{inner(source)}/a.txt", b"alpha\n"),
                           (f"/{old}/{inner(source)}/sub/same.txt", b"alpha\n"),
                           (f"/latest/{inner(source)}/a.txt", b"alpha two\n")):
            fh = fs.open(name, os.O_RDONLY)
            assert fs.read(name, 100, 0, fh) == want
            fs.release(name, fh)

    def test_one_point_at_the_top(self, backed_up, source):
        """Mounting ITEM@POINT puts that point's paths right at the top."""
        vault, first, _ = backed_up
        fs = PointsFS(vault, "docs", first.point_id[:8])
        top = inner(source).split("/")[0]
        assert fs.readdir("/") == [".", "..", top]
        assert fs.getattr(f"/{inner(source)}/sub/b.txt")["st_size"] == 5

    def test_read_only(self, backed_up, source):
        """Opening for writing is EROFS; a missing path ENOENT; a file is not a folder."""
        vault, _, _ = backed_up
        fs = PointsFS(vault, "docs")
        path = f"/latest/{inner(source)}/a.txt"
        for flags, code in ((os.O_WRONLY, errno.EROFS), (os.O_RDWR, errno.EROFS)):
            with pytest.raises(OSError) as caught:
                fs.open(path, flags)
            assert caught.value.errno == code
        with pytest.raises(OSError) as caught:
            fs.getattr(f"/latest/{inner(source)}/nope")
        assert caught.value.errno == errno.ENOENT
        with pytest.raises(OSError) as caught:
            fs.readdir(path)
        assert caught.value.errno == errno.ENOTDIR

    def test_new_points_show_after_the_refresh_time(self, backed_up):
        """A point made while mounted is listed once the lists are older than ``refresh``
        (an injected clock: no waiting)."""
        vault, _, _ = backed_up
        now = [0.0]
        fs = PointsFS(vault, refresh=30, clock=lambda: now[0])
        before = fs.readdir("/docs")
        time.sleep(1.1)
        vault.backup("docs")
        now[0] = 29
        assert fs.readdir("/docs") == before
        now[0] = 31
        assert len(fs.readdir("/docs")) == len(before) + 1

    def test_xattrs(self, backed_up, source):
        """Extended attributes the point recorded are listed and read."""
        if not os.listxattr(source / "a.txt"):
            pytest.skip("this file system keeps no user xattrs")
        vault, first, _ = backed_up
        fs = PointsFS(vault, "docs", first.point_id)
        path = f"/{inner(source)}/a.txt"
        assert fs.listxattr(path) == ["user.colour"] and fs.getxattr(path, "user.colour") == b"blue"


def _strongroom(*args, **kwargs) -> subprocess.Popen:
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    return subprocess.Popen([exe, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


@pytest.fixture
def mounted(backed_up, tmp_path, vault_url):
    """``strongroom mount DIR`` running in a child process; yields (DIR, process)."""
    require_fuse()
    where = tmp_path / "mnt"
    where.mkdir()
    proc = _strongroom("--vault", vault_url, "mount", where)
    deadline = time.monotonic() + 30
    while not os.path.ismount(where):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            cannot_mount(proc.communicate()[1])
        time.sleep(0.05)
    try:
        yield where, proc
    finally:
        if proc.poll() is None:
            subprocess.run(["fusermount3", "-u", str(where)], capture_output=True)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


class TestFuseMount:
    def test_browse_points_and_cmp_a_file(self, mounted, source):
        """Points are folders; files compare equal (cmp) to the source; unmounting ends the
        command with 0."""
        where, proc = mounted
        assert os.listdir(where) == ["docs"]
        latest = where / "docs" / "latest" / inner(source)
        assert sorted(os.listdir(latest)) == ["a.txt", "big.bin", "link", "sub"]
        assert subprocess.run(["cmp", source / "big.bin", latest / "big.bin"]).returncode == 0
        assert filecmp.cmp(source / "sub" / "b.txt", latest / "sub" / "b.txt", shallow=False)
        assert os.readlink(latest / "link") == "a.txt"
        assert stat.S_IMODE(os.stat(latest / "a.txt").st_mode) == 0o640
        with open(latest / "big.bin", "rb") as handle:  # seeking, as a program would
            handle.seek(3 * 1024 * 1024)
            assert handle.read(17) == (source / "big.bin").read_bytes()[-17:]
        with pytest.raises(OSError) as caught:
            open(latest / "new.txt", "wb")
        assert caught.value.errno in (errno.EROFS, errno.EACCES)
        assert subprocess.run(["fusermount3", "-u", str(where)]).returncode == 0
        assert proc.wait(timeout=30) == 0 and not os.path.ismount(where)
        assert "mounted read-only" in proc.stderr.read()

    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
    def test_a_signal_unmounts(self, mounted, sig):
        """Ctrl-C (SIGINT) or SIGTERM unmounts and ends the command with 0."""
        where, proc = mounted
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        assert not os.path.ismount(where)


class TestRefusals:
    def test_without_dev_fuse(self, backed_up, cli, tmp_path, monkeypatch):
        """Where /dev/fuse is missing: one line, exit 7, saying so."""
        import strongroom.mount.fuse as fuse

        monkeypatch.setattr(fuse, "FUSE_DEVICE", str(tmp_path / "no-fuse"))
        (tmp_path / "mnt").mkdir()
        assert_one_line_error(cli("mount", tmp_path / "mnt", expect=None), 7, "no-fuse is missing")

    def test_unknown_item(self, backed_up, cli, tmp_path):
        """An unknown item is refused before anything is mounted (exit 41)."""
        (tmp_path / "mnt").mkdir()
        assert_one_line_error(cli("mount", tmp_path / "mnt", "nope", expect=None), 41, "nope")
