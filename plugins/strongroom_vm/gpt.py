"""GPT partition tables, read from the backup header when the primary one is damaged.

A GPT disk keeps its header twice: the primary at LBA 1 (its partition entries just
after it) and the backup in the disk's last sector (its entries just before it).  The
Sleuth Kit reads only the primary; with it damaged it sees the protective MBR's one
``0xEE`` partition and nothing else.  :func:`backup_partitions` does what ``sfdisk``
does then: on a disk with a protective MBR, if the primary header is not valid (signature ``EFI PART``, header CRC32,
entries CRC32) and the backup is, the partitions are the backup's.

Sectors of 512 bytes.  Read-only: nothing is repaired.
"""

from __future__ import annotations

import struct
import zlib

import attrs

__all__ = ["GptPartition", "backup_partitions", "read_table"]

SECTOR = 512
SIGNATURE = b"EFI PART"
_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
_ENTRY = struct.Struct("<16s16sQQQ72s")
_MAX_ENTRIES_BYTES = 1 << 20


@attrs.frozen
class GptPartition:
    number: int  # 1-based, as Linux numbers GPT partitions
    start: int  # in bytes
    size: int  # in bytes
    name: str


def _read(reader, offset: int, length: int) -> bytes:
    reader.seek(offset)
    return reader.read(length)


def read_table(reader, lba: int) -> list[GptPartition] | None:
    """The partitions of the GPT header at ``lba``, or None if that header is not valid."""
    raw = _read(reader, lba * SECTOR, SECTOR)
    if len(raw) < _HEADER.size or raw[:8] != SIGNATURE:
        return None
    (_, _, header_size, crc, _, current, _, _, _, _, entries_lba, count, entry_size,
     entries_crc) = _HEADER.unpack_from(raw)
    if not 92 <= header_size <= SECTOR or current != lba or entry_size < _ENTRY.size:
        return None
    check = bytearray(raw[:header_size])
    check[16:20] = bytes(4)
    if zlib.crc32(check) != crc or count * entry_size > _MAX_ENTRIES_BYTES:
        return None
    table = _read(reader, entries_lba * SECTOR, count * entry_size)
    if len(table) != count * entry_size or zlib.crc32(table) != entries_crc:
        return None
    out = []
    for i in range(count):
        kind, _, first, last, _, name = _ENTRY.unpack_from(table, i * entry_size)
        if kind == bytes(16) or last < first:
            continue
        text = name.decode("utf-16-le", "replace").split("\0", 1)[0]
        out.append(GptPartition(i + 1, first * SECTOR, (last - first + 1) * SECTOR, text))
    return out


def backup_partitions(reader, size: int) -> list[GptPartition] | None:
    """The backup header's partitions when the primary header is damaged and the backup is
    valid; None otherwise (a good primary, no GPT at all, or both damaged)."""
    if size < 3 * SECTOR or not _protective_mbr(_read(reader, 0, SECTOR)) or read_table(reader, 1) is not None:
        return None
    return read_table(reader, size // SECTOR - 1)


def _protective_mbr(sector: bytes) -> bool:
    """Whether a first sector is an MBR with a GPT protective (type 0xEE) partition."""
    return len(sector) == SECTOR and sector[510:512] == b"\x55\xaa" and any(
        sector[446 + 16 * i + 4] == 0xEE for i in range(4))
