"""Restore one database of a point into a server: whole, or some schemas and tables.

**Never over existing data unless forced.**

- *Whole database* into ``--to-database NAME``: when ``NAME`` does not exist it is
  created (the point's encoding and locale, from ``template0``) and the dump restored
  into it; a failed restore drops it again.  When it exists, the restore is refused
  (:class:`~strongroom.errors.DatabaseExists`) unless ``--force``: then the dump is
  restored into a new database under a temporary name, and only when that succeeded is
  the old database renamed away, the new one renamed to ``NAME``, and the old one
  dropped; a failed restore leaves ``NAME`` as it was.  A database with open connections
  is not replaced.
- *Schemas and tables* (``--schema``, ``--table``): the TOC entries that bring them back
  completely (see :mod:`.selection`) are restored in one transaction: ``pg_restore -L
  list -f -`` writes their SQL, which ``psql`` runs between what :mod:`.replace` adds
  before and after (:mod:`.script`), so a failure changes nothing.  The target database
  may exist (the usual case: the original database, after a table was dropped) or is
  created (and dropped on failure).  Relations that already exist in it are refused
  (:class:`~strongroom_postgres.errors.ObjectsExist`) unless ``--force``, which replaces
  them: the views of the target that use them are replaced too when the point has them,
  the foreign keys of other tables that reference them are dropped and added back, a
  partition is detached and attached again (:mod:`.replace`).  Foreign keys to tables
  the target has are added back; one the restored rows break is added ``NOT VALID`` and
  the restore ends with :class:`~strongroom_postgres.errors.ForeignKeysNotValid`, naming
  it.  The restored relations get exactly the grants of the source.

**Parallel, straight from the vault.**  A whole database from a point with a block map
(``databases/<db>.blocks``, written by every backup since maps exist: :mod:`.blockmap`)
is restored by :mod:`.parallel`: pre-data from the dump's table of contents (written to
the temporary folder, a few KiB to MiB), then the tables loaded by ``--jobs N`` (default
:data:`DEFAULT_JOBS`: 2) ``pg_restore`` processes at once, each fed its tables' blocks
read straight from the vault (no copy of the dump on disk), largest first, then
post-data with ``pg_restore -j N`` (indexes and constraints in parallel).

**Points without a map** (made before maps existed, or whose map does not fit the dump)
restore as before: by default the dump is streamed from the vault into one
``pg_restore``'s standard input (a Unix socket, as the loaders'; no temporary copy);
``--jobs N`` (N > 1) first writes the dump to a temporary file (``$TMPDIR``; as large as
the dump) with the core's pack-planned restorer, then runs ``pg_restore -j N`` on it; the
file is removed afterwards.

``--no-owner`` restores without owners and grants (everything belongs to the user
strongroom connects as): use it on a server that lacks the point's roles.

**Nothing is left behind by an interrupted restore.**  Each ``pg_restore`` runs as a child
tied to strongroom (:func:`strongroom.start_child`): it gets SIGTERM when strongroom
ends, even by SIGKILL, and the server rolls back what its connection was doing.  A
database the restore creates (the new ``--to-database``, or the temporary
``strongroom_restore_<hex>``) carries the comment ``strongroom restore in progress:
host=H process=P`` until the restore is complete; SIGTERM and Ctrl-C drop it at once,
and every restore first drops the databases of its server so marked by a process of this
host that is gone (a warning names each).  The temporary folder is
``$TMPDIR/strongroom-pg-<process>-*``; every restore first removes those of processes
that are gone.  Marks of other hosts are left alone: their processes cannot be checked
from here.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from typing import Sequence

import attrs
from strongroom import (
    Entry, PointContext, ProcessId, RestoreResult, RestoreStats, UsageError, run_child, start_child,
)

from . import server as pgserver
from .conninfo import Connection
from .errors import (
    DatabaseExists, ForeignKeysNotValid, NotInDump, ObjectsExist, PostgresError, PostgresRestoreFailed,
)
from .blockmap import BlockMap, blocks_path, parse_map
from .feed import read_dump_toc
from .layout import DatabaseRecord, Manifest, dump_entry
from .parallel import MapDoesNotFit, input_socket, restore_with_map
from .replace import (
    ForeignKey, Replacement, after_sql, before_sql, inspect_target, keys_not_valid, keys_to_add, views_using,
)
from .script import run_script
from .selection import DECORATIONS, EXCLUDED, PARTS, RELATIONS, Planner, Selection, split_table
from .server import Server, quote_ident, quote_literal


WORKDIR_PREFIX = "strongroom-pg-"
MARK_PREFIX = "strongroom restore in progress: "
_MARK = re.compile(r"^strongroom restore in progress: host=(\S+) process=(\S+)$")
DRAIN_SECONDS = 10.0  # how long a dropped database's last connections may take to close
#: Parallel loads of a whole-database restore from a point with block maps, unless --jobs says.
DEFAULT_JOBS = 2


def _mark_text(process: ProcessId) -> str:
    return f"{MARK_PREFIX}host={process.host} process={process.tag}"


def remove_stale_workdirs() -> list[str]:
    """Remove the temporary folders of restores whose process is gone; returns their paths."""
    base = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(base) if n.startswith(WORKDIR_PREFIX)]
    except OSError:
        return []
    removed = []
    for name in names:
        owner = ProcessId.from_tag(name[len(WORKDIR_PREFIX):].rpartition("-")[0])
        if owner is not None and owner.is_gone():
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            removed.append(os.path.join(base, name))
    return removed


@attrs.frozen
class Request:
    """What to restore: one database of the point, where, and which part of it."""

    record: DatabaseRecord
    target: str
    schemas: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    force: bool = False
    no_owner: bool = False
    jobs: int = 0  # 0: the default (DEFAULT_JOBS with a block map, else one streaming pg_restore)

    @property
    def item_level(self) -> bool:
        return bool(self.schemas or self.tables)


class DatabaseRestore:
    def __init__(self, ctx: PointContext, manifest: Manifest, conn: Connection, request: Request,
                 *, bindir: str | None = None) -> None:
        self.ctx = ctx
        self.manifest = manifest
        self.conn = conn
        self.request = request
        self.tools = pgserver.for_dump(manifest.dump_version, bindir)
        self.server = Server(conn, self.tools)
        self.stats = RestoreStats()
        self.warnings: list[str] = []
        self.notes: list[str] = []

    # --- planning ----------------------------------------------------------------------

    def _point_where(self) -> str:
        return f"database '{self.request.record.name}' of recovery point {self.ctx.point.short_id}"

    def _roots(self, planner: Planner) -> set[int]:
        roots: set[int] = set()
        for spec in self.request.tables:
            schema, name = split_table(spec)
            found = planner.find_relation(schema, name)
            if not found:
                raise NotInDump(kind="Table", name=spec, where=self._point_where())
            if len(found) > 1:
                names = ", ".join(f"{e.namespace}.{e.tag}" for e in found)
                raise UsageError(message=f"table '{spec}' is ambiguous ({names}): give SCHEMA.TABLE")
            roots.add(found[0].dump_id)
        known = planner.schemas()
        for schema in self.request.schemas:
            if schema not in known:
                raise NotInDump(kind="Schema", name=schema, where=self._point_where())
            roots.update(e.dump_id for e in planner.toc.entries if e.namespace == schema
                         and (e.desc == "SEQUENCE" or e.desc not in PARTS | DECORATIONS | EXCLUDED))
        return roots

    def _selection(self, planner: Planner, roots: set[int], target_exists: bool) -> Selection:
        draft = planner.plan(roots, set())
        needed = sorted({e.namespace for e in draft.entries if e.namespace} | set(self.request.schemas))
        present = self.server.existing_schemas(self.request.target, needed) if target_exists else {"public"}
        existing: frozenset[tuple[str, str]] = frozenset()
        if target_exists:
            names = list(dict.fromkeys((e.namespace, e.tag) for e in planner.toc.entries if e.desc in RELATIONS))
            existing = frozenset(self.server.existing_relations(self.request.target, names))
        return planner.plan(roots, set(needed) - present, existing)

    # --- running -----------------------------------------------------------------------

    def run(self) -> RestoreResult:
        started = time.monotonic()
        request = self.request
        remove_stale_workdirs()
        exists = self._drop_leftovers(request.target)
        entry = dump_entry(self.ctx, request.record)
        if request.item_level:
            toc, _ = read_dump_toc(self.ctx, request.record)
            planner = Planner(toc)
            roots = self._roots(planner)
            selection = self._selection(planner, roots, exists)
            replacement = Replacement()
            if exists:
                clash = self.server.existing_relations(request.target, list(selection.relations))
                if clash and not request.force:
                    raise ObjectsExist(database=request.target,
                                       objects=", ".join(f"{s}.{n}" for s, n in clash))
                users = self._views_to_replace(planner, clash, roots)
                if users:
                    roots |= users
                    selection = self._selection(planner, roots, exists)
                    clash = self.server.existing_relations(request.target, list(selection.relations))
                replacement = inspect_target(self.server, request.target, clash)
            self.warnings.extend(selection.warnings + replacement.warnings)
            keys = keys_to_add(selection, replacement)
            created = None if exists else self._create(request.target)
            self._restore(request.target, entry, created, selection=selection, replacement=replacement, keys=keys)
            if created is not None:
                self._unmark(created)
            self._check_keys(keys)
        else:
            if exists and not request.force:
                raise DatabaseExists(database=request.target, server=self.conn.describe())
            if exists:
                self._check_idle(request.target)
                build = f"strongroom_restore_{secrets.token_hex(6)}"
            else:
                build = request.target
            self._create(build)
            self._restore(build, entry, build)
            if build != request.target:
                self._swap(build, request.target)
            self._unmark(request.target)
        self.stats.files = 1
        self.stats.seconds = round(time.monotonic() - started, 3)
        what = "schemas and tables" if request.item_level else "database"
        summary = (
            f"Restored {what} of '{request.record.name}' into database '{request.target}'"
            f" on {self.conn.describe()} in {self.stats.seconds:.1f} s"
        )
        return RestoreResult(self.stats, (), (), tuple(self.warnings), summary=summary + "".join(self.notes))

    def _views_to_replace(self, planner: Planner, clash: list[tuple[str, str]], roots: set[int]) -> set[int]:
        """The dump ids of the views of the target that use replaced relations and that the
        point has (they are replaced too; those it lacks make the restore fail, naming them)."""
        found: set[int] = set()
        for schema, name in views_using(self.server, self.request.target, clash):
            entries = [e for e in planner.find_relation(schema, name) if e.dump_id not in roots]
            found.update(e.dump_id for e in entries[:1])
        if found:
            names = ", ".join(f"{planner.by_id[i].namespace}.{planner.by_id[i].tag}" for i in sorted(found))
            self.notes.append(f"; views that use them replaced from the point too: {names}")
        return found

    def _check_keys(self, keys: list[ForeignKey]) -> None:
        """Say which foreign keys were added back; fail on those the rows break."""
        dropped = [k.label for k in keys if k.origin == "target"]
        added = [k.label for k in keys if k.origin == "point"]
        if dropped:
            self.notes.append(f"; foreign keys of other tables dropped and added back: {', '.join(dropped)}")
        if added:
            self.notes.append(f"; foreign keys to tables in the target added back: {', '.join(added)}")
        broken = keys_not_valid(self.server, self.request.target, keys)
        if broken:
            raise ForeignKeysNotValid(
                database=self.request.target, keys=", ".join(k.label for k in broken),
                validate="; ".join(f"ALTER TABLE {k.table} VALIDATE CONSTRAINT {quote_ident(k.name)}" for k in broken))

    def _create(self, name: str) -> str:
        record = self.request.record
        base = f"create database {quote_ident(name)} template template0"
        if record.encoding:
            base += f" encoding {quote_literal(record.encoding)}"
        locale = ""
        if record.collate and record.ctype:
            locale = f" lc_collate {quote_literal(record.collate)} lc_ctype {quote_literal(record.ctype)}"
        if record.locale_provider == "i" and record.icu_locale and self._server_major() >= 15:
            locale += f" locale_provider icu icu_locale {quote_literal(record.icu_locale)}"
        mark = f"comment on database {quote_ident(name)} is {quote_literal(_mark_text(self.process))}"
        try:  # created and marked through one connection
            done, error = self.server.execute_each([base + locale, mark])
            if error is not None and not done and locale and "locale" in str(error).lower():
                done, error = self.server.execute_each([base, mark])
                if done:
                    self.warnings.append(f"database {name}: created with the server's default locale"
                                         f" ({record.collate or record.icu_locale} is not available there)")
        except BaseException:  # interrupted: the database may have been created, not yet marked
            self._drop_if_unmarked(name)
            raise
        if error is not None:
            if done:  # created, not marked
                self._drop(name)
            raise error
        return name

    def _drop_if_unmarked(self, name: str) -> None:
        """Drop ``name`` if it exists without a comment or with this restore's mark (the
        state an interrupted :meth:`_create` leaves; the name did not exist before)."""
        try:
            comment = self.server.query(
                "select to_json(coalesce(shobj_description(oid, 'pg_database'), '')) from pg_database"
                f" where datname = {quote_literal(name)}")  # None: no such database
        except PostgresError:
            return
        if comment in ("", _mark_text(self.process)):
            self._drop(name)

    @property
    def process(self) -> ProcessId:
        return ProcessId.current()

    def _unmark(self, name: str) -> None:
        self.server.execute(f"comment on database {quote_ident(name)} is null")

    def _drop_leftovers(self, target: str) -> bool:
        """Drop the databases marked by restores of this host whose process is gone; returns
        whether ``target`` exists afterwards (asked in the same query)."""
        found = self.server.query(
            "select json_build_object('exists', exists(select from pg_database where datname ="
            f" {quote_literal(target)}), 'marked', (select coalesce(json_agg(json_build_array(datname, d)), '[]') from"
            " (select datname, shobj_description(oid, 'pg_database') as d from pg_database) s"
            f" where d like {quote_literal(MARK_PREFIX + '%')}))")
        exists = bool(found["exists"])
        host = self.process.host
        for name, text in found["marked"]:
            match = _MARK.match(text or "")
            owner = ProcessId.from_tag(match.group(2)) if match and match.group(1) == host else None
            if owner is not None and owner.is_gone():
                if self._drop(name):
                    self.warnings.append(f"database {name}: dropped, left half-restored by an interrupted"
                                         f" restore (process {owner.pid})")
                    exists = exists and name != target
        return exists

    def _server_major(self) -> int:
        return pgserver.major_of(int(self.server.query("select to_json(current_setting('server_version_num')::int)")))

    def _check_idle(self, name: str) -> None:
        count = self.server.connections_to(name)
        if count:
            raise PostgresError(message=f"database '{name}' has {count} open connection(s):"
                                        " close them before replacing it")

    def _swap(self, build: str, target: str) -> None:
        old = f"strongroom_old_{secrets.token_hex(6)}"
        try:
            self._check_idle(target)
            self.server.execute(f"alter database {quote_ident(target)} rename to {quote_ident(old)}")
        except PostgresError as exc:
            self._drop(build)
            raise PostgresRestoreFailed(database=target, reason=f"cannot replace it ({exc})",
                                        cleanup="it was left as it was") from None
        self.server.execute(f"alter database {quote_ident(build)} rename to {quote_ident(target)}")
        self.server.execute(f"drop database {quote_ident(old)}")

    def _drop(self, name: str) -> bool:
        """Drop a database this restore (or an interrupted one) created, once the
        connections of its ``pg_restore`` are closed; a failure is a warning."""
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            while self.server.connections_to(name) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.server.execute(f"drop database if exists {quote_ident(name)}")
        except PostgresError as exc:
            self.warnings.append(f"database {name}: could not be dropped ({exc})")
            return False
        return True

    def _restore(self, dbname: str, entry: Entry, created: str | None, *, selection: Selection | None = None,
                 replacement: Replacement | None = None, keys: list[ForeignKey] | None = None) -> None:
        argv = [self.tools.path("pg_restore"), "--no-password", "--exit-on-error",
                f"--dbname={self.conn.conninfo(dbname)}"]
        if self.request.no_owner:
            argv += ["--no-owner", "--no-privileges"]
        workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{self.process.tag}-")
        try:
            if selection is not None:
                failure = self._run_script(dbname, entry, workdir, selection, replacement or Replacement(), keys or [])
            else:
                failure = self._run(argv, entry, workdir)
        except BaseException:
            if created is not None:
                self._drop(created)
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if failure is not None:
            if created is not None:
                self._drop(created)
                cleanup = "the new database was dropped"
            else:
                cleanup = "nothing was changed: the restore ran in one transaction"
            raise PostgresRestoreFailed(database=self.request.target, reason=failure, cleanup=cleanup)

    def _run(self, argv: list[str], entry: Entry, workdir: str) -> str | None:
        blockmap = self._block_map(entry)
        if blockmap is not None:
            try:
                return self._run_with_map(argv, entry, blockmap, workdir)
            except MapDoesNotFit:
                pass  # restored as a point without a map
        if self.request.jobs > 1:
            return self._run_parallel(argv, workdir)
        return self._run_streaming(argv, entry)

    def _block_map(self, entry: Entry) -> BlockMap | None:
        """The dump's block map, when the point has a usable one that fits the dump
        (points made before maps existed have none: they restore as before)."""
        path = blocks_path(self.request.record.entry)
        if not self.ctx.exists(path):
            return None
        blockmap = parse_map(self.ctx.read_bytes(path))
        if blockmap is None or blockmap.size != entry.size:
            return None
        return blockmap

    def _run_with_map(self, argv: list[str], entry: Entry, blockmap: BlockMap, workdir: str) -> str | None:
        """Pre-data, then the tables loaded in parallel straight from the vault, then
        post-data with ``pg_restore -j`` (:mod:`.parallel`)."""
        def progress(done: int) -> None:
            self.stats.bytes_written = done
            self.ctx.report_progress(self.stats)

        failure = restore_with_map(self.ctx, entry, blockmap, pg_restore=argv, env=self.conn.environment(),
                                   workdir=workdir, jobs=self.request.jobs or DEFAULT_JOBS, progress=progress)
        if failure is not None:
            return pgserver.tool_error(failure)
        self.stats.bytes_written = entry.size
        return None

    def _run_script(self, dbname: str, entry: Entry, workdir: str, selection: Selection,
                    replacement: Replacement, keys: list[ForeignKey]) -> str | None:
        """The selection's script from ``pg_restore``, between our SQL, in one transaction
        (:mod:`.script`, :mod:`.replace`)."""
        grants = not self.request.no_owner
        listing = os.path.join(workdir, "restore.list")
        with open(listing, "w", encoding="utf-8") as fh:
            fh.write(selection.list_file(frozenset({"ACL"}) if grants else frozenset()))
        restore = [self.tools.path("pg_restore"), f"--use-list={listing}", "--file=-"]
        if self.request.no_owner:
            restore += ["--no-owner", "--no-privileges"]
        if replacement.relations:
            restore += ["--clean", "--if-exists"]
        psql = [self.tools.path("psql"), "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1",
                "-d", self.conn.conninfo(dbname)]

        def progress(done: int) -> None:
            self.stats.bytes_written = done
            self.ctx.report_progress(self.stats)

        failure = run_script(self.ctx, entry, restore, psql, self.conn.environment(), before_sql(replacement),
                             after_sql(selection, keys, grants), progress)
        if failure is None:
            self.stats.bytes_written = entry.size
        return failure

    def _run_streaming(self, argv: list[str], entry: Entry) -> str | None:
        ours, theirs = input_socket()
        with tempfile.TemporaryFile() as stderr, ours:
            with theirs:
                proc = start_child(argv, env=self.conn.environment(), stdin=theirs,
                                   stdout=subprocess.DEVNULL, stderr=stderr)

            def progress(done: int) -> None:
                self.stats.bytes_written = done
                self.ctx.report_progress(self.stats)

            try:
                with ours.makefile("wb") as out:
                    self.ctx.write_stream(entry, out, progress=progress)  # type: ignore[arg-type]
                ours.close()  # the end of pg_restore's input
            except (BrokenPipeError, ConnectionResetError):
                pass  # pg_restore stopped reading: it had what it needed, or it failed
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            code = proc.wait()
            stderr.seek(0)
            text = stderr.read(64 * 1024).decode("utf-8", "replace")
        if code != 0:
            return pgserver.tool_error(text)
        self.stats.bytes_written = entry.size  # the dump, restored (pg_restore may stop reading early)
        return None

    def _run_parallel(self, argv: list[str], workdir: str) -> str | None:
        record = self.request.record
        result = self.ctx.restore_paths(workdir, [record.entry])
        if result.errors:
            return "; ".join(result.errors[:3])
        self.stats.bytes_written = result.stats.bytes_written
        path = os.path.join(workdir, *record.entry.split("/"))
        done = run_child(argv + [f"--jobs={self.request.jobs}", path], env=self.conn.environment(),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return pgserver.tool_error(done.stderr.decode("utf-8", "replace")) if done.returncode else None


def restore_database(ctx: PointContext, manifest: Manifest, conn: Connection, request: Request,
                     bindir: str | None) -> RestoreResult:
    return DatabaseRestore(ctx, manifest, conn, request, bindir=bindir).run()


def restore_files(ctx: PointContext, target: str, paths: Sequence[str]) -> RestoreResult:
    """Restore as files: the dumps, globals and manifest, usable with plain pg_restore."""
    return ctx.restore_paths(target, paths)
