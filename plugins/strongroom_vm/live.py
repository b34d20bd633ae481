"""Live QEMU VMs: a point-in-time view of every disk while the VM runs ("pull mode").

One backup, over one QMP connection:

1. clean up what a killed backup of the same item may have left in QEMU (exports, jobs,
   fleecing nodes, temporary bitmaps: all named ``sr<item>...``);
2. list the disks (``query-block``: every non-removable device with a medium) and plan
   their bitmaps (:mod:`strongroom_vm.bitmaps`);
3. add one *fleecing* node per disk: a scratch qcow2 whose backing is the disk;
4. the snapshot point, one ``transaction`` over all disks: merge the bitmaps since the
   parent point into a temporary one and disable them, add this point's checkpoint
   bitmap, start ``blockdev-backup sync=none`` from the disk to its fleecing node (QEMU
   copies old data there before the guest overwrites it).  With a guest agent, the
   guest's file systems are frozen just around this transaction
   (:mod:`strongroom_vm.freeze`); if the freeze fails the point is crash-consistent and
   the job says so;
5. export the fleecing nodes read-only on an NBD server on a private unix socket, with
   the temporary bitmap; read the bitmap's extents (``qemu:dirty-bitmap:...``) into the
   changed chunks and give the engine one reader per disk;
6. when the last reader is closed (or the backup fails), tear it all down: exports, NBD
   server, jobs, fleecing nodes, temporary bitmaps and scratch files.  A backup killed
   before that leaves them to step 1 of the next one.

The scratch folder (``--scratch``, default the system's temporary folder) holds the
data the guest overwrites during the backup; QEMU must be able to write there.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from typing import Any, Callable, Iterator

import attrs
from strongroom import DiskSource, run_child

from .bitmaps import chunks_of, checkpoint_name, merge_name, new_token, plan_bitmaps
from .errors import GuestAgentError, QemuError, VmError
from .freeze import Freezer
from .images import _which
from .jobreaders import JobReaders
from .layout import CHUNK_SIZE, DISKS_DIR, config_entries, dir_source, disk_entry, manifest_source, safe_disk_name
from .nbd import NbdClient, NbdError
from .qmp import QmpClient, QmpCommandError, cmdline_of

__all__ = ["LiveBackup", "LiveDisk", "discover"]

WAIT = 30.0


@attrs.frozen
class LiveDisk:
    name: str
    node: str
    size: int
    image: str
    persistent: bool


def discover(qmp: QmpClient) -> list[LiveDisk]:
    """The VM's disks: devices with a medium that are not removable (CD-ROMs, floppies)."""
    disks: list[LiveDisk] = []
    used: set[str] = set()
    for device in qmp.execute("query-block"):
        inserted = device.get("inserted")
        if not inserted or device.get("removable"):
            continue
        qdev = device.get("qdev") or ""
        parts = qdev.split("/")
        if qdev.startswith("/machine/peripheral/") and len(parts) > 3:
            label = parts[3]
        else:
            label = device.get("device") or inserted.get("node-name") or "disk"
        name = base = safe_disk_name(label)
        count = 1
        while name in used:
            count += 1
            name = f"{base}-{count}"
        used.add(name)
        image = inserted.get("image", {})
        disks.append(LiveDisk(
            name=name, node=inserted["node-name"], size=int(image.get("virtual-size", 0)),
            image=inserted.get("file", ""),
            persistent=inserted.get("drv") == "qcow2" and not inserted.get("ro"),
        ))
    return sorted(disks, key=lambda d: d.name.encode())


class LiveBackup:
    """The entries of one backup of a live VM (see the module documentation)."""

    def __init__(self, source: dict, item_id: str, parent: dict, warnings: list[str],
                 progress: Callable[..., None] = lambda **numbers: None) -> None:
        self.source = source
        self.progress = progress  # BackupContext.progress: the disks' size is the backup's total
        self.item_id = item_id
        self.parent_disks = {d["name"]: d for d in parent.get("disks", [])} if parent.get("mode") == "live" else {}
        self.warnings = warnings
        self.consistency = "crash"
        self.prefix = f"sr{item_id[:8]}"
        self.qmp: QmpClient | None = None
        self.readers = JobReaders(self._teardown, "the snapshot was released")
        self._exports: list[str] = []
        self._jobs: list[str] = []
        self._nodes: list[str] = []
        self._merges: list[tuple[str, str]] = []
        self._server = False
        self._workdir: str | None = None
        self._socket = ""
        self._checkpoints: dict[str, str] = {}

    # --- the entries -----------------------------------------------------------------

    def entries(self) -> Iterator[Any]:
        disks, changed, extra = self._start()
        self.progress(total=sum(disk.size for disk in disks))
        self.readers.hold()  # this generator; each disk yielded adds one until its reader closes
        try:
            yield from config_entries(self.source.get("config"), extra)
            yield dir_source(DISKS_DIR)
            records = []
            for disk in disks:
                records.append({
                    "name": disk.name, "size": disk.size, "format": "raw", "source": disk.node,
                    "image": disk.image, "bitmap": self._checkpoints[disk.name],
                    "persistent": disk.persistent,
                    "changed_chunks": None if changed[disk.name] is None else len(changed[disk.name]),
                })
            for disk in disks:
                # a disk with no changed chunk is not opened (unless the parent's chunks are
                # gone): it holds the export only from the moment it is opened
                pended = changed[disk.name] is None or len(changed[disk.name]) > 0
                if pended:
                    self.readers.hold()
                yield DiskSource(f"{DISKS_DIR}/{disk.name}", disk_entry(disk.name, disk.size),
                                 lambda disk=disk, pended=pended: self.readers.open(
                                     self._socket, disk.name, disk.size, f"cannot read disk {disk.name} of the VM",
                                     pended),
                                 changed[disk.name])
            yield manifest_source({"mode": "live", "consistency": self.consistency, "disks": records,
                                   "qemu": self.qmp.version if self.qmp else {}})
        finally:
            self.readers.release()

    # --- the snapshot point ------------------------------------------------------------

    def _start(self) -> tuple[list[LiveDisk], dict[str, frozenset[int] | None], dict[str, bytes]]:
        qmp = self.qmp = QmpClient(self.source["qmp"])
        atexit.register(self._teardown)
        try:
            self._cleanup_leftovers()
            disks = discover(qmp)
            if not disks:
                raise VmError(message=f"the VM at {self.source['qmp']} has no disk to back up")
            extra = {}
            argv = cmdline_of(qmp.pid)
            if argv:
                extra["qemu.cmdline"] = (shlex.join(argv) + "\n").encode()
            unions = self._plan(disks)
            token = new_token()
            self._checkpoints = {d.name: checkpoint_name(self.item_id, token) for d in disks}
            self._add_fleecing_nodes(disks)
            actions = self._actions(disks, unions, token)
            self._snapshot(actions)
            changed = self._export(disks, unions, token)
            return disks, changed, extra
        except BaseException:
            self._teardown()
            raise

    def _plan(self, disks: list[LiveDisk]) -> dict[str, tuple[str, ...] | None]:
        nodes = {n.get("node-name"): n for n in self.qmp.execute("query-named-block-nodes", {"flat": True})}
        unions: dict[str, tuple[str, ...] | None] = {}
        for disk in disks:
            bitmaps = nodes.get(disk.node, {}).get("dirty-bitmaps", [])
            plan = plan_bitmaps(self.item_id, bitmaps, self.parent_disks.get(disk.name), disk.size, disk.image)
            if plan.reason:
                self.warnings.append(f"disk {disk.name}: {plan.reason}; reading the whole disk")
            for name in plan.remove:
                self._quiet("block-dirty-bitmap-remove", {"node": disk.node, "name": name})
            unions[disk.name] = plan.union
        return unions

    def _add_fleecing_nodes(self, disks: list[LiveDisk]) -> None:
        qemu_img = _which("qemu-img", "create the scratch images of a live backup")
        scratch = self.source.get("scratch") or tempfile.gettempdir()
        self._workdir = tempfile.mkdtemp(prefix=f"strongroom-{self.prefix}-", dir=scratch)
        os.chmod(self._workdir, 0o711)
        self._socket = os.path.join(self._workdir, "nbd.sock")
        for i, disk in enumerate(disks):
            path = os.path.join(self._workdir, f"fleece-{i}.qcow2")
            done = run_child([qemu_img, "create", "-q", "-f", "qcow2", path, str(disk.size)],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if done.returncode:
                raise VmError(message=f"cannot create scratch image {path}: {done.stderr.strip()}")
            node = f"{self.prefix}f{i}"
            self.qmp.execute("blockdev-add", {"driver": "qcow2", "node-name": node, "backing": disk.node,
                                              "file": {"driver": "file", "filename": path}})
            self._nodes.append(node)

    def _actions(self, disks: list[LiveDisk], unions: dict, token: str) -> list[dict]:
        actions: list[dict] = []
        for i, disk in enumerate(disks):
            union = unions[disk.name]
            if union is not None:
                merge = merge_name(self.item_id, token)
                actions.append({"type": "block-dirty-bitmap-add",
                                "data": {"node": disk.node, "name": merge, "disabled": True}})
                actions.append({"type": "block-dirty-bitmap-merge",
                                "data": {"node": disk.node, "target": merge, "bitmaps": list(union)}})
                actions += [{"type": "block-dirty-bitmap-disable", "data": {"node": disk.node, "name": name}}
                            for name in union]
            actions.append({"type": "block-dirty-bitmap-add", "data": {
                "node": disk.node, "name": self._checkpoints[disk.name], "persistent": disk.persistent}})
            actions.append({"type": "blockdev-backup", "data": {
                "job-id": f"{self.prefix}j{i}", "device": disk.node, "target": self._nodes[i],
                "sync": "none", "auto-dismiss": False}})
        return actions

    def _snapshot(self, actions: list[dict]) -> None:
        agent = self.source.get("guest_agent")
        if not agent:
            self._transaction(actions)
            return
        try:
            freezer = Freezer(agent).__enter__()
        except GuestAgentError as exc:
            self.warnings.append(f"{exc}; this point is crash-consistent")
            self._transaction(actions)
            return
        try:
            if freezer.thawed_leftover:
                self.warnings.append("the guest's file systems were left frozen by an interrupted backup; thawed them")
            try:
                frozen = freezer.freeze()
            except GuestAgentError as exc:
                self.warnings.append(f"{exc}; this point is crash-consistent")
                frozen = None
            try:
                self._transaction(actions)
            finally:
                if frozen is not None:
                    freezer.thaw()
            if frozen is not None:
                self.consistency = "file-system"
        finally:
            freezer.__exit__(None, None, None)

    def _transaction(self, actions: list[dict]) -> None:
        self.qmp.execute("transaction", {"actions": actions})
        self._jobs = [a["data"]["job-id"] for a in actions if a["type"] == "blockdev-backup"]
        self._merges = [(a["data"]["node"], a["data"]["name"]) for a in actions
                        if a["type"] == "block-dirty-bitmap-add" and a["data"].get("disabled")]

    def _export(self, disks: list[LiveDisk], unions: dict, token: str) -> dict[str, frozenset[int] | None]:
        try:
            self.qmp.execute("nbd-server-start", {"addr": {"type": "unix", "data": {"path": self._socket}}})
        except QmpCommandError as exc:
            if "already" not in exc.desc:
                raise
            raise QemuError(socket=self.source["qmp"], reason="QEMU's NBD server is in use by another tool; "
                            "a live backup needs it") from None
        self._server = True
        changed: dict[str, frozenset[int] | None] = {}
        for i, disk in enumerate(disks):
            export = {"type": "nbd", "id": f"{self.prefix}e{i}", "node-name": self._nodes[i],
                      "name": disk.name, "writable": False}
            if unions[disk.name] is not None:
                export["bitmaps"] = [{"node": disk.node, "name": merge_name(self.item_id, token)}]
            self.qmp.execute("block-export-add", export)
            self._exports.append(export["id"])
            if unions[disk.name] is None:
                changed[disk.name] = None
                continue
            context = f"qemu:dirty-bitmap:{merge_name(self.item_id, token)}"
            try:
                with NbdClient(self._socket, disk.name, contexts=(context,)) as client:
                    changed[disk.name] = chunks_of(client.block_status(context), CHUNK_SIZE)
            except NbdError as exc:
                raise VmError(message=f"cannot read the changed blocks of disk {disk.name}: {exc}") from None
        return changed

    # --- cleaning up -------------------------------------------------------------------

    def _quiet(self, command: str, arguments: dict | None = None) -> Any:
        try:
            return self.qmp.execute(command, arguments)
        except QmpCommandError:
            return None

    def _cleanup_leftovers(self) -> None:
        mine = self.prefix
        exports = [e["id"] for e in self._quiet("query-block-exports") or [] if e.get("id", "").startswith(mine)]
        jobs = [j["id"] for j in self.qmp.execute("query-jobs") if j.get("id", "").startswith(mine)]
        nodes = [n["node-name"] for n in self.qmp.execute("query-named-block-nodes", {"flat": True})
                 if (n.get("node-name") or "").startswith(mine)]
        if exports or jobs or nodes:
            self._exports, self._jobs, self._nodes, self._server = exports, jobs, nodes, True
            self._teardown_qemu()
        scratch = self.source.get("scratch") or tempfile.gettempdir()
        try:
            names = os.listdir(scratch)
        except OSError:
            names = []
        for name in names:
            if name.startswith(f"strongroom-{mine}-"):
                shutil.rmtree(os.path.join(scratch, name), ignore_errors=True)

    def _teardown(self) -> None:
        if not self.readers.finish():
            return
        atexit.unregister(self._teardown)
        if self.qmp is None:
            return
        try:
            self._teardown_qemu()
        finally:
            self.qmp.close()
            if self._workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)

    def _teardown_qemu(self) -> None:
        for export in self._exports:
            self._quiet("block-export-del", {"id": export, "mode": "hard"})
        self._wait(lambda: not any(e.get("id") in self._exports for e in self._quiet("query-block-exports") or []))
        if self._server:
            self._quiet("nbd-server-stop")
        for job in self._jobs:
            self._quiet("block-job-cancel", {"device": job, "force": True})
        self._wait(lambda: all(j.get("status") == "concluded" for j in self.qmp.execute("query-jobs")
                               if j.get("id") in self._jobs))
        for job in self._jobs:
            self._quiet("job-dismiss", {"id": job})
        for node in self._nodes:
            self._quiet("blockdev-del", {"node-name": node})
        for node, bitmap in self._merges:
            self._quiet("block-dirty-bitmap-remove", {"node": node, "name": bitmap})
        self._exports, self._jobs, self._nodes, self._merges, self._server = [], [], [], [], False

    def _wait(self, done) -> None:
        deadline = time.monotonic() + WAIT
        while not done():
            if time.monotonic() > deadline:
                raise QemuError(socket=self.source["qmp"], reason="block jobs did not stop in time")
            time.sleep(0.02)
