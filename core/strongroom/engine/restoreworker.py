"""A worker process that writes a restore's small files, a pack at a time (its :func:`main`).

Started by :class:`.restoreprocs.PackWriters`, it talks to it as every worker does
(:mod:`.workerpipe`):

1. its first message is ``(target folder, restore owners?, id key, first key id, first
   data key)``;
2. each task is one pack's blobs for files that have all their content in that pack
   (:data:`Task`); it writes them (:func:`write_pack`) and answers with a
   :data:`Written`.  The sealed blobs come as the task's payload, or, from a vault in a
   local folder, the task names the pack's file and the worker reads them itself
   (:func:`read_pack`), as the restore's threads read them (the same ranged reads).
   It answers None, for the restore to write the pack itself, when it cannot read the
   file for another reason than its absence, or a blob names a data key it was not given.

The files were cleared by the restore's tree writer; the worker creates each one
(``O_EXCL|O_NOFOLLOW``), writes it, sets its metadata and closes it, as a restore's
thread does (:mod:`.restore`).  Every blob is authenticated and checked against its id
before it is written; a file that needs a blob that is not is left for the restore to
remove.  It imports only what that needs.
"""

from __future__ import annotations

import os
import sys

from ..errors import IntegrityError
from ..repository.envelope import Envelope, Scratch
from ..repository.pack import IndexEntry, missing_pack, open_blob, read_groups, truncated
from .newfiles import FileMeta, NewFiles
from .targetlog import STOPPING
from .workerpipe import Handler, serve

__all__ = ["File", "Task", "Written", "damage_reason", "main", "read_pack", "write_pack"]

#: A file to write: its path under the target, the length to create it at (None: its
#: writes reach it), the mode to create it with (None: 0o600, then its own mode set),
#: whether zero blocks are left holes, the number of blobs it takes, and its metadata.
File = tuple[str, "int | None", "int | None", bool, int, FileMeta]
#: A blob to write: its index entry; where its sealed bytes start in the payload, or why
#: they could not be read (with a pack file: unused); and the ``(file number, offset)``
#: of each place it goes.
Blob = tuple[IndexEntry, "int | str", list[tuple[int, int]]]
#: One task: the data keys its blobs need (key id -> key), the files, the blobs in pack
#: order, and the pack's file with the most bytes one read spans (None: the sealed blobs
#: are the payload).
Task = tuple[dict[bytes, bytes], list[File], list[Blob], "tuple[str, int | None] | None"]
#: The answer: bytes written; the numbers of the files created, and of those finished
#: (metadata set, closed); why files are damaged (file number -> reason), and refused by
#: the target (file number -> (errno, message)); metadata warnings; the number of the
#: last file written to (-1: none).
Written = tuple[int, list[int], list[int], dict[int, str], dict[int, tuple[int, str]], list[str], int]


def damage_reason(exc: IntegrityError) -> str:
    """Why a file that needs the blob ``exc`` is about cannot be restored, as the restore
    names it."""
    return "{what}: {reason}".format(**exc.fields)


class _KeyNotGiven(Exception):
    """A blob names a data key the task did not give: the restore writes the pack."""


def read_pack(path: str, limit: int | None, blobs: list[Blob]) -> tuple[list[Blob], bytearray]:
    """The sealed bytes of ``blobs`` (of one pack) read from the pack's file ``path``, with
    the ranged reads :meth:`~strongroom.repository.repository.Repository.read_pack_ranges`
    makes (``limit``); ``blobs`` again, each with where its bytes start in them.  A
    missing file leaves every blob with the reason a missing pack gives; a short one
    gives blobs shorter than their index says (:func:`~strongroom.repository.pack.open_blob`
    names them truncated).  OSError for any other failure to read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        reason = damage_reason(missing_pack(blobs[0][0].pack_id)) if blobs else ""
        return [(entry, reason, targets) for entry, _, targets in blobs], bytearray()
    try:
        entries = [blob[0] for blob in blobs]
        groups = read_groups(entries, limit)
        payload = bytearray(sum(end - start for _, _, start, end in groups))
        placed: list[Blob] = []
        size = 0
        with memoryview(payload) as view:
            for first, last, start, end in groups:
                got = os.preadv(fd, [view[size:size + end - start]], start)
                while 0 < got < end - start:
                    more = os.preadv(fd, [view[size + got:size + end - start]], start + got)
                    if not more:
                        break
                    got += more
                for entry, _, targets in blobs[first:last]:
                    # past what was read: no more than what the file holds, as a store gives
                    available = max(0, min(entry.length, got - (entry.offset - start)))
                    placed.append((entry, size + entry.offset - start, targets) if available == entry.length
                                  else (entry, damage_reason(truncated(entry)), targets))
                size += end - start
    finally:
        os.close(fd)
    return placed, payload


def write_pack(new: NewFiles, envelope: Envelope, id_key: bytes, files: list[File], blobs: list[Blob],
               payload: memoryview, scratch: Scratch) -> Written:
    """Write ``blobs`` (opened from ``payload``) into ``files``; see :data:`Written`.  A
    full or read-only target ends the task at once."""
    remaining = [file[4] for file in files]
    open_fds: dict[int, int] = {}
    created: list[int] = []
    finished: list[int] = []
    damaged: dict[int, str] = {}
    failed: dict[int, tuple[int, str]] = {}
    written, last = 0, -1
    try:
        for entry, where, targets in blobs:
            data: bytes | memoryview | str
            if isinstance(where, str):
                data = where
            else:
                try:
                    data = open_blob(envelope, id_key, entry, payload[where:where + entry.length],
                                     scratch=scratch, threaded=False)
                except IntegrityError as exc:
                    data = damage_reason(exc)
            if isinstance(data, str):
                for number, _ in targets:
                    damaged.setdefault(number, data)
                continue
            for number, offset in targets:
                if number in damaged or number in failed:
                    continue
                relpath, size, mode, sparse, _, meta = files[number]
                try:
                    fd = open_fds.get(number)
                    if fd is None:
                        fd = open_fds[number] = new.open_new(relpath, size, mode=0o600 if mode is None else mode)
                        created.append(number)
                    new.write_fd(fd, offset, data, sparse=sparse)
                    remaining[number] -= 1
                    if remaining[number] == 0:
                        del open_fds[number]
                        new.close_file(relpath, fd, meta, mode_set=mode is not None)
                        finished.append(number)
                except OSError as exc:
                    fd = open_fds.pop(number, None)
                    if fd is not None:
                        os.close(fd)
                    failed[number] = (exc.errno or 0, exc.strerror or str(exc))
                    if exc.errno in STOPPING:
                        return written, created, finished, damaged, failed, new.warnings, last
                    continue
                written += len(data)
                last = number
    finally:
        for number, fd in open_fds.items():  # damaged, or the target is full: no metadata
            new.close_file(files[number][0], fd, None)
    return written, created, finished, damaged, failed, new.warnings, last


def _setup(first: tuple[str, bool, bytes, bytes, bytes]) -> Handler:
    root, restore_owner, id_key, base_key_id, base_key = first
    keys: dict[bytes, bytes] = {}

    def resolve(key_id: bytes) -> bytes:
        try:
            return keys[key_id]
        except KeyError:
            raise _KeyNotGiven(key_id.hex()) from None

    envelope = Envelope(base_key, base_key_id, resolve=resolve)
    scratch = Scratch()
    new = NewFiles(root, restore_owner)

    def handle(task: Task, payload: memoryview) -> tuple[Written | None, bytes]:
        given, files, blobs, pack = task
        keys.update(given)
        new.warnings = []  # each answer names its task's warnings only
        if pack is not None:
            try:
                blobs, read = read_pack(*pack, blobs)
            except OSError:
                return None, b""
            payload = memoryview(read)
        try:
            return write_pack(new, envelope, id_key, files, blobs, payload, scratch), b""
        except _KeyNotGiven:
            return None, b""

    return handle


def main() -> int:
    return serve(_setup)


if __name__ == "__main__":
    sys.exit(main())
