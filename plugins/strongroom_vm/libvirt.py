"""VMs by their libvirt domain name (``protect vm ITEM --libvirt DOMAIN [--connect URI]``).

Everything goes through ``virsh -c URI`` (package libvirt-clients); no libvirt binding is
needed.  Each backup asks libvirt for the domain's state, its persistent XML (saved in
the point as ``config/domain.xml``) and its disks (:func:`strongroom_vm.domainxml.domain_disks`:
file-backed raw and qcow2 disks only, anything else is refused).

**A shut-off domain**: its image files are read at rest, as ``--disk``
does (:mod:`strongroom_vm.offline`: unchanged images are not read again, a disk that
changes while it is read makes the point ``inconsistent``).

**A running domain** (or paused, suspended, preserved after a crash: any state in which
its QEMU runs), through libvirt's backup and checkpoint APIs:

1. a backup job this item left (strongroom killed during a backup: its NBD socket is in
   a folder ``strongroom-sr<item>-*``) is aborted and its scratch folder removed, with a
   warning; a backup job of anyone else is refused (:class:`BackupJobBusy`);
2. the checkpoints of the item are ``sr-<item id>-<token>`` (tokens sort by time, see
   :mod:`strongroom_vm.bitmaps`); the parent point names its checkpoint.  When it still
   exists, the checkpoints older than it are deleted and each qcow2 disk the parent had
   (same path and size) is read incrementally from it: libvirt exposes the union of the
   dirty bitmaps since that checkpoint (so a backup that failed in between loses no
   change) as the NBD meta context ``qemu:dirty-bitmap:backup-<disk>``.  Otherwise
   every checkpoint of the item is deleted and the disks are read whole (with a warning
   when the parent had a checkpoint);
3. ``virsh backup-begin`` in pull mode, with a new checkpoint (a persistent bitmap on
   each qcow2 disk; raw disks have none and are read whole every time): libvirt serves
   a point-in-time view of every disk over NBD on a unix socket in a private folder under
   ``--scratch`` (default the system's temporary folder), where it also keeps the
   scratch images that hold data the guest overwrites during the backup;
4. each disk is read through :class:`~strongroom_vm.nbd.NbdReader` (only its changed
   chunks for an incremental read);
5. when the last reader is closed, or the backup fails or is interrupted (Ctrl-C,
   SIGTERM), the job is aborted (``domjobabort``: libvirt removes the scratch images) and
   the folder removed; also at the exit of the process.  That clean-up runs ``virsh``
   through ``posix_spawn``: a fork could hang on a lock the interrupted main thread left
   taken.  A killed strongroom (SIGKILL) leaves them to step 1.

The checkpoint of a point whose backup failed is kept: the next backup reads from the
parent's checkpoint, which covers it.  libvirt keeps checkpoint metadata across restarts
of the domain (the bitmaps live in the qcow2 images).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import time
from typing import Any, Iterator

from strongroom import BackupContext, DiskSource, run_child

from . import offline
from .atrest import ReadWatch
from .bitmaps import checkpoint_name, chunks_of, new_token
from .domainxml import DomainDisk, backup_xml, checkpoint_xml, domain_disks, domain_identity, parse
from .errors import BackupJobBusy, DomainNotFound, LibvirtError, ToolMissing, VmError
from .jobreaders import JobReaders
from .layout import CHUNK_SIZE, DISKS_DIR, config_entries, dir_source, disk_entry, manifest_source
from .nbd import NbdClient, NbdError

__all__ = ["DEFAULT_URI", "LibvirtBackup", "Virsh", "backup_entries", "inspect", "remote_host", "restore_defined"]

DEFAULT_URI = "qemu:///system"
SHUT_OFF = ("shut off",)  # a "crashed" domain libvirt preserved still has its QEMU
DOMAIN_XML = "domain.xml"
BUSY_RETRIES = 10
_TOKEN = r"\d{13}[0-9a-f]{4}"


class Virsh:
    """``virsh -c URI`` commands; a failure is one line (:class:`LibvirtError`), an unknown
    domain :class:`DomainNotFound`."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        found = shutil.which("virsh")
        if found is None:
            raise ToolMissing(tool="virsh", purpose="back up and define libvirt domains", package="libvirt-clients")
        self.exe = found

    def run(self, *args: str, domain: str | None = None, check: bool = True) -> str:
        for attempt in range(BUSY_RETRIES + 1):
            done = run_child([self.exe, "-q", "-c", self.uri, *args], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL)
            if not done.returncode or "cannot acquire state change lock" not in done.stderr or attempt == BUSY_RETRIES:
                break
            time.sleep(0.5)  # libvirt is still busy with the domain (the end of a job just aborted)
        if done.returncode and check:
            lines = [line.removeprefix("error: ").strip() for line in done.stderr.splitlines() if line.strip()]
            text = " ".join(lines)
            if domain and ("failed to get domain" in text or "Domain not found" in text):
                raise DomainNotFound(domain=domain, uri=self.uri)
            raise LibvirtError(uri=self.uri, reason=(lines[-1] if lines else f"virsh {args[0]} failed").rstrip("."))
        return done.stdout

    def spawn(self, *args: str) -> str:
        """Run virsh for the clean-up of a backup job, whatever state the process is in: no
        fork (``posix_spawn`` runs no at-fork hook, so a lock another thread left taken when
        a signal interrupted it cannot block it); its output, '' if it failed."""
        read, write = os.pipe()
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, write, 1),
                   (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0), (os.POSIX_SPAWN_CLOSE, read)]
        try:
            pid = os.posix_spawn(self.exe, [self.exe, "-q", "-c", self.uri, *args], os.environ, file_actions=actions)
        except OSError:
            os.close(read)
            return ""
        finally:
            os.close(write)
        chunks = []
        with os.fdopen(read, "rb") as fh:
            while data := fh.read(65536):
                chunks.append(data)
        _, status = os.waitpid(pid, 0)
        return b"".join(chunks).decode("utf-8", "replace") if os.waitstatus_to_exitcode(status) == 0 else ""

    def state(self, domain: str) -> str:
        return self.run("domstate", domain, domain=domain).strip()

    def xml(self, domain: str, *, inactive: bool = False) -> str:
        return self.run("dumpxml", *(["--inactive"] if inactive else []), domain, domain=domain)

    def exists(self, domain: str) -> bool:
        try:
            self.run("domuuid", domain, domain=domain)
        except DomainNotFound:
            return False
        return True


def remote_host(uri: str) -> str:
    """The host a libvirt URI names ('' for this machine: ``qemu:///system``)."""
    from urllib.parse import urlsplit

    host = urlsplit(uri).hostname or ""
    return "" if host in ("", "localhost", "127.0.0.1", "::1") else host


def inspect(uri: str, domain: str) -> tuple[str, str, list[DomainDisk]]:
    """The domain's state, persistent XML and disks (refusing disks the mode cannot read)."""
    virsh = Virsh(uri)
    state = virsh.state(domain)
    xml = virsh.xml(domain, inactive=True)
    root = parse(xml)
    disks = domain_disks(root, domain)
    if state not in SHUT_OFF:
        disks = domain_disks(parse(virsh.xml(domain)), domain)  # the running configuration's
    if not disks:
        raise VmError(message=f"libvirt domain {domain} has no disk to back up")
    return state, xml, disks


def backup_entries(ctx: BackupContext, parent: dict) -> Iterator[Any]:
    """The entries of one backup of a ``--libvirt`` item (see the module documentation)."""
    source = ctx.item.source
    state, xml, disks = inspect(source["connect"], source["domain"])
    name, uuid = domain_identity(parse(xml))
    about = {"mode": "libvirt", "domain": name, "uuid": uuid, "connect": source["connect"], "state": state}
    extra = {DOMAIN_XML: xml.encode()}
    if state in SHUT_OFF:
        yield from _at_rest(ctx, disks, parent, about, extra)
        return
    live = LibvirtBackup(source, ctx.item.item_id, parent, ctx.warnings)
    entries = live.entries(disks, about, extra, ctx.progress)
    try:
        yield from entries
    finally:
        entries.close()


def _at_rest(ctx: BackupContext, disks: list[DomainDisk], parent: dict, about: dict,
             extra: dict[str, bytes]) -> Iterator[Any]:
    def torn(disk: str, found: list[str]) -> None:
        ctx.consistency = "inconsistent"
        ctx.warn(f"disk {disk} of domain {about['domain']} changed while it was read ({', '.join(found)}): "
                 "the point is inconsistent (was the domain started during the backup?)")

    watch = ReadWatch(torn)
    previous = {}
    if parent.get("mode") == "libvirt" and parent.get("state") in SHUT_OFF:
        previous = {d.get("name"): d for d in parent.get("disks", [])}
    docs = [{"name": d.name, "path": d.path, "format": d.format, "kind": "file"} for d in disks]
    sources, records, _ = offline.disk_sources(docs, watch=watch, parent=previous)  # unchanged images: not read
    ctx.progress(total=sum(record["size"] for record in records))
    yield from config_entries(None, extra)
    yield from sources
    watch.wait()
    for record in records:
        if record["name"] in watch.changed:
            record["changed_during_read"] = watch.changed[record["name"]]
    yield manifest_source({**about, "consistency": ctx.consistency or "crash", "disks": records})


class LibvirtBackup:
    """One pull-mode backup of a running domain (see the module documentation)."""

    def __init__(self, source: dict, item_id: str, parent: dict, warnings: list[str]) -> None:
        self.source = source
        self.domain = source["domain"]
        self.item_id = item_id
        self.parent = parent if parent.get("mode") == "libvirt" and parent.get("state") not in SHUT_OFF else {}
        self.warnings = warnings
        self.virsh = Virsh(source["connect"])
        self.prefix = f"strongroom-sr{item_id[:8]}-"
        self.scratch = source.get("scratch") or tempfile.gettempdir()
        self.readers = JobReaders(self._teardown, "the backup job has ended")
        self._workdir: str | None = None
        self._socket = ""
        self._job = False

    # --- the entries -----------------------------------------------------------------

    def entries(self, disks: list[DomainDisk], about: dict, extra: dict[str, bytes],
                progress=lambda **numbers: None) -> Iterator[Any]:
        sizes, changed, checkpoint, since = self._start(disks)
        progress(total=sum(sizes.values()))
        self.readers.hold()  # this generator; each disk yielded adds one until its reader closes
        try:
            yield from config_entries(None, extra)
            yield dir_source(DISKS_DIR)
            records = [{
                "name": d.name, "size": sizes[d.name], "format": d.format, "source": d.path,
                "checkpoint": checkpoint if d.format == "qcow2" else None, "incremental_from": since.get(d.name),
                "changed_chunks": None if changed[d.name] is None else len(changed[d.name]),
            } for d in disks]
            for disk in disks:
                # a disk without a changed chunk is not opened (unless the parent's chunks are
                # gone): it holds the job only from the moment it is opened
                pended = changed[disk.name] is None or len(changed[disk.name]) > 0
                if pended:
                    self.readers.hold()
                yield DiskSource(f"{DISKS_DIR}/{disk.name}", disk_entry(disk.name, sizes[disk.name]),
                                 lambda disk=disk, pended=pended: self.readers.open(
                                     self._socket, disk.name, sizes[disk.name],
                                     f"cannot read disk {disk.name} of domain {self.domain}", pended),
                                 changed[disk.name])
            yield manifest_source({**about, "consistency": "crash", "checkpoint": checkpoint, "disks": records})
        finally:
            self.readers.release()

    # --- the backup job ----------------------------------------------------------------

    def _start(self, disks: list[DomainDisk]):
        atexit.register(self._teardown)
        try:
            self._cleanup_leftovers()
            since = self._plan(disks)
            token = new_token()
            checkpoint = checkpoint_name(self.item_id, token) if any(d.format == "qcow2" for d in disks) else None
            self._workdir = tempfile.mkdtemp(prefix=self.prefix, dir=self.scratch)
            # QEMU (which may run as another user) creates the NBD socket here; others cannot list it
            os.chmod(self._workdir, 0o1733)
            self._socket = os.path.join(self._workdir, "nbd.sock")
            plan = [(d.name, os.path.join(self._workdir, f"scratch-{d.name}.qcow2"), since.get(d.name)) for d in disks]
            backup = os.path.join(self._workdir, "backup.xml")
            with open(backup, "w") as fh:
                fh.write(backup_xml(self._socket, plan))
            args = ["backup-begin", self.domain, backup]
            if checkpoint:
                ckpt = os.path.join(self._workdir, "checkpoint.xml")
                with open(ckpt, "w") as fh:
                    fh.write(checkpoint_xml(checkpoint, [(d.name, d.format == "qcow2") for d in disks]))
                args.append(ckpt)
            self._job = True  # from here on the job may exist (even if virsh is interrupted)
            self.virsh.run(*args, domain=self.domain)
            bitmaps = self._export_bitmaps()
            sizes: dict[str, int] = {}
            changed: dict[str, frozenset[int] | None] = {}
            before = {d.get("name"): d.get("size") for d in self.parent.get("disks", [])}
            for disk in disks:
                context = f"qemu:dirty-bitmap:{bitmaps.get(disk.name) or 'backup-' + disk.name}"
                incremental = since.get(disk.name) is not None
                try:
                    with NbdClient(self._socket, disk.name, contexts=(context,) if incremental else ()) as client:
                        sizes[disk.name] = client.size
                        if incremental and before.get(disk.name) != client.size:
                            self.warnings.append(f"disk {disk.name} changed size from {before.get(disk.name)} to "
                                                 f"{client.size} bytes; reading it whole")
                            incremental = False
                            since.pop(disk.name)
                        changed[disk.name] = chunks_of(client.block_status(context), CHUNK_SIZE) if incremental else None
                except NbdError as exc:
                    raise VmError(message=f"cannot read disk {disk.name} of domain {self.domain}: {exc}") from None
            return sizes, changed, checkpoint, since
        except BaseException:
            self._teardown()
            raise

    def _export_bitmaps(self) -> dict[str, str]:
        """The NBD dirty-bitmap name of each incremental disk, as libvirt reports it."""
        try:
            root = parse(self.virsh.run("backup-dumpxml", self.domain, domain=self.domain), "the backup job XML")
        except LibvirtError:
            return {}
        return {d.get("name"): d.get("exportbitmap") for d in root.findall("./disks/disk") if d.get("exportbitmap")}

    def _checkpoints(self) -> list[str]:
        names = self.virsh.run("checkpoint-list", self.domain, "--name", domain=self.domain).split()
        mine = re.compile(rf"sr-{re.escape(self.item_id)}-{_TOKEN}")
        return sorted(name for name in names if mine.fullmatch(name))

    def _plan(self, disks: list[DomainDisk]) -> dict[str, str | None]:
        """Delete the checkpoints that are of no more use; the checkpoint each disk is read since."""
        ours = self._checkpoints()
        mark = self.parent.get("checkpoint") or ""
        keep = mark in ours
        if mark and not keep:
            self.warnings.append(f"the checkpoint {mark} of the last point is missing from domain {self.domain} "
                                 "(it was deleted, or the domain re-defined); reading every disk whole")
        for name in ours:  # oldest first: libvirt merges a deleted checkpoint into its parent
            if not keep or name < mark:
                self.virsh.run("checkpoint-delete", self.domain, name, domain=self.domain)
        if not keep:
            return {}
        before = {d.get("name"): d for d in self.parent.get("disks", [])}
        since: dict[str, str | None] = {}
        for disk in disks:
            old = before.get(disk.name)
            if disk.format == "qcow2" and old and old.get("checkpoint") == mark and old.get("source") == disk.path:
                since[disk.name] = mark
        return since

    def _job_sockets(self) -> list[str]:
        """The NBD socket of the domain's running backup job ([] when none runs)."""
        job = self.virsh.spawn("backup-dumpxml", self.domain)
        return re.findall(r"socket=['\"]([^'\"]*)['\"]", job)

    def _cleanup_leftovers(self) -> None:
        info = self.virsh.run("domjobinfo", self.domain, domain=self.domain, check=False)
        if re.search(r"^Operation:\s+Backup", info, re.M):
            sockets = self._job_sockets()
            folder = os.path.basename(os.path.dirname(sockets[0])) if sockets else ""
            if not folder.startswith(self.prefix):
                raise BackupJobBusy(domain=self.domain)
            self.virsh.run("domjobabort", self.domain, domain=self.domain, check=False)
            self.warnings.append(f"aborted the backup job an interrupted backup of this item left on domain {self.domain}")
        try:
            names = os.listdir(self.scratch)
        except OSError:
            names = []
        left = [name for name in names if name.startswith(self.prefix)]
        for name in left:
            shutil.rmtree(os.path.join(self.scratch, name), ignore_errors=True)
        if left:
            self.warnings.append(f"removed the scratch folder an interrupted backup of this item left: "
                                 f"{', '.join(os.path.join(self.scratch, n) for n in left)}")

    def _teardown(self) -> None:
        if not self.readers.finish():
            return
        atexit.unregister(self._teardown)
        try:
            if self._job and self._socket in self._job_sockets():
                self.virsh.spawn("domjobabort", self.domain)
        finally:
            if self._workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)


# --- restore --define ------------------------------------------------------------------------


def restore_defined(ctx, target: str, name: str, fmt: str, start: bool):
    """``restore ITEM[@POINT] --target DIR --define NAME [--start]``: every disk of the point
    restored into ``DIR/disks/``, then a new libvirt domain ``NAME`` defined from the
    point's ``config/domain.xml`` (:func:`strongroom_vm.domainxml.defined_xml`), its XML
    kept as ``DIR/NAME.xml``; an existing domain ``NAME`` is refused before anything is
    written.  Started only with ``start``."""
    import attrs

    from .domainxml import defined_xml
    from .errors import DomainExists
    from .layout import CONFIG_DIR, read_manifest
    from .restore import restore_disks

    manifest = read_manifest(ctx)
    saved = f"{CONFIG_DIR}/{DOMAIN_XML}"
    if manifest.get("mode") != "libvirt" or not ctx.exists(saved):
        raise VmError(message=f"point {ctx.point.short_id} is not of a libvirt domain (protect vm --libvirt): "
                      "it has no domain XML to define")
    virsh = Virsh(manifest.get("connect") or DEFAULT_URI)
    if virsh.exists(name):
        raise DomainExists(name=name, uri=virsh.uri)
    result = restore_disks(ctx, target, [], fmt)
    if result.errors:
        return result
    ext = ".img" if fmt == "raw" else ".qcow2"
    paths = {d["name"]: (os.path.join(os.path.abspath(target), DISKS_DIR, d["name"] + ext), fmt)
             for d in manifest.get("disks", [])}
    xml, uuid, dropped = defined_xml(ctx.read_bytes(saved).decode(), name, paths)
    path = os.path.join(target, f"{name}.xml")
    with open(path, "w") as fh:
        fh.write(xml)
    virsh.run("define", path)
    started = ""
    if start:
        virsh.run("start", name, domain=name)
        started = " and started it"
    summary = (f"Restored {len(paths)} disk{'s' if len(paths) != 1 else ''} into {os.path.join(target, DISKS_DIR)}; defined libvirt domain {name} "
               f"(UUID {uuid}, XML {path}){started}")
    warnings = tuple(f"disk {dev} of the saved domain XML is not in point {ctx.point.short_id}: domain {name} "
                     "is defined without it" for dev in dropped)
    return attrs.evolve(result, summary=summary, warnings=result.warnings + warnings)
