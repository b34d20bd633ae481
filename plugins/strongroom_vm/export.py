"""``strongroom vm export ITEM[@POINT] --nbd unix:SOCKET|HOST:PORT``: instant restore.

Serves the disks of a vm recovery point over NBD straight from the vault
(:mod:`strongroom_vm.nbdserve`), one export per disk named after the disk, so a VM boots
from the backup (``qemu-system-x86_64 -drive file=nbd+unix:///vda?socket=SOCKET,...``)
without restoring it first; ``strongroom restore`` copies the disks back meanwhile or later.

- Read-only by default: a client's writes are refused (``EPERM``), so the guest needs its
  disk read-only (``readonly=on``) or QEMU's own throw-away overlay (``snapshot=on``).
  With ``--overlay FILE`` writes go to that local copy-on-write file (:mod:`strongroom_vm.cow`;
  with several disks, FILE is a folder holding ``<disk>.overlay`` for each); the vault is
  never written, and serving again with the same overlay continues where the VM left off.
- ``--disk NAME`` (repeatable) serves only those disks.
- The address: ``unix:PATH`` (a socket file, removed at the end; an existing socket file
  that nobody listens on is replaced) or ``HOST:PORT`` (``[::1]:PORT`` for IPv6).  A host
  that is not a loopback address is refused (:class:`ExportAddressRefused`, exit 121)
  unless ``--allow-remote`` is given: NBD has no authentication here and no encryption.
- Prints the QEMU ``-drive`` option for each disk (``--json``: one line of JSON naming
  each disk's size, NBD URI and ``-drive`` option, printed once listening), then serves until SIGINT (Ctrl-C) or
  SIGTERM, exiting 0 (ending is how the command is meant to stop), or with ``--once``
  until the first client that opened a disk disconnects.

Refused before anything is served: an item of another workload (:class:`NotAVmItem`, 120),
a point that is soft-deleted or not there (as ``restore`` refuses it), an unknown disk
(``DiskNotInPoint``, 94), an address that cannot be listened on (:class:`ExportAddressUnusable`,
122), an overlay of another point, disk or size (:class:`OverlayUnusable`, 123).  Nothing
is written to the vault and no job is recorded.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import threading
from typing import TYPE_CHECKING, Iterator

import attrs
import click

from .errors import DiskNotInPoint, ExportAddressRefused, ExportAddressUnusable, NotAVmItem

if TYPE_CHECKING:  # the server is loaded when a point is served, not when the CLI starts
    from .nbdserve import Export

__all__ = ["Address", "drive_option", "export_command", "parse_address"]


@attrs.frozen
class Address:
    text: str
    unix: str | None = None  # the socket path, or
    host: str = ""
    port: int = 0

    @property
    def family(self) -> int:
        if self.unix is not None:
            return socket.AF_UNIX
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET


def parse_address(text: str) -> Address:
    """``unix:PATH`` or ``HOST:PORT`` (``[v6]:PORT``); :class:`ExportAddressUnusable` else."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ExportAddressUnusable(address=text, reason="write unix:PATH")
        path = os.path.abspath(path)
        if len(os.fsencode(path)) > 107:
            raise ExportAddressUnusable(address=text, reason="a unix socket path is at most 107 bytes long")
        return Address(text, unix=path)
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ExportAddressUnusable(address=text, reason="write unix:PATH or HOST:PORT (for example 127.0.0.1:10809)")
    return Address(text, host=host, port=int(port))


def is_loopback(address: Address) -> bool:
    if address.unix is not None:
        return True
    try:
        return ipaddress.ip_address(address.host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in found)


def listen(address: Address) -> socket.socket:
    """A listening socket at ``address`` (:class:`ExportAddressUnusable` if it cannot be)."""
    if address.unix is not None:
        _clear_stale_socket(address)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: object = address.unix
    else:
        try:
            info = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)[0]
        except OSError as exc:
            raise ExportAddressUnusable(address=address.text, reason=str(exc)) from None
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        target = info[4]
    try:
        sock.bind(target)
        sock.listen(16)
    except OSError as exc:
        sock.close()
        raise ExportAddressUnusable(address=address.text, reason=exc.strerror or str(exc)) from None
    return sock


def _clear_stale_socket(address: Address) -> None:
    try:
        st = os.lstat(address.unix)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ExportAddressUnusable(address=address.text, reason="a file that is not a socket is there")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(address.unix)
    except OSError:
        os.unlink(address.unix)  # nobody listens: left by a server that is gone
        return
    finally:
        probe.close()
    raise ExportAddressUnusable(address=address.text, reason="another server listens on that socket")


def nbd_uri(address: Address, disk: str) -> str:
    if address.unix is not None:
        return f"nbd+unix:///{disk}?socket={address.unix}"
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"nbd://{host}:{address.port}/{disk}"


def drive_option(address: Address, export: Export) -> str:
    """The ``-drive`` option that gives QEMU ``export`` as a virtio disk."""
    extra = ",readonly=on" if export.read_only else ""
    return f"-drive file={nbd_uri(address, export.name)},format=raw,if=virtio{extra}"


def overlay_path(given: str, disk: str, several: bool) -> str:
    if not several:
        return given
    os.makedirs(given, exist_ok=True)
    return os.path.join(given, f"{disk}.overlay")


def build_exports(view, disks: list[str], overlay: str | None) -> Iterator[Export]:
    """One :class:`Export` per chosen disk of point ``view`` (every disk when none is chosen)."""
    from .cow import Overlay
    from .itemlevel import disk_names
    from .layout import DISKS_DIR
    from .nbdserve import read_only_export

    names = disk_names(view)
    for disk in disks:
        if disk not in names:
            raise DiskNotInPoint(disk=disk, point=view.point.short_id, disks=", ".join(names) or "none")
    chosen = list(dict.fromkeys(disks)) or names
    if not chosen:
        raise DiskNotInPoint(disk="(any)", point=view.point.short_id, disks="none")
    vault_lock = threading.Lock()  # the vault's readers are used by one thread at a time
    for name in chosen:
        export = read_only_export(name, view.open(f"{DISKS_DIR}/{name}"),
                                  f"disk {name} of point {view.point.short_id}", vault_lock)
        if overlay:
            export.overlay = Overlay(overlay_path(overlay, name, len(chosen) > 1), disk=name,
                                     point_id=view.point.point_id, size=export.size, base=export.read_base)
        yield export


@click.command("export")
@click.argument("spec", metavar="ITEM[@POINT]")
@click.option("--nbd", "address", required=True, metavar="unix:SOCKET|HOST:PORT",
              help="Where to serve the disks over NBD: a unix socket, or a loopback TCP address.")
@click.option("--disk", "disks", multiple=True, metavar="NAME", help="Serve only this disk (repeatable; default: every disk).")
@click.option("--overlay", metavar="FILE",
              help="Take writes into this local copy-on-write file (a folder with several disks); default: read-only.")
@click.option("--allow-remote", is_flag=True, help="Serve on an address that is not loopback (no authentication, no encryption).")
@click.option("--once", is_flag=True, help="Stop when the first client that opened a disk disconnects.")
@click.option("--json", "as_json", is_flag=True, help="Print what is served as JSON (one document, once listening).")
def export_command(spec: str, address: str, disks: tuple[str, ...], overlay: str | None, allow_remote: bool,
                   once: bool, as_json: bool) -> None:
    """Serve a vm point's disks over NBD (instant restore: boot the VM from the backup)."""
    from strongroom import command_vault, emit_json

    from .nbdserve import NbdServer

    item, sep, ref = spec.partition("@")
    if not item or (sep and not ref):
        raise click.BadParameter(f"expected ITEM or ITEM@POINT, got {spec!r}", param_hint="ITEM[@POINT]")
    where = parse_address(address)
    if not allow_remote and not is_loopback(where):
        raise ExportAddressRefused(address=address)
    vault = command_vault()
    record = vault.item(item)
    if record.workload != "vm":
        raise NotAVmItem(item=item, workload=record.workload)
    view = vault.point_view(item, ref or None)
    exports: dict[str, Export] = {}
    listener = None
    try:
        for export in build_exports(view, list(disks), os.path.abspath(overlay) if overlay else None):
            exports[export.name] = export
        listener = listen(where)
        server = NbdServer(listener, exports)
        if as_json:
            emit_json({"item": item, "point": view.point.point_id, "address": address, "once": once, "disks": [
                {"name": e.name, "size": e.size, "uri": nbd_uri(where, e.name), "drive": drive_option(where, e),
                 "read_only": e.read_only, "overlay": e.overlay.path if e.overlay is not None else None}
                for e in exports.values()]}, compact=True)
        else:
            mode = "copy-on-write into " + os.path.abspath(overlay) if overlay else "read-only"
            click.echo(f"Serving {len(exports)} disk(s) of {item}@{view.point.short_id} over NBD at {address} ({mode}).")
            for export in exports.values():
                click.echo(f"  {export.name}: {drive_option(where, export)}")
            click.echo("Stop with Ctrl-C." if not once else "Stops when the first client disconnects.")
        try:
            server.serve(once=once)
        except KeyboardInterrupt:  # SIGINT or SIGTERM: the way this command ends
            server.close()
    finally:
        for export in exports.values():
            if export.overlay is not None:
                export.overlay.close()
        if where.unix is not None and listener is not None:
            try:
                if stat.S_ISSOCK(os.lstat(where.unix).st_mode):
                    os.unlink(where.unix)
            except OSError:
                pass


@click.group("vm")
def vm_group() -> None:
    """Virtual machine points: serve their disks (instant restore)."""


vm_group.add_command(export_command)
