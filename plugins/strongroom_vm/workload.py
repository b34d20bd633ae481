"""The ``vm`` workload: virtual machine disks, whole or file by file.

Sources (``strongroom protect vm ITEM ...``):

- an offline VM: ``--disk [NAME=]PATH`` (repeatable; raw images, block devices, qcow2
  and the other formats QEMU reads), ``--config FILE`` and ``--force`` (read disks that a
  running VM holds; such points are ``inconsistent``).  A disk that changed while it was
  read also makes its point ``inconsistent``, with a warning (:mod:`strongroom_vm.atrest`).
  An image unchanged since the parent point is not read, a qcow2 image is read through its
  dirty bitmaps (:mod:`strongroom_vm.offline`); ``--chunk-size`` sets the disks' chunk size;
- a running QEMU VM: ``--qmp SOCKET`` (every disk, crash-consistent, incremental through
  dirty bitmaps), ``--guest-agent SOCKET`` (file-system-consistent: the guest is frozen
  around the snapshot point), ``--scratch DIR`` and ``--config FILE``;
- a libvirt domain by name: ``--libvirt DOMAIN`` (``--connect URI``, ``--scratch DIR``): its
  disks and XML from libvirt, read through libvirt's backup and checkpoint APIs while it
  runs, at rest when it is shut off (:mod:`strongroom_vm.libvirt`); ``restore --define
  NEW_NAME [--start]`` re-creates the domain on the restored disks.

The point layout is in :mod:`strongroom_vm.layout`; browse and restore accept
``[DISK:]/path`` locations inside disks (:mod:`strongroom_vm.itemlevel`).

This module is imported on every start of the command line, so the backup machinery
(offline and live reading, QMP), the restore and item-level modules (which need pytsk3)
are imported by the methods that use them.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import click
from strongroom import (
    BackupContext, BrowseItem, InvalidSource, PointContext, PointView, RestoreResult, StrongroomError, UsageError,
    Workload,
)

from .layout import DEFAULT_CHUNK_SIZE, FORMATS, item_chunk_size, parse_chunk_size, config_entries, manifest_source, read_manifest

__all__ = ["VmWorkload"]


def _existing_file(path: str | None, what: str) -> str | None:
    if not path:
        return None
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise InvalidSource(workload="vm", reason=f"{what} {path} does not exist or is not a file")
    return path


class VmWorkload(Workload):
    name = "vm"
    description = "a virtual machine's disks and configuration (offline images or a live QEMU VM)"
    consistency = "crash"

    def protect_params(self) -> list[click.Parameter]:
        return [
            click.Option(["--disk", "disks"], multiple=True, metavar="[NAME=]PATH",
                         help="A disk of an offline VM: raw image, block device or qcow2 (repeatable)."),
            click.Option(["--qmp"], metavar="SOCKET", help="The QMP socket of a running QEMU VM."),
            click.Option(["--libvirt"], metavar="DOMAIN",
                         help="A libvirt domain by name: its disks and XML, through libvirt's backup API when it runs."),
            click.Option(["--connect"], metavar="URI",
                         help="With --libvirt: the libvirt connection URI (default qemu:///system)."),
            click.Option(["--guest-agent"], metavar="SOCKET",
                         help="The VM's guest agent socket: freeze its file systems at the snapshot point."),
            click.Option(["--config"], metavar="FILE",
                         help="The VM's configuration file (libvirt XML, a QEMU command line...) to keep with each point."),
            click.Option(["--scratch"], metavar="DIR", type=click.Path(file_okay=False),
                         help="Folder for the temporary images of a live backup (default: the system's temporary folder)."),
            click.Option(["--force"], is_flag=True, default=False,
                         help="Offline VM: back up disks even when a running VM holds them (such points are marked inconsistent)."),
            click.Option(["--chunk-size"], metavar="SIZE",
                         help="Offline VM: fixed chunk size of the disks, 64K to 16M, a power of two "
                              f"(default {DEFAULT_CHUNK_SIZE >> 10}K)."),
        ]

    def source_from_options(self, options: dict[str, Any]) -> dict:
        return {
            "disks": list(options.get("disks") or ()), "qmp": options.get("qmp"),
            "libvirt": options.get("libvirt"), "connect": options.get("connect"),
            "guest_agent": options.get("guest_agent"), "config": options.get("config"),
            "scratch": options.get("scratch"), "force": bool(options.get("force")),
            "chunk_size": options.get("chunk_size"),
        }

    def validate_source(self, source: dict) -> dict:
        specs, qmp = list(source.get("disks") or ()), source.get("qmp")
        if source.get("libvirt") or source.get("domain"):
            return self._validate_libvirt(source, specs, qmp)
        if source.get("connect"):
            raise InvalidSource(workload="vm", reason="--connect goes with --libvirt DOMAIN")
        config = _existing_file(source.get("config"), "config file")
        if bool(specs) == bool(qmp):
            raise InvalidSource(workload="vm", reason="give either --disk PATH (an offline VM) or --qmp SOCKET (a running VM)")
        if specs:
            if source.get("guest_agent") or source.get("scratch"):
                raise InvalidSource(workload="vm", reason="--guest-agent and --scratch need --qmp")
            from . import offline

            disks = specs if isinstance(specs[0], dict) else offline.parse_disks(specs)
            out = {"mode": "offline", "disks": disks, "config": config}
            if source.get("force"):
                out["force"] = True
            if source.get("chunk_size") or not source.get("mode"):  # a source saved without one keeps 4 MiB
                chunk_size = parse_chunk_size(source.get("chunk_size") or DEFAULT_CHUNK_SIZE)
                if chunk_size is None:
                    raise InvalidSource(workload="vm", reason=f"--chunk-size {source['chunk_size']} is not a power "
                                        "of two from 64K to 16M")
                out["chunk_size"] = chunk_size
            return out
        if source.get("force"):
            raise InvalidSource(workload="vm", reason="--force is for the disks of an offline VM (--disk)")
        if source.get("chunk_size"):
            raise InvalidSource(workload="vm", reason="--chunk-size is for the disks of an offline VM (--disk)")
        from .qmp import QmpClient

        qmp = os.path.abspath(qmp)
        try:
            QmpClient(qmp).close()
        except StrongroomError as exc:
            raise InvalidSource(workload="vm", reason=str(exc).rstrip(".")) from None
        agent = source.get("guest_agent")
        scratch = source.get("scratch")
        if scratch and not os.path.isdir(scratch):
            raise InvalidSource(workload="vm", reason=f"scratch folder {scratch} does not exist")
        return {"mode": "live", "qmp": qmp, "guest_agent": os.path.abspath(agent) if agent else None,
                "config": config, "scratch": os.path.abspath(scratch) if scratch else None}

    def _validate_libvirt(self, source: dict, specs: list, qmp: str | None) -> dict:
        from .libvirt import DEFAULT_URI, inspect, remote_host

        if specs or qmp or source.get("guest_agent") or source.get("config") or source.get("force"):
            raise InvalidSource(workload="vm", reason="--libvirt DOMAIN takes no --disk, --qmp, --guest-agent, "
                                "--config or --force: the domain's XML names its disks")
        domain = source.get("libvirt") or source.get("domain")
        uri = source.get("connect") or DEFAULT_URI
        if remote_host(uri):
            raise InvalidSource(workload="vm", reason=f"--connect {uri} names another machine ({remote_host(uri)}): "
                                "strongroom reads a domain's disks where it runs, so give a local URI (qemu:///system)")
        scratch = source.get("scratch")
        if scratch and not os.path.isdir(scratch):
            raise InvalidSource(workload="vm", reason=f"scratch folder {scratch} does not exist")
        inspect(uri, domain)  # the domain exists and its disks can be read
        return {"mode": "libvirt", "domain": domain, "connect": uri,
                "scratch": os.path.abspath(scratch) if scratch else None}

    def describe(self, source: dict) -> str:
        if source.get("mode") == "libvirt":
            return f"libvirt domain {source['domain']} at {source['connect']}"
        if source.get("mode") == "live":
            text = f"running QEMU VM at {source['qmp']}"
            if source.get("guest_agent"):
                text += f" (guest agent {source['guest_agent']})"
        else:
            from . import offline

            text = ", ".join(offline.describe(source))
            if source.get("force"):
                text += " (read even while a VM runs: --force)"
        if source.get("config"):
            text += f"; config {source['config']}"
        return text

    # --- backup ----------------------------------------------------------------------

    def backup(self, ctx: BackupContext) -> Iterator[Any]:
        source = ctx.item.source
        parent = read_manifest(ctx.parent) if ctx.parent is not None else {}
        if source.get("mode") == "libvirt":
            from .libvirt import backup_entries

            yield from backup_entries(ctx, parent)
            return
        if source.get("mode") == "live":
            from .live import LiveBackup

            live = LiveBackup(source, ctx.item.item_id, parent, ctx.warnings, ctx.progress)
            entries = live.entries()
            try:
                for entry in entries:
                    # known once the snapshot point is taken; the core reads it after the walk
                    ctx.consistency = live.consistency
                    yield entry
            finally:
                entries.close()
            return
        config = source.get("config")
        if config and not os.path.isfile(config):
            ctx.warn(f"config file {config} is missing; the point has no config")
            config = None
        yield from self._offline(ctx, config, parent)

    def _offline(self, ctx: BackupContext, config: str | None, parent: dict) -> Iterator[Any]:
        """An offline VM's entries; a disk in use (with --force) or one that changed while
        it was read makes the point ``inconsistent``, with a warning (see offline.py)."""
        from . import offline
        from .atrest import ReadWatch

        def torn(name: str, found: list[str]) -> None:  # called from the thread that read the disk
            ctx.consistency = "inconsistent"
            ctx.warn(f"disk {name} ({paths[name]}) changed while it was read ({', '.join(found)}): the point is "
                     "inconsistent; back up from an LVM, ZFS or btrfs snapshot, or the running VM with --qmp")

        source = ctx.item.source
        paths = {d["name"]: d["path"] for d in source["disks"]}
        watch = ReadWatch(torn)
        previous = {d.get("name"): d for d in parent.get("disks", [])} if parent.get("mode") == "offline" else {}
        notes: list[str] = []
        disks, records, in_use = offline.disk_sources(source["disks"], force=bool(source.get("force")), watch=watch,
                                                      parent=previous, item_id=ctx.item.item_id, notes=notes,
                                                      chunk_size=item_chunk_size(source))
        for note in notes:
            ctx.warn(note)
        ctx.progress(total=sum(record["size"] for record in records))  # what the progress line counts toward
        for name in in_use:
            ctx.consistency = "inconsistent"
            ctx.warn(f"disk {name} ({paths[name]}) is in use by a running VM and was read anyway (--force): "
                     "the point is inconsistent")
        yield from config_entries(config, {})
        yield from disks
        watch.wait()  # every disk has been read: the manifest says what was seen
        for record in records:
            if record["name"] in watch.changed:
                record["changed_during_read"] = watch.changed[record["name"]]
        yield manifest_source({"mode": "offline", "consistency": ctx.consistency or "crash", "disks": records})

    # --- browse and restore ------------------------------------------------------------

    def browse(self, ctx: PointContext, path: str) -> list[BrowseItem]:
        from .itemlevel import browse_disk, disk_encryption, disk_names, is_location
        from .luks import secret_from

        if path and is_location(path):
            return browse_disk(ctx, path, secret_from())
        if path:
            return super().browse(ctx, path)
        rows = []
        formats = {d.get("name"): d.get("format") for d in read_manifest(ctx).get("disks", [])}
        for name in disk_names(ctx):
            entry = ctx.lookup(f"disks/{name}")
            detail = f"browse {name}:/ for its partitions and files"
            if formats.get(name) == "luks":
                detail = (f"encrypted ({disk_encryption(ctx, name) or 'LUKS'}): browse {name}:/ with "
                          "STRONGROOM_LUKS_PASSPHRASE set; restore --files with --luks-passphrase-env or --luks-key-file")
            rows.append(BrowseItem(path=f"{name}:/", name=name, type="disk", size=entry.size, detail=detail))
        for row in super().browse(ctx, ""):
            if row.name != "disks":
                rows.append(row)
        return rows

    def mount_folders(self, view: PointView) -> dict[str, Any]:
        """``files/``: the files inside the point's disks, when mounted (:mod:`strongroom_vm.mountfiles`)."""
        from .mountfiles import DiskFiles

        return {"files": DiskFiles(view)}

    def restore_params(self) -> list[click.Parameter]:
        return [
            click.Option(["--disk", "disks"], multiple=True, metavar="NAME",
                         help="vm points: restore only this disk (repeatable; default: every disk)."),
            click.Option(["--format", "disk_format"], type=click.Choice(FORMATS), metavar="raw|qcow2",
                         help="vm points: format of the restored disk images (default: raw, sparse)."),
            click.Option(["--files", "files"], multiple=True, metavar="[DISK:]/PATH",
                         help="vm points: extract these files or folders from inside a disk (repeatable)."),
            click.Option(["--luks-passphrase-env", "luks_passphrase_env"], metavar="VAR",
                         help="vm points, --files: unlock LUKS volumes with the passphrase in this environment variable."),
            click.Option(["--luks-key-file", "luks_key_file"], metavar="FILE",
                         help="vm points, --files: unlock LUKS volumes with this key file."),
            click.Option(["--define", "define"], metavar="NEW_NAME",
                         help="vm points of a libvirt domain: define a new domain with the restored disks."),
            click.Option(["--start", "start"], is_flag=True, default=False,
                         help="With --define: start the new domain."),
        ]

    def restore(self, ctx: PointContext, target: str | None, paths: Sequence[str],
                options: dict[str, Any]) -> RestoreResult:
        from .itemlevel import extract
        from .restore import restore_disks

        if not target:
            raise UsageError(message="restoring a vm point needs --target DIR")
        if paths:
            raise UsageError(message="vm points take --disk NAME or --files [DISK:]/PATH, not PATH arguments")
        files = list(options.get("files") or ())
        disks = list(options.get("disks") or ())
        if options.get("define"):
            if files or disks:
                raise UsageError(message="--define restores every disk: it cannot be combined with --disk or --files")
            from .libvirt import restore_defined

            return restore_defined(ctx, target, options["define"], options.get("disk_format") or "raw",
                                   bool(options.get("start")))
        if options.get("start"):
            raise UsageError(message="--start goes with --define NEW_NAME")
        luks_env, luks_file = options.get("luks_passphrase_env"), options.get("luks_key_file")
        if (luks_env or luks_file) and not files:
            raise UsageError(message="--luks-passphrase-env and --luks-key-file unlock volumes for --files; "
                             "whole disks are restored as they are")
        if luks_env and luks_file:
            raise UsageError(message="give --luks-passphrase-env or --luks-key-file, not both")
        if files:
            if disks or options.get("disk_format"):
                raise UsageError(message="--files extracts files; it cannot be combined with --disk or --format")
            from .luks import secret_from

            return extract(ctx, target, files, secret_from(luks_env, luks_file))
        return restore_disks(ctx, target, disks, options.get("disk_format") or "raw")
