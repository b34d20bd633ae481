"""The PostgreSQL client tools and the queries strongroom runs through ``psql``.

**Tools.**  ``pg_dump`` can dump servers of its own major version or older (down to
9.2), never newer; ``pg_restore`` reads archives written by its own major version or
older.  :func:`find_toolsets` looks for the tools in ``--bindir`` when given, else in
``/usr/lib/postgresql/*/bin`` (Debian, Ubuntu), ``/usr/pgsql-*/bin`` (RHEL),
``/usr/local/pgsql/bin``, ``pg_config --bindir`` and ``PATH``; :func:`for_server` and
:func:`for_dump` pick the set of the wanted major version, else the nearest newer one,
else fail with :class:`~strongroom.errors.PostgresToolsMismatch` saying what to install.
Candidates are probed in that order and only until a set of the wanted major version
is found (:func:`iter_toolsets`).

**Queries.**  :class:`Server` runs ``psql -X -A -t -w`` with one statement and reads a
JSON answer, so names with any characters come back intact.  Failures become one-line
errors: :class:`~strongroom.errors.PostgresConnectFailed` (unreachable, wrong password),
:class:`~strongroom.errors.DatabaseNotFound`, or
:class:`~strongroom.errors.PostgresError` with the server's message.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
import shutil
import subprocess
from typing import Any, Iterable, Iterator

import attrs
from strongroom import run_child

from .conninfo import Connection
from .errors import DatabaseNotFound, PostgresConnectFailed, PostgresError, PostgresToolsMismatch

OLDEST_SERVER = 90200
TOOLS = ("pg_dump", "pg_dumpall", "pg_restore", "psql")
# patterns as text: compiled (and cached by re) at their first use, not by every command's start
_VERSION = r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?"
_DONE = "strongroom-statement-done "  # what psql echoes after each statement of Server.execute_each
_CONNECT_PREFIX = r'^connection to server (?:at|on) .*? failed:\s*'


@attrs.frozen
class Toolset:
    """The client tools of one PostgreSQL installation."""

    bindir: str
    version: str  # "15.18"
    major: int

    def path(self, tool: str) -> str:
        return os.path.join(self.bindir, tool)


@functools.lru_cache(maxsize=32)
def _probe(bindir: str) -> Toolset | None:
    if not all(os.access(os.path.join(bindir, t), os.X_OK) for t in TOOLS):
        return None
    try:
        out = run_child([os.path.join(bindir, "pg_dump"), "--version"], capture_output=True,
                        text=True, timeout=30, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(_VERSION, out)
    if not match:
        return None
    major = int(match.group(1))
    version = f"{major}.{match.group(2)}" if match.group(2) else str(major)
    return Toolset(bindir, version, major)


def _candidate_dirs() -> Iterable[str]:
    def newest_first(pattern: str) -> list[str]:
        found = glob.glob(pattern)
        return sorted(found, key=lambda p: [int(x) for x in re.findall(r"\d+", p)] or [0], reverse=True)

    yield from newest_first("/usr/lib/postgresql/*/bin")
    yield from newest_first("/usr/pgsql-*/bin")
    yield "/usr/local/pgsql/bin"
    try:
        out = run_child(["pg_config", "--bindir"], capture_output=True, text=True, timeout=30,
                        stdin=subprocess.DEVNULL)
        if out.returncode == 0:
            yield out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    found = shutil.which("pg_dump")
    if found:
        yield os.path.dirname(found)


def iter_toolsets(bindir: str | None = None) -> Iterator[Toolset]:
    """Installed tool sets (only ``bindir``'s when given), first found first, each probed
    only when the caller asks for it (probing runs ``pg_dump --version``; the ``/usr/bin``
    wrapper of Debian's postgresql-common alone takes tens of milliseconds)."""
    if bindir:
        toolset = _probe(os.path.abspath(bindir))
        if toolset is None:
            raise PostgresToolsMismatch(
                tool="--bindir", tool_version=bindir, action="be used",
                hint=f"it needs working {', '.join(TOOLS)}")
        yield toolset
        return
    seen: set[str] = set()
    found = False
    for directory in _candidate_dirs():
        real = os.path.realpath(directory)
        if real in seen:
            continue
        seen.add(real)
        toolset = _probe(directory)
        if toolset is not None:
            found = True
            yield toolset
    if not found:
        raise PostgresToolsMismatch(
            tool="strongroom", tool_version="postgres", action="find the PostgreSQL client tools",
            hint="install them (Debian: apt-get install postgresql-client) or pass --bindir")


def find_toolsets(bindir: str | None = None) -> list[Toolset]:
    """Every installed tool set (only ``bindir``'s when given), first found first."""
    return list(iter_toolsets(bindir))


def first_toolset(bindir: str | None = None) -> Toolset:
    """The first tool set found (``bindir``'s when given), without probing the others."""
    return next(iter_toolsets(bindir))


def _pick(found: Iterable[Toolset], major: int) -> tuple[Toolset | None, list[Toolset]]:
    """The first set of ``major`` (probing stops there), else the nearest newer one; and the
    sets probed."""
    sets: list[Toolset] = []
    for toolset in found:
        if toolset.major == major:
            return toolset, sets + [toolset]
        sets.append(toolset)
    newer = sorted((s for s in sets if s.major > major), key=lambda s: s.major)
    return (newer[0] if newer else None), sets


def major_of(version_num: int) -> int:
    return version_num // 10000 if version_num >= 100000 else version_num // 100


def for_server(version_num: int, version: str, address: str, bindir: str | None) -> Toolset:
    """Tools that can dump a server of ``version_num`` (``server_version_num``)."""
    if version_num < OLDEST_SERVER:
        best = max(find_toolsets(bindir), key=lambda s: s.major)
        raise PostgresToolsMismatch(
            tool="pg_dump", tool_version=best.version, action=f"dump PostgreSQL {version} at {address}",
            hint="servers older than 9.2 are not supported")
    major = major_of(version_num)
    chosen, sets = _pick(iter_toolsets(bindir), major)
    if chosen is None:
        best = max(sets, key=lambda s: s.major)
        raise PostgresToolsMismatch(
            tool="pg_dump", tool_version=best.version, action=f"dump PostgreSQL {version} at {address}",
            hint=f"pg_dump must be of major version {major} or newer; install the PostgreSQL {major}"
                 f" client tools (Debian: postgresql-client-{major}) or pass --bindir")
    return chosen


def for_dump(dump_version: str, bindir: str | None) -> Toolset:
    """Tools whose pg_restore reads a dump made by pg_dump ``dump_version``."""
    match = re.match(r"(\d+)", dump_version or "")
    major = int(match.group(1)) if match else 0
    chosen, sets = _pick(iter_toolsets(bindir), major)
    if chosen is None:
        best = max(sets, key=lambda s: s.major)
        raise PostgresToolsMismatch(
            tool="pg_restore", tool_version=best.version, action=f"read a dump made by pg_dump {dump_version}",
            hint=f"install the PostgreSQL {major} client tools (Debian: postgresql-client-{major})"
                 " or pass --bindir")
    return chosen


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def tool_error(stderr: str) -> str:
    """The one line of a tool's error output that says what went wrong, with the cause
    the tool gives on a line of its own (``pg_dump: detail: Error message from server:
    ...`` after ``PQgetCopyData() failed``, or the server's ``DETAIL:``)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if re.search(r"\b(error|FATAL|ERROR|fatal):", line):
            text = re.sub(r"^(pg_dump|pg_dumpall|pg_restore|psql)(:[^:\s]*:\d+)?(: error)?:\s*", "", line)
            for follow in lines[i + 1:i + 3]:
                cause = re.match(r"^(?:\w+: )?detail: Error message from server:\s*(.+)$", follow)
                if cause:
                    text = f"{text.rstrip('.')}: {cause.group(1)}"
                    break
                detail = re.match(r"^(?:psql:[^:\s]*:\d+: )?DETAIL:\s*(.+)$", follow)
                if detail:
                    text = f"{text} ({detail.group(1)})"
                    break
            return re.sub(r"\s+", " ", text)
    return re.sub(r"\s+", " ", lines[-1]) if lines else "no error message"


def connection_failure(stderr: str, conn: Connection, database: str | None) -> PostgresError:
    """The error a failed connection or query deserves."""
    line = tool_error(stderr)
    missing = re.search(r'database "(.*)" does not exist', line)
    if missing and (database is None or missing.group(1) == database):
        return DatabaseNotFound(database=missing.group(1), server=conn.describe())
    if re.match(_CONNECT_PREFIX, line) or "could not translate host name" in line:
        reason = re.sub(_CONNECT_PREFIX, "", line)
        reason = re.sub(r"^(FATAL|ERROR):\s*", "", reason)
        return PostgresConnectFailed(server=conn.describe(), reason=reason)
    return PostgresError(message=line)


@attrs.define
class Server:
    """Runs statements on one server through ``psql``."""

    conn: Connection
    tools: Toolset

    def _psql(self, sql: str, dbname: str) -> str:
        argv = [self.tools.path("psql"), "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
                "-d", self.conn.conninfo(dbname), "-c", sql]
        done = run_child(argv, env=self.conn.environment(), capture_output=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise connection_failure(done.stderr.decode("utf-8", "replace"), self.conn, dbname)
        return done.stdout.decode("utf-8", "replace")

    def maintenance_db(self) -> str:
        """The database to connect to for server-wide work (``dbname`` of the DSN, else postgres)."""
        return self.conn.maintenance_db or "postgres"

    def query(self, sql: str, dbname: str | None = None) -> Any:
        """The JSON value the one-row, one-column statement ``sql`` returns."""
        out = self._psql(sql, dbname or self.maintenance_db()).strip()
        return json.loads(out) if out else None

    def execute(self, sql: str, dbname: str | None = None) -> None:
        self._psql(sql, dbname or self.maintenance_db())

    def execute_each(self, statements: list[str], dbname: str | None = None) -> tuple[int, PostgresError | None]:
        """Run ``statements`` one after the other, each in its own transaction, through one
        ``psql`` (one connection instead of one each): (how many succeeded, the error of the
        one that failed or None).  The statements after a failed one are not run."""
        dbname = dbname or self.maintenance_db()
        argv = [self.tools.path("psql"), "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
                "-d", self.conn.conninfo(dbname)]
        for i, sql in enumerate(statements):
            argv += ["-c", sql, "-c", f"\\echo {_DONE}{i}"]
        done = run_child(argv, env=self.conn.environment(), capture_output=True, stdin=subprocess.DEVNULL)
        succeeded = sum(1 for line in done.stdout.decode("utf-8", "replace").splitlines() if line.startswith(_DONE))
        if done.returncode != 0:
            return succeeded, connection_failure(done.stderr.decode("utf-8", "replace"), self.conn, dbname)
        return succeeded, None

    def info(self) -> dict:
        """Version, current user and the databases (template0/template1 left out)."""
        return self.query(_INFO_SQL)

    def database_exists(self, name: str) -> bool:
        return bool(self.query(f"select to_json(exists(select from pg_database where datname = {quote_literal(name)}))"))

    def connections_to(self, name: str) -> int:
        return int(self.query(
            f"select to_json(count(*)) from pg_stat_activity where datname = {quote_literal(name)}"
            " and pid <> pg_backend_pid()") or 0)

    def existing_relations(self, dbname: str, names: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Which (schema, name) of ``names`` exist as relations in ``dbname``."""
        if not names:
            return []
        wanted = quote_literal(json.dumps([list(n) for n in names]))
        rows = self.query(
            "select coalesce(json_agg(json_build_array(n.nspname, c.relname)), '[]') from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace"
            f" join json_array_elements({wanted}::json) w on w->>0 = n.nspname and w->>1 = c.relname",
            dbname)
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def existing_schemas(self, dbname: str, names: list[str]) -> set[str]:
        if not names:
            return set()
        wanted = quote_literal(json.dumps(names))
        rows = self.query(
            "select coalesce(json_agg(nspname), '[]') from pg_namespace"
            f" where nspname in (select json_array_elements_text({wanted}::json))", dbname)
        return set(rows)


_INFO_SQL = """
select json_build_object(
  'version_num', current_setting('server_version_num')::int,
  'version', current_setting('server_version'),
  'user', current_user,
  'superuser', coalesce((select rolsuper from pg_roles where rolname = current_user), false),
  'databases', coalesce((
    select json_agg(json_build_object(
      'name', d.datname, 'owner', pg_get_userbyid(d.datdba),
      'encoding', pg_encoding_to_char(d.encoding), 'allow_connections', d.datallowconn,
      'size', case when has_database_privilege(d.oid, 'CONNECT') then pg_database_size(d.oid) end,
      'row', to_jsonb(d) - 'datacl') order by d.datname)
    from pg_database d where d.datname not in ('template0', 'template1')), '[]'))
"""
