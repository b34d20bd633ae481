"""The SQL an item-level restore runs before and after ``pg_restore``'s own, in the same
transaction (:mod:`.script` runs the three as one).

**Before, with ``--force``** (only over relations the target already has, found by
:func:`inspect_target`):

- the foreign keys of tables that are *not* restored which reference a replaced table
  (or a partitioned table above a replaced partition: a partition others reference
  cannot be detached) are dropped, and added back after (see below);
- a replaced partition whose partitioned table is not restored is detached from it (and
  attached back by the dump's ``ATTACH PARTITION``, which the selection includes when
  the partitioned table exists, see :mod:`.selection`);
- a partition the target has under a replaced partitioned table, but the point does
  not, is detached and kept as a table (a warning gives the statement that attaches it
  back), so replacing a partition tree never drops data the point does not hold;
- the views and materialized views of the target that use a replaced relation (directly or
  through one another) are replaced too when the point has them (:func:`views_using`; the
  restore names them), since a table cannot be dropped under a view;
- the replaced views, materialized views, foreign tables and tables are dropped
  (without ``CASCADE``: an object that is not restored and still depends on one of them,
  a view say, fails the restore, which then changes nothing); ``pg_restore --clean
  --if-exists`` drops the rest (sequences, functions, types...).

Dropping the tables first is what makes partitions replaceable: ``pg_restore --clean``
alone drops a partition's inherited primary key before its table, which PostgreSQL
refuses (``cannot drop inherited constraint``).

**After** (:func:`after_sql`):

- the partitions and partition indexes to attach to the target's (:attr:`Selection.attach`);
- grants: every restored relation, sequence, routine, type and schema first has its
  grants set back to PostgreSQL's built-in default (revoking what the target's ``ALTER
  DEFAULT PRIVILEGES`` gave it when it was created), then gets the dump's grants, so it
  ends with exactly the source's (skipped with ``--no-owner``);
- foreign keys, each in a block of its own: the keys of other tables dropped before,
  with their definition in the target, and the dump's keys that join a restored table to
  one that exists in the target (:attr:`Selection.keys`).  A key the restored rows no
  longer satisfy is added ``NOT VALID`` (PostgreSQL enforces it for new rows, not for the
  rows there); :func:`keys_not_valid` finds those once the transaction is committed, and
  the restore ends with :class:`~strongroom_postgres.errors.ForeignKeysNotValid`.
"""

from __future__ import annotations

import json
import re

import attrs

from .selection import RELATIONS, Selection
from .server import Server, quote_ident, quote_literal

_ADD = re.compile(r'^ALTER TABLE (?:ONLY )?(.+?)\s+ADD CONSTRAINT ("(?:[^"]|"")+"|\S+) ', re.S)


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


@attrs.frozen
class ForeignKey:
    """A foreign key to add after the restore: ``ALTER TABLE {table} ADD CONSTRAINT ...``."""

    table: str  # the table, as SQL (schema-qualified, quoted where needed)
    name: str  # the constraint's name
    label: str  # schema.table.name, for messages
    statement: str  # the ALTER TABLE statement, without the final semicolon
    origin: str  # "target": a key of a table not restored; "point": from the dump

    @property
    def expects_valid(self) -> bool:
        return not self.statement.rstrip().upper().endswith("NOT VALID")

    def block(self) -> str:
        """A DO block that adds the key, or adds it NOT VALID when the rows violate it."""
        fallback = self.statement if not self.expects_valid else self.statement + " NOT VALID"
        return (f"DO $strongroom$ BEGIN EXECUTE {quote_literal(self.statement)};\n"
                f"EXCEPTION WHEN foreign_key_violation THEN EXECUTE {quote_literal(fallback)};\n"
                "END $strongroom$;\n")

    @classmethod
    def from_dump(cls, defn: str, namespace: str, tag: str) -> "ForeignKey | None":
        statement = " ".join(defn.split()).rstrip(";").rstrip()
        match = _ADD.match(statement)
        if match is None:
            return None
        name = _unquote(match.group(2))
        table = tag[: -len(name) - 1] if tag.endswith(" " + name) else tag
        return cls(match.group(1), name, f"{namespace}.{table}.{name}", statement, "point")


@attrs.frozen
class Partition:
    schema: str
    name: str
    parent_schema: str
    parent: str
    bound: str

    def detach(self) -> str:
        return (f"ALTER TABLE {quote_ident(self.parent_schema)}.{quote_ident(self.parent)}"
                f" DETACH PARTITION {quote_ident(self.schema)}.{quote_ident(self.name)};\n")

    def attach(self) -> str:
        return (f"ALTER TABLE {quote_ident(self.parent_schema)}.{quote_ident(self.parent)}"
                f" ATTACH PARTITION {quote_ident(self.schema)}.{quote_ident(self.name)} {self.bound}")


@attrs.frozen
class Replacement:
    """What a forced restore replaces in the target, and what it must keep."""

    relations: tuple[tuple[str, str, str], ...] = ()  # (schema, name, relkind) being replaced
    keys: tuple[ForeignKey, ...] = ()  # keys of tables not restored that reference them
    detached: tuple[Partition, ...] = ()  # replaced partitions of a table not restored
    kept: tuple[Partition, ...] = ()  # partitions not in the point, detached and kept

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(f"table {p.schema}.{p.name}: a partition of {p.parent_schema}.{p.parent} that is not in"
                     f" the point; detached and kept as a table (to attach it back: {p.attach()})"
                     for p in self.kept)


_INSPECT = """
with recursive rels as (
  select c.oid, c.relkind, n.nspname, c.relname from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  join json_array_elements({wanted}::json) w on w->>0 = n.nspname and w->>1 = c.relname),
referenced(oid) as (
  select oid from rels
  union
  select i.inhparent from pg_inherits i join referenced r on i.inhrelid = r.oid)
select json_build_object(
 'relations', (select coalesce(json_agg(json_build_array(nspname, relname, relkind)), '[]') from rels),
 'keys', (select coalesce(json_agg(json_build_array(n.nspname, c.relname, k.conname,
                                                    pg_get_constraintdef(k.oid)) order by k.oid), '[]')
          from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
          where k.contype = 'f' and k.conparentid = 0 and k.confrelid in (select oid from referenced)
            and k.conrelid not in (select oid from rels)),
 'parents', (select coalesce(json_agg(json_build_array(r.nspname, r.relname, pn.nspname, p.relname,
                                                       pg_get_expr(c.relpartbound, c.oid))), '[]')
             from rels r join pg_class c on c.oid = r.oid join pg_inherits i on i.inhrelid = r.oid
             join pg_class p on p.oid = i.inhparent join pg_namespace pn on pn.oid = p.relnamespace
             where c.relispartition and i.inhparent not in (select oid from rels)),
 'children', (select coalesce(json_agg(json_build_array(cn.nspname, c.relname, r.nspname, r.relname,
                                                        pg_get_expr(c.relpartbound, c.oid))), '[]')
              from rels r join pg_inherits i on i.inhparent = r.oid join pg_class c on c.oid = i.inhrelid
              join pg_namespace cn on cn.oid = c.relnamespace
              where c.relispartition and c.oid not in (select oid from rels)))
"""


def inspect_target(server: Server, dbname: str, relations: list[tuple[str, str]]) -> Replacement:
    """What replacing ``relations`` (which exist in ``dbname``) involves there."""
    if not relations:
        return Replacement()
    wanted = quote_literal(json.dumps([list(r) for r in relations]))
    doc = server.query(_INSPECT.replace("{wanted}", wanted), dbname)
    keys = tuple(
        ForeignKey(f"{quote_ident(s)}.{quote_ident(t)}", n, f"{s}.{t}.{n}",
                   f"ALTER TABLE {quote_ident(s)}.{quote_ident(t)} ADD CONSTRAINT {quote_ident(n)} {d}", "target")
        for s, t, n, d in doc["keys"])
    return Replacement(relations=tuple(tuple(r) for r in doc["relations"]), keys=keys,  # type: ignore[misc]
                       detached=tuple(Partition(*p) for p in doc["parents"]),
                       kept=tuple(Partition(*p) for p in doc["children"]))


_USERS = """
with recursive rels as (
  select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
  join json_array_elements({wanted}::json) w on w->>0 = n.nspname and w->>1 = c.relname),
users(oid) as (
  select oid from rels
  union
  select r.ev_class from pg_depend d join pg_rewrite r on r.oid = d.objid join users u on d.refobjid = u.oid
  where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass and r.ev_class <> u.oid)
select coalesce(json_agg(json_build_array(n.nspname, c.relname)), '[]') from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where c.oid in (select oid from users) and c.oid not in (select oid from rels)
"""


def views_using(server: Server, dbname: str, relations: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The views and materialized views of ``dbname`` that use ``relations``, directly or
    through one another."""
    if not relations:
        return []
    wanted = quote_literal(json.dumps([list(r) for r in relations]))
    return [tuple(r) for r in server.query(_USERS.replace("{wanted}", wanted), dbname)]  # type: ignore[misc]


def before_sql(replacement: Replacement) -> str:
    parts = [f"ALTER TABLE {k.table} DROP CONSTRAINT {quote_ident(k.name)};\n" for k in replacement.keys]
    parts += [p.detach() for p in replacement.detached + replacement.kept]
    for kind, keyword in (("v", "VIEW"), ("m", "MATERIALIZED VIEW"), ("f", "FOREIGN TABLE"), ("rp", "TABLE")):
        names = [f"{quote_ident(s)}.{quote_ident(n)}" for s, n, k in replacement.relations if k in kind]
        if names:
            parts.append(f"DROP {keyword} IF EXISTS {', '.join(names)};\n")
    return "".join(parts)


def keys_to_add(selection: Selection, replacement: Replacement) -> list[ForeignKey]:
    """The target's dropped keys, then the dump's keys to tables in the target (one per name)."""
    keys = list(replacement.keys)
    seen = {k.label for k in keys}
    for entry in selection.keys:
        key = ForeignKey.from_dump(entry.defn, entry.namespace, entry.tag)
        if key is not None and key.label not in seen:
            seen.add(key.label)
            keys.append(key)
    return keys


_RESET_GRANTS = """DO $strongroom$ DECLARE r record; g record; BEGIN
FOR r IN
  SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind, c.oid::regclass::text AS name,
         c.relacl AS acl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner) AS def
  FROM pg_class c WHERE c.relacl IS NOT NULL
   AND c.oid IN (SELECT to_regclass(x) FROM json_array_elements_text({relations}::json) x)
  UNION ALL
  SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, p.oid::regprocedure::text,
         p.proacl, acldefault('f', p.proowner)
  FROM pg_proc p WHERE p.proacl IS NOT NULL
   AND p.oid IN (SELECT to_regprocedure(x) FROM json_array_elements_text({routines}::json) x)
  UNION ALL
  SELECT 'TYPE', t.oid::regtype::text, t.typacl, acldefault('T', t.typowner)
  FROM pg_type t WHERE t.typacl IS NOT NULL
   AND t.oid IN (SELECT to_regtype(x) FROM json_array_elements_text({types}::json) x)
  UNION ALL
  SELECT 'SCHEMA', quote_ident(n.nspname), n.nspacl, acldefault('n', n.nspowner)
  FROM pg_namespace n WHERE n.nspacl IS NOT NULL
   AND n.nspname IN (SELECT x FROM json_array_elements_text({schemas}::json) x)
LOOP
  FOR g IN SELECT DISTINCT grantee FROM aclexplode(r.acl) LOOP
    EXECUTE format('REVOKE ALL ON %s %s FROM %s', r.kind, r.name,
                   CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END);
  END LOOP;
  FOR g IN SELECT grantee, privilege_type FROM aclexplode(r.def) LOOP
    EXECUTE format('GRANT %s ON %s %s TO %s', g.privilege_type, r.kind, r.name,
                   CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END);
  END LOOP;
END LOOP; END $strongroom$;
"""
ROUTINES = frozenset({"FUNCTION", "PROCEDURE", "AGGREGATE"})
TYPES = frozenset({"TYPE", "DOMAIN"})


def _routine(namespace: str, tag: str) -> str:
    """``schema.name(args)`` from a routine's TOC tag ``name(args)`` (its types as SQL)."""
    name, _, args = tag.partition("(")
    return f"{quote_ident(namespace)}.{quote_ident(name)}({args}"


def reset_grants_sql(selection: Selection) -> str:
    """SQL that sets the grants of every restored relation, routine, type and schema to the
    built-in default (what the target's default privileges added is revoked), before the
    point's grants are applied."""
    def qualified(e) -> str:
        return f"{quote_ident(e.namespace)}.{quote_ident(e.tag)}"

    lists = {
        "relations": [qualified(e) for e in selection.entries if e.desc in RELATIONS | {"SEQUENCE"}],
        "routines": [_routine(e.namespace, e.tag) for e in selection.entries if e.desc in ROUTINES],
        "types": [qualified(e) for e in selection.entries if e.desc in TYPES],
        "schemas": [e.tag for e in selection.entries if e.desc == "SCHEMA"],
    }
    if not any(lists.values()):
        return ""
    sql = _RESET_GRANTS
    for key, names in lists.items():
        sql = sql.replace("{" + key + "}", quote_literal(json.dumps(names)))
    return sql


def after_sql(selection: Selection, keys: list[ForeignKey], grants: bool) -> str:
    parts = ["SELECT pg_catalog.set_config('search_path', '', false);\n"]
    if grants:
        parts.append(reset_grants_sql(selection))
        parts += [_statement(e.defn) for e in selection.entries if e.desc == "ACL"]
    parts += [_statement(e.defn) for e in selection.attach]
    parts += [k.block() for k in keys]
    return "".join(parts)


def _statement(defn: str) -> str:
    return defn if defn.endswith("\n") else defn + "\n"


def keys_not_valid(server: Server, dbname: str, keys: list[ForeignKey]) -> list[ForeignKey]:
    """The keys of ``keys`` that should be valid but are NOT VALID in ``dbname``."""
    wanted = [[k.table, k.name] for k in keys if k.expects_valid]
    if not wanted:
        return []
    rows = server.query(
        "select coalesce(json_agg(json_build_array(w->>0, w->>1)), '[]')"
        f" from json_array_elements({quote_literal(json.dumps(wanted))}::json) w"
        " join pg_constraint k on k.conrelid = to_regclass(w->>0) and k.conname = w->>1"
        " where not k.convalidated", dbname)
    bad = {tuple(r) for r in rows}
    return [k for k in keys if (k.table, k.name) in bad]
