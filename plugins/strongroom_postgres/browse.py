"""Browse a postgres point: databases, schemas, objects, and what a table restore brings.

Paths are ``DB[/SCHEMA[/NAME]]`` with ``%`` and ``/`` in names percent-encoded (as in
the rows' ``path``); the same paths select what to restore.

- ``""``: the databases (size = the dump's size) and ``globals.sql``;
- ``DB``: its schemas with a count of their objects, and its large objects;
- ``DB/SCHEMA``: its tables, views, sequences, functions, types...;
- ``DB/SCHEMA/NAME``: what ``restore --table SCHEMA.NAME`` brings back with the table
  (indexes, constraints, sequences...) and, as ``not restored`` rows, what it leaves out.

Everything below the top is read from the dump's table of contents through the vault
(:func:`~.feed.read_dump_toc`), without restoring the dump.
"""

from __future__ import annotations

from collections import Counter

from strongroom import BrowseItem, PointContext, normalize_path

from .errors import NotInDump
from .feed import read_dump_toc
from .layout import GLOBALS, MANIFEST, Manifest, dump_entry, quote_name, unquote_name
from .selection import PARTS, RELATIONS, Planner

LISTED = RELATIONS | {"SEQUENCE", "FUNCTION", "PROCEDURE", "AGGREGATE", "TYPE", "DOMAIN"}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else ("es" if word.endswith("x") else "s"))


def browse(ctx: PointContext, manifest: Manifest, path: str) -> list[BrowseItem]:
    parts = [unquote_name(p) for p in normalize_path(path).split("/") if p]
    if not parts:
        return _top(ctx, manifest)
    if len(parts) == 1 and parts[0] in (GLOBALS, MANIFEST) and parts[0] not in {r.name for r in manifest.databases}:
        entry = ctx.lookup(parts[0])
        return [BrowseItem(path=parts[0], name=parts[0], type="file", size=entry.size if entry else None)]
    record = manifest.database(parts[0], ctx.point.short_id)
    toc, _ = read_dump_toc(ctx, record)
    planner = Planner(toc)
    where = f"database '{record.name}' of recovery point {ctx.point.short_id}"
    if len(parts) == 1:
        return _schemas(planner, record.name)
    schema = parts[1]
    if schema not in planner.schemas():
        raise NotInDump(kind="Schema", name=schema, where=where)
    if len(parts) == 2:
        return _objects(planner, record.name, schema)
    found = planner.find_relation(schema, "/".join(parts[2:]))
    if not found:
        raise NotInDump(kind="Table", name=f"{schema}.{'/'.join(parts[2:])}", where=where)
    return _table(planner, record.name, found[0].dump_id)


def _top(ctx: PointContext, manifest: Manifest) -> list[BrowseItem]:
    rows = []
    for record in manifest.databases:
        size = dump_entry(ctx, record).size
        detail = f"PostgreSQL {manifest.server_version}, owner {record.owner}, {record.encoding}"
        rows.append(BrowseItem(path=quote_name(record.name), name=record.name, type="database",
                               size=size, owner=record.owner, detail=detail))
    entry = ctx.lookup(GLOBALS)
    passwords = "" if manifest.doc.get("globals", {}).get("role_passwords", True) else ", without role passwords"
    rows.append(BrowseItem(path=GLOBALS, name=GLOBALS, type="globals", size=entry.size if entry else None,
                           detail=f"roles and tablespaces (pg_dumpall --globals-only{passwords})"))
    return rows


def _schemas(planner: Planner, database: str) -> list[BrowseItem]:
    counts: dict[str, Counter] = {name: Counter() for name in planner.schemas()}
    blobs = 0
    for entry in planner.toc.entries:
        if entry.namespace and entry.desc in LISTED:
            counts[entry.namespace][entry.desc.lower()] += 1
        elif entry.desc in ("BLOB", "BLOB METADATA"):
            blobs += 1
    rows = []
    for schema, counter in counts.items():
        detail = ", ".join(_plural(n, kind) for kind, n in sorted(counter.items())) or "empty"
        owner = next((e.owner for e in planner.toc.find(desc="SCHEMA", tag=schema)), "")
        rows.append(BrowseItem(path=f"{quote_name(database)}/{quote_name(schema)}", name=schema,
                               type="schema", owner=owner, detail=detail))
    if blobs:
        rows.append(BrowseItem(path=quote_name(database), name="(large objects)", type="large-objects",
                               detail=f"{_plural(blobs, 'large object')} (restored with the whole database)"))
    return rows


def _objects(planner: Planner, database: str, schema: str) -> list[BrowseItem]:
    parts: dict[int, Counter] = {}
    with_data = set()
    for entry in planner.toc.entries:
        if entry.desc in PARTS:
            for rel in planner.relations_of(entry):
                parts.setdefault(rel, Counter())[entry.desc.lower()] += 1
        elif entry.desc in ("TABLE DATA", "MATERIALIZED VIEW DATA"):
            with_data.update(entry.dependencies)
    rows = []
    for entry in planner.toc.entries:
        if entry.namespace != schema or entry.desc not in LISTED:
            continue
        bits = ["with data"] if entry.dump_id in with_data else []
        bits += [_plural(n, kind) for kind, n in sorted(parts.get(entry.dump_id, Counter()).items())]
        path = f"{quote_name(database)}/{quote_name(schema)}/{quote_name(entry.tag)}"
        rows.append(BrowseItem(path=path, name=entry.tag, type=entry.desc.lower(), owner=entry.owner,
                               detail=", ".join(bits)))
    return rows


def _table(planner: Planner, database: str, dump_id: int) -> list[BrowseItem]:
    selection = planner.plan({dump_id}, set())
    table = planner.by_id[dump_id]
    base = f"{quote_name(database)}/{quote_name(table.namespace)}/{quote_name(table.tag)}"
    rows = [BrowseItem(path=base, name=entry.tag, type=entry.desc.lower(), owner=entry.owner,
                       detail="restored with the table" if entry.dump_id != dump_id else "the table")
            for entry in selection.entries]
    rows += [BrowseItem(path=base, name=label, type="not restored", detail=why)
             for label, why in selection.left_out]
    return rows
