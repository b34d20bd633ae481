"""Item-level restore: which TOC entries bring back a schema or a table, completely.

``pg_restore -t T`` restores only the table and its data (no sequence, default, key,
index or trigger) and ``-n S`` leaves out ``CREATE SCHEMA``; so an item-level restore
selects entries of the dump's table of contents itself and hands ``pg_restore`` the list
(``-L``), in archive order, which pg_restore keeps.

A **table** selection (``--table [SCHEMA.]T``; views, materialized views and foreign
tables are accepted too) brings back:

- the relation and its data;
- its *parts*: defaults, constraints (primary key, unique, check, exclusion), indexes,
  triggers, rules, row-security policies, extended statistics, the sequences it owns
  (``serial`` and identity columns) with their current values, and the partitions of a
  partitioned table with their own parts;
- the comments, grants and security labels of all of these;
- foreign keys whose both ends are restored.

Foreign keys between a restored table and one that is not restored but **exists in the
target** (a table restored into its own database, a schema whose tables have keys to
another schema) are added back after the restore (``Selection.keys``, see
:mod:`.replace`); a partition is attached (with its indexes) after the restore when the
partitioned table exists there (``Selection.attach``: attached earlier, the target's
partitioned table would give it a second primary key).

It does not bring back: foreign keys between a restored table and one that is not
restored and not in the target (either direction: each is reported as a warning with
the statement that adds it), views and other objects that use the table, directly or
through other such objects (each reported), the functions, types, domains, extensions
and collations the table uses (they must exist in the target, as they do in the
original database), large objects, and the table's schema when the target already has
it.  When the target lacks the schema, its ``CREATE SCHEMA``, grants and comment are
included.

A **schema** selection (``--schema S``) is every object whose schema is ``S``
(tables, views, sequences, functions, types, domains...) with all their parts, plus the
schema itself when the target lacks it; foreign keys to tables outside the selection
are added back or reported as above.
"""

from __future__ import annotations

import attrs

from .toc import ArchiveToc, TocEntry

RELATIONS = frozenset({"TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE"})
# Entries that belong to one or more relations: included when all their relations are.
PARTS = frozenset({
    "DEFAULT", "CONSTRAINT", "CHECK CONSTRAINT", "FK CONSTRAINT", "INDEX", "INDEX ATTACH",
    "TRIGGER", "RULE", "POLICY", "ROW SECURITY", "STATISTICS", "SEQUENCE", "TABLE ATTACH",
})
# Parts that join two relations: they need both (through constraints and indexes too).
JOINS = frozenset({"FK CONSTRAINT", "INDEX ATTACH", "TABLE ATTACH"})
# Entries that decorate one object (or carry its data): included when it is.
DECORATIONS = frozenset({
    "COMMENT", "ACL", "SECURITY LABEL", "TABLE DATA", "MATERIALIZED VIEW DATA",
    "SEQUENCE OWNED BY", "SEQUENCE SET", "STATISTICS DATA",
})
# Never part of an item-level restore.
EXCLUDED = frozenset({"ENCODING", "STDSTRINGS", "SEARCHPATH", "DATABASE", "DATABASE PROPERTIES",
                      "BLOB", "BLOBS", "BLOB METADATA", "BLOB COMMENTS"})


@attrs.frozen
class Selection:
    """The entries to restore (archive order), what they create, and what was left out
    (``left_out``: the label of each object and why)."""

    entries: tuple[TocEntry, ...]
    relations: tuple[tuple[str, str], ...]  # (schema, name) created by the restore
    left_out: tuple[tuple[str, str], ...]
    keys: tuple[TocEntry, ...] = ()  # foreign keys to add after the restore (other end in the target)
    attach: tuple[TocEntry, ...] = ()  # partitions and their indexes to attach to the target's, after

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(f"{label} not restored: {why}" for label, why in self.left_out)

    def list_file(self, leave_out: frozenset[str] = frozenset()) -> str:
        """A ``pg_restore -L`` list: one line per entry (but those whose ``desc`` is in
        ``leave_out``); pg_restore reads the leading id."""
        lines = [f"{e.dump_id}; {e.desc} {e.namespace or '-'} {e.tag}".replace("\n", " ")
                 for e in self.entries if e.desc not in leave_out]
        return "\n".join(lines) + "\n"


def split_table(spec: str) -> tuple[str | None, str]:
    """``[SCHEMA.]NAME`` -> (schema or None, name); ``"..."`` quotes a part holding dots."""
    parts: list[str] = []
    current: list[str] = []
    i, quoted = 0, False
    while i < len(spec):
        ch = spec[i]
        if ch == '"':
            if quoted and i + 1 < len(spec) and spec[i + 1] == '"':
                current.append('"')
                i += 1
            else:
                quoted = not quoted
        elif ch == "." and not quoted and not parts:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


class Planner:
    """Builds a :class:`Selection` from the TOC of one database's dump."""

    def __init__(self, toc: ArchiveToc) -> None:
        self.toc = toc
        self.by_id = toc.by_id()
        self._rel_cache: dict[int, int | None] = {}

    def relation_of(self, dump_id: int, depth: int = 0) -> int | None:
        """The relation an entry belongs to (itself for a relation), if any."""
        if dump_id in self._rel_cache:
            return self._rel_cache[dump_id]
        entry = self.by_id.get(dump_id)
        found: int | None = None
        if entry is not None and depth < 8:
            if entry.desc in RELATIONS:
                found = dump_id
            elif entry.desc in ("CONSTRAINT", "CHECK CONSTRAINT", "INDEX", "SEQUENCE") or entry.desc in DECORATIONS:
                for dep in entry.dependencies:
                    found = self.relation_of(dep, depth + 1)
                    if found is not None:
                        break
        self._rel_cache[dump_id] = found
        return found

    def relations_of(self, entry: TocEntry) -> set[int]:
        """The relations a part belongs to: those it depends on directly, or for a join
        (a foreign key, an attached partition or index) also through constraints and
        indexes."""
        if entry.desc in JOINS:
            return {r for r in (self.relation_of(d) for d in entry.dependencies) if r is not None}
        return {d for d in entry.dependencies if d in self.by_id and self.by_id[d].desc in RELATIONS}

    def find_relation(self, schema: str | None, name: str) -> list[TocEntry]:
        return [e for e in self.toc.entries if e.desc in RELATIONS and e.tag == name
                and (schema is None or e.namespace == schema)]

    def schema_entry(self, schema: str) -> TocEntry | None:
        return next(self.toc.find(desc="SCHEMA", tag=schema), None)

    def schemas(self) -> list[str]:
        names = {e.tag for e in self.toc.find(desc="SCHEMA")}
        names |= {e.namespace for e in self.toc.entries if e.namespace}
        return sorted(names)

    def plan(self, roots: set[int], create_schemas: set[str],
             existing: frozenset[tuple[str, str]] = frozenset()) -> Selection:
        """Close ``roots`` (dump ids) over parts and decorations; add missing schemas.
        ``existing``: the (schema, name) of relations the target has, whose joins to the
        chosen relations are restored too (foreign keys as ``keys``, attachments in the list)."""
        chosen = set(roots)
        keys: dict[int, TocEntry] = {}
        for schema in create_schemas:
            entry = self.schema_entry(schema)
            if entry is not None:
                chosen.add(entry.dump_id)
        left_out: dict[int, TocEntry] = {}
        changed = True
        while changed:
            changed = False
            relations = {i for i in chosen if self.by_id[i].desc in RELATIONS}
            for entry in self.toc.entries:
                if entry.dump_id in chosen or entry.desc in EXCLUDED:
                    continue
                if entry.desc in PARTS:
                    rels = self.relations_of(entry)
                    if not rels or not rels & relations:
                        continue
                    parents = {r for r in rels if self.by_id[r].tag != entry.tag}
                    if entry.desc == "TABLE ATTACH" and parents and parents <= relations:
                        chosen.update(rels)  # a partition comes with its partitioned table
                    elif not rels <= relations:
                        outside = [self.by_id[r] for r in rels - relations]
                        if entry.desc not in JOINS or any((r.namespace, r.tag) not in existing for r in outside):
                            left_out[entry.dump_id] = entry
                            continue
                        left_out.pop(entry.dump_id, None)
                        keys[entry.dump_id] = entry
                        continue
                elif entry.desc in DECORATIONS:
                    deps = [d for d in entry.dependencies if d in self.by_id and self.by_id[d].desc != "ACL"]
                    if not any(d in chosen for d in deps):
                        continue
                else:
                    continue
                chosen.add(entry.dump_id)
                left_out.pop(entry.dump_id, None)
                changed = True
        entries = tuple(e for e in self.toc.entries if e.dump_id in chosen)
        relations = tuple((e.namespace, e.tag) for e in entries if e.desc in RELATIONS | {"SEQUENCE"})
        later = [e for e in self.toc.entries if e.dump_id in keys and e.dump_id not in chosen]
        return Selection(entries, relations, tuple(self._left_out(chosen, left_out)),
                         tuple(e for e in later if e.desc == "FK CONSTRAINT"),
                         tuple(e for e in later if e.desc != "FK CONSTRAINT"))

    def _left_out(self, chosen: set[int], left_out: dict[int, TocEntry]) -> list[tuple[str, str]]:
        out = []
        for entry in left_out.values():
            statement = " ".join(entry.defn.split())
            out.append((f"{entry.desc.lower()} {entry.namespace}.{entry.tag}",
                        "it joins a restored table to one that is neither restored nor in the target;"
                        f" to add it: {statement}"))
        reported: dict[int, TocEntry] = {}  # relations not restored that use restored ones
        changed = True
        while changed:  # transitively: a view on a view on a restored table is reported too
            changed = False
            for entry in self.toc.entries:
                if entry.desc not in RELATIONS or entry.dump_id in chosen or entry.dump_id in reported:
                    continue
                uses = [self.by_id[d] for d in entry.dependencies
                        if (d in chosen or d in reported) and self.by_id[d].desc in RELATIONS]
                if not uses:
                    continue
                reported[entry.dump_id] = entry
                changed = True
                how = "" if uses[0].dump_id in chosen else ", which is not restored"
                out.append((f"{entry.desc.lower()} {entry.namespace}.{entry.tag}",
                            f"it uses {uses[0].namespace}.{uses[0].tag}{how}; add"
                            f" --table {entry.namespace}.{entry.tag} to restore it too"))
        return out
