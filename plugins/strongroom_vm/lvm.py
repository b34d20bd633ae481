"""LVM2 physical volumes: their linear logical volumes as readers, without device-mapper.

Reads the label (``LABELONE`` in one of the first four sectors), the physical-volume
header, the first metadata area and its current metadata text, then maps each logical
volume's segments of type ``striped`` with one stripe (a linear volume) onto this physical
volume.  Logical volumes with segments on other physical volumes, striped over several
or of other types (thin, raid, snapshots) are left out.  Errors raise :class:`LvmError`.
"""

from __future__ import annotations

import re
import struct
from typing import Any, Iterator
from strongroom import SeekableReader

__all__ = ["LvmError", "logical_volumes", "parse_metadata"]

SECTOR = 512
MDA_MAGIC = b" LVM2 x[5A%r0N*>"


class LvmError(ValueError):
    """An LVM structure that cannot be read."""


_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*")|([\[\]{}=,])|([^\s\[\]{}=,"#]+))')


def _tokens(text: str) -> Iterator[str]:
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip():
                raise LvmError(f"unreadable metadata near {text[pos:pos + 20]!r}")
            return
        pos = m.end()
        if m.group(1) is None:
            yield m.group(2) or m.group(3) or m.group(4)


def _value(token: str) -> Any:
    if token.startswith('"'):
        return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    try:
        return int(token)
    except ValueError:
        return token


def parse_metadata(text: str) -> dict:
    """LVM's metadata text (``name { key = value ... }``) as nested dicts."""
    tokens = list(_tokens(text))
    pos = 0

    def section() -> dict:
        nonlocal pos
        out: dict = {}
        while pos < len(tokens) and tokens[pos] != "}":
            key = tokens[pos]
            pos += 1
            if pos < len(tokens) and tokens[pos] == "{":
                pos += 1
                out[key] = section()
                pos += 1  # "}"
            elif pos < len(tokens) and tokens[pos] == "=":
                pos += 1
                if tokens[pos] == "[":
                    pos += 1
                    items = []
                    while tokens[pos] != "]":
                        if tokens[pos] != ",":
                            items.append(_value(tokens[pos]))
                        pos += 1
                    pos += 1
                    out[key] = items
                else:
                    out[key] = _value(tokens[pos])
                    pos += 1
            else:
                raise LvmError(f"unexpected {key!r} in metadata")
        return out

    try:
        return section()
    except IndexError:
        raise LvmError("truncated metadata") from None


def _read(reader, offset: int, length: int) -> bytes:
    reader.seek(offset)
    data = reader.read(length)
    if len(data) != length:
        raise LvmError("truncated physical volume")
    return data


def _metadata_text(reader) -> tuple[str, str]:
    """(this PV's uuid, the current metadata text)."""
    for sector in range(4):
        head = _read(reader, sector * SECTOR, SECTOR)
        if head[:8] == b"LABELONE" and head[24:32] == b"LVM2 001":
            (content,) = struct.unpack_from("<I", head, 20)
            break
    else:
        raise LvmError("no LVM2 label")
    pv = sector * SECTOR + content
    header = _read(reader, pv, SECTOR * 2)
    uuid = header[:32].decode("ascii", "replace")
    pos = 40
    for _ in range(2):  # data areas, then metadata areas; each list ends with zeros
        areas = []
        while True:
            offset, size = struct.unpack_from("<QQ", header, pos)
            pos += 16
            if offset == 0:
                break
            areas.append((offset, size))
    if not areas:
        raise LvmError("no metadata area")
    mda_offset, _ = areas[0]
    mda = _read(reader, mda_offset, SECTOR)
    if mda[4:20] != MDA_MAGIC:
        raise LvmError("bad metadata area")
    (mda_size,) = struct.unpack_from("<Q", mda, 32)
    loc_offset, loc_size = struct.unpack_from("<QQ", mda, 40)
    if not loc_offset:
        raise LvmError("empty metadata area")
    if loc_offset + loc_size <= mda_size:
        raw = _read(reader, mda_offset + loc_offset, loc_size)
    else:  # the text wraps around the circular area
        first = mda_size - loc_offset
        raw = _read(reader, mda_offset + loc_offset, first) + _read(reader, mda_offset + SECTOR, loc_size - first)
    return uuid, raw.rstrip(b"\0").decode("utf-8", "replace")


def _plain_uuid(text: str) -> str:
    return text.replace("-", "")


class _LinearReader(SeekableReader):
    def __init__(self, reader, pieces: list[tuple[int, int, int]], size: int) -> None:
        super().__init__()
        self._reader, self._pieces, self.size, self._pos = reader, pieces, size, 0

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        wanted = max(0, min(len(view), self.size - self._pos))
        done = 0
        while done < wanted:
            at = self._pos + done
            for lv_start, length, pv_start in self._pieces:
                if lv_start <= at < lv_start + length:
                    n = min(wanted - done, lv_start + length - at)
                    self._reader.seek(pv_start + at - lv_start)
                    view[done : done + n] = _read(self._reader, pv_start + at - lv_start, n)
                    done += n
                    break
            else:
                raise LvmError("read outside the logical volume's segments")
        self._pos += done
        return done

def logical_volumes(reader) -> Iterator[tuple[str, _LinearReader, int]]:
    """``(VG-LV name, reader, size)`` of each linear logical volume on this PV."""
    uuid, text = _metadata_text(reader)
    doc = parse_metadata(text)
    for vg_name, vg in doc.items():
        if not isinstance(vg, dict) or "logical_volumes" not in vg:
            continue
        extent = int(vg["extent_size"]) * SECTOR
        pvs = {name: pv for name, pv in vg.get("physical_volumes", {}).items()
               if _plain_uuid(str(pv.get("id", ""))) == _plain_uuid(uuid)}
        for lv_name, lv in vg["logical_volumes"].items():
            pieces, size, ok = [], 0, True
            for key in sorted((k for k in lv if k.startswith("segment") and isinstance(lv[k], dict)),
                              key=lambda k: int(k[7:] or 0)):
                seg = lv[key]
                stripes = seg.get("stripes", [])
                if seg.get("type") != "striped" or seg.get("stripe_count") != 1 or stripes[0] not in pvs:
                    ok = False
                    break
                pe_start = int(pvs[stripes[0]]["pe_start"]) * SECTOR
                pieces.append((int(seg["start_extent"]) * extent, int(seg["extent_count"]) * extent,
                               pe_start + int(stripes[1]) * extent))
                size = max(size, (int(seg["start_extent"]) + int(seg["extent_count"])) * extent)
            if ok and pieces:
                yield f"{vg_name}-{lv_name}", _LinearReader(reader, pieces, size), size
