"""A whole database restored in parallel straight from the vault with the dump's block map:
equal to the source (rows, schema, sequences, large objects, a LATIN1 encoding, generated
columns, row-level security, partitions); a damaged table block fails the restore and drops
the database; a point without a map restores through the old sequential path."""

from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pgshop import large_objects
from strongroom.errors import IntegrityError
from strongroom.repository.pack import pack_name
from strongroom.vault import Vault
from strongroom_postgres import parallel, restore as pgrestore
from strongroom_postgres.blockmap import BLOCK_BLOBS, BLOCK_DATA, BlockMap, BlockMapper, blocks_path, parse_map
from strongroom_postgres.errors import PostgresRestoreFailed
from strongroom_postgres.parallel import plan_loaders
from strongroom_postgres.toc import read_toc

SOURCE_SQL = r"""
create schema app;
create table app.big(id bigint primary key, qty int not null, price numeric(10,2) not null,
                     total numeric(12,2) generated always as (qty * price) stored, note text);
insert into app.big(id, qty, price, note)
  select g, g % 17, (g % 1000) / 10.0, 'caf' || chr(233) || ' ' || chr(255) || g from generate_series(1, 150000) g;
create table app.secret(id serial primary key, owner_name text not null, body text);
insert into app.secret(owner_name, body) select 'u' || (g % 3), 'secret ' || g from generate_series(1, 3000) g;
alter table app.secret enable row level security;
alter table app.secret force row level security;
create policy only_u0 on app.secret using (owner_name = 'u0');
create table app.parts(id int, at date, what text, primary key (id, at)) partition by range (at);
create table app.parts_a partition of app.parts for values from ('2024-01-01') to ('2025-01-01');
create table app.parts_b partition of app.parts for values from ('2025-01-01') to ('2026-01-01');
insert into app.parts select g, date '2024-01-01' + g % 700, 'part ' || g from generate_series(1, 8000) g;
create table app.child(id int primary key, big_id bigint references app.big(id));
insert into app.child select g, g from generate_series(1, 500) g;
create table app.empty(id int);
create sequence app.counter start 10;
select setval('app.counter', 4242);
select lo_from_bytea(0, convert_to(repeat('object ' || g, 500), 'LATIN1')) from generate_series(1, 3) g;
analyze;
"""


@pytest.fixture(scope="module")
def source(pg_cluster, tmp_path_factory):
    """A LATIN1 database ``par_src`` backed up once: (vault, point, url)."""
    pg_cluster.psql("create database par_src template template0 encoding 'LATIN1' lc_collate 'C' lc_ctype 'C'")
    pg_cluster.script(SOURCE_SQL, db="par_src")
    url = str(tmp_path_factory.mktemp("parvault") / "vault")
    vault = Vault.create(url, home=str(tmp_path_factory.mktemp("parhome")))
    vault.protect("postgres", "db", {
        "connection": {"params": {"host": pg_cluster.socket, "port": str(pg_cluster.port), "user": "postgres"}},
        "databases": ["par_src"]})
    point = vault.backup("db")
    yield vault, point, url
    pg_cluster.dropdb("par_src")


@pytest.fixture
def spy(monkeypatch):
    """The calls of the parallel restore (it still runs)."""
    calls = []
    real = parallel.restore_with_map

    def wrapper(*args, **kwargs):
        calls.append(kwargs.get("jobs"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pgrestore, "restore_with_map", wrapper)
    return calls


class Pieces(io.RawIOBase):
    """``data`` read at most ``size`` bytes at a time, however large the caller's buffer."""

    def __init__(self, data: bytes, size: int):
        self.data, self.pos, self.size = data, 0, size

    def readinto(self, buffer):
        n = min(self.size, len(buffer), len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def equal_to_source(cluster, db: str) -> None:
    tables = cluster.tables("par_src")
    assert len(tables) == 7 and cluster.tables(db) == tables
    for table in tables:
        assert cluster.table_digest(db, table) == cluster.table_digest("par_src", table), table
    assert cluster.table_digest(db, "app.big")[0] == 150000
    assert cluster.schema_dump(db) == cluster.schema_dump("par_src")
    assert cluster.psql("select last_value from app.counter", db) == "4242"
    sequences = "select string_agg(sequencename || '=' || coalesce(last_value, 0), ',' order by sequencename) from pg_sequences"
    assert cluster.psql(sequences, db) == cluster.psql(sequences, "par_src")
    assert large_objects(cluster, db) == large_objects(cluster, "par_src") and len(large_objects(cluster, db)) == 3
    assert cluster.psql("select pg_encoding_to_char(encoding) from pg_database where datname = current_database()",
                        db) == "LATIN1"
    assert cluster.psql("select relrowsecurity and relforcerowsecurity from pg_class where oid = 'app.secret'::regclass",
                        db) == "t"
    counts = ("select (select count(*) from pg_class where relnamespace = 'app'::regnamespace)"
              " || ',' || (select count(*) from pg_constraint where connamespace = 'app'::regnamespace)"
              " || ',' || (select count(*) from pg_policy)")
    assert cluster.psql(counts, db) == cluster.psql(counts, "par_src")


def test_the_point_holds_a_block_map_that_fits_the_dump(pg_cluster, source):
    """Beside the dump, a map whose blocks start with the block header of their TOC entry,
    one per table (and one for the large objects), and that shares the data among loaders."""
    vault, point, _ = source
    ctx = vault.point_view("db", point.point_id)
    entry = ctx.lookup("databases/par_src.dump")
    blockmap = parse_map(ctx.read_bytes(blocks_path("databases/par_src.dump")))
    assert blockmap is not None and blockmap.size == entry.size
    data = ctx.read_bytes(entry)
    toc = read_toc(io.BytesIO(data))
    by_id = toc.by_id()
    kinds = {}
    for dump_id, kind, start, end in blockmap.blocks:
        assert data[start] == kind and struct.unpack_from("<I", data, start + 2)[0] == dump_id
        kinds[by_id[dump_id].desc] = kinds.get(by_id[dump_id].desc, 0) + 1
        assert kind == (BLOCK_BLOBS if by_id[dump_id].desc == "BLOBS" else BLOCK_DATA)
    assert kinds == {"TABLE DATA": 6, "BLOBS": 1}  # app.parts has none: its rows are its partitions'
    biggest = max(blockmap.blocks, key=lambda b: b[3] - b[2])
    assert by_id[biggest[0]].tag == "big" and blockmap.cuts[biggest[0]]
    plan = plan_loaders(toc, blockmap, 2)
    assert len(plan) == 2  # app.big, most of the data, is cut in two: each loader loads a piece
    assert [piece[0] for piece in plan[0]].count(biggest[0]) == 1 == [p[0] for p in plan[1]].count(biggest[0])
    first, second = sorted((p for work in plan for p in work if p[0] == biggest[0]), key=lambda p: p[2])
    assert (first[1], first[2], second[3], second[4]) == (b"", biggest[2], biggest[3], b"")
    assert first[3] == second[2] and first[4] == bytes(5)
    assert second[1] == data[biggest[2]:biggest[2] + 6]  # the block's own header
    assert {p[0] for work in plan for p in work} == {
        e.dump_id for e in toc.entries if e.section == parallel.SECTION_DATA}
    assert len(plan_loaders(toc, blockmap, 1)) == 1 and len(plan_loaders(toc, blockmap, 1)[0]) == len(
        [e for e in toc.entries if e.section == parallel.SECTION_DATA])


def test_the_map_is_the_same_whatever_the_reads(pg_cluster, source):
    """The scan gives the same blocks when the dump comes in 7-byte pieces as in 1 MiB reads,
    and every cut it notes is the start of a chunk inside its block."""
    vault, point, _ = source
    data = vault.point_view("db", point.point_id).read_bytes("databases/par_src.dump")

    maps = []
    for size in (7, 1 << 20):
        mapper = BlockMapper(Pieces(data, size))
        buffer = bytearray(64 * 1024)
        while mapper.readinto(buffer):
            pass
        maps.append(mapper.wait(1))
    small, large = parse_map(maps[0]), parse_map(maps[1])
    assert small.blocks == large.blocks and large.cuts  # cuts are noted where a read ends inside a chunk
    for dump_id, cuts in large.cuts.items():
        start, end = large.by_id()[dump_id][2:]
        headers, pos = set(), start + 6
        while (length := struct.unpack_from("<I", data, pos + 1)[0]):
            headers.add(pos)
            pos += 5 + length
        assert pos == end - 5 and set(cuts) <= headers


def test_a_parallel_restore_equals_the_source(pg_cluster, source, spy):
    """The default restore loads the tables in parallel from the map (app.big in two pieces
    at once), and the copy equals the source."""
    vault, point, _ = source
    result = vault.restore("db", point.point_id, None, options={"to_database": "par_copy"})
    try:
        assert spy == [2]
        equal_to_source(pg_cluster, "par_copy")
        assert result.stats.bytes_written == vault.tree(point).lookup("databases/par_src.dump").size
    finally:
        pg_cluster.dropdb("par_copy")


def test_the_loaders_read_a_socket_with_a_large_buffer(pg_cluster, source, monkeypatch):
    """Each loader's standard input is one end of a Unix socket pair whose other end, ours,
    has the largest send buffer the system allows (so the writer is not woken at every
    4 KiB pg_restore reads, as on a pipe); the loaders start while pre-data runs (it is
    the first child), and our ends are closed when the restore is done."""
    vault, point, _ = source
    started, ours = [], []
    real_start, real_pair = parallel.start_child, socket.socketpair

    def spying(argv, **kwargs):
        option = next(a for a in argv if a.startswith(("--section", "--use-list"))).split("=")[0]
        buffer = ours[-1].getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) if option == "--use-list" else None
        started.append((option, isinstance(kwargs.get("stdin"), socket.socket), buffer))
        return real_start(argv, **kwargs)

    def pair(*args):
        pair = real_pair(*args)
        ours.append(pair[0])
        return pair

    monkeypatch.setattr(parallel, "start_child", spying)
    monkeypatch.setattr(parallel.socket, "socketpair", pair)
    vault.restore("db", point.point_id, None, options={"to_database": "par_socket"})
    try:
        equal_to_source(pg_cluster, "par_socket")
    finally:
        pg_cluster.dropdb("par_socket")
    wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
    largest = 2 * min(parallel.SEND_BUFFER, wmem_max)  # Linux doubles what it grants
    assert started == [("--section", False, None), ("--use-list", True, largest), ("--use-list", True, largest),
                       ("--section", False, None)]
    assert len(ours) == 2 and all(sock.fileno() == -1 for sock in ours)


def test_a_failing_loader_ends_the_restore_with_its_error_line(pg_cluster, source, monkeypatch):
    """A loader that fails once it has read its table of contents (here: it connects as a
    role that does not exist) ends the restore with pg_restore's own line, the other
    loader is stopped, and the new database is dropped."""
    vault, point, _ = source
    real = parallel.start_child

    def failing(argv, **kwargs):
        if any(a.startswith("--use-list") for a in argv) and not any("load1" in a for a in argv):
            argv = [*argv, "--role=no_such_role"]
        return real(argv, **kwargs)

    monkeypatch.setattr(parallel, "start_child", failing)
    with pytest.raises(PostgresRestoreFailed, match='role "no_such_role" does not exist.*new database was dropped'):
        vault.restore("db", point.point_id, None, options={"to_database": "par_failing"})
    assert "par_failing" not in pg_cluster.databases()
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "par_failing" not in procs  # no loader left running


def test_three_jobs_and_no_owner(pg_cluster, source, spy):
    """--jobs 3 --no-owner: three loaders, the same rows."""
    vault, point, _ = source
    vault.restore("db", point.point_id, None, options={"to_database": "par_three", "jobs": 3, "no_owner": True})
    try:
        assert spy == [3]
        for table in pg_cluster.tables("par_src"):
            assert pg_cluster.table_digest("par_three", table) == pg_cluster.table_digest("par_src", table), table
    finally:
        pg_cluster.dropdb("par_three")


def test_a_point_without_a_map_restores_through_the_old_path(pg_cluster, source, spy, monkeypatch):
    """A point made before block maps (no map entry) restores by one streaming pg_restore, equal too."""
    vault, point, _ = source
    monkeypatch.setattr(pgrestore, "blocks_path", lambda entry: "databases/no-such-map.blocks")
    vault.restore("db", point.point_id, None, options={"to_database": "par_old"})
    try:
        assert spy == []
        equal_to_source(pg_cluster, "par_old")
    finally:
        pg_cluster.dropdb("par_old")


def test_a_damaged_table_block_fails_the_restore_and_drops_the_database(pg_cluster, source, spy):
    """A byte flipped in a chunk inside app.big's block: the restore fails with the vault's
    integrity error, every loader ends, and the new database is dropped."""
    vault, point, url = source
    fresh = vault.reopen()
    fresh.index.load()
    ctx = fresh.point_view("db", point.point_id)
    entry = ctx.lookup("databases/par_src.dump")
    blockmap = parse_map(ctx.read_bytes(blocks_path("databases/par_src.dump")))
    start, end = max(((b[2], b[3]) for b in blockmap.blocks), key=lambda r: r[1] - r[0])
    middle, offset = (start + end) // 2, 0
    for chunk in entry.chunks:
        where = fresh.repo.index.lookup(chunk)
        if offset <= middle < offset + where.raw_length:
            break
        offset += where.raw_length
    assert offset > blockmap.toc_end  # the TOC is intact: the damage is met by a loader
    pack = Path(url) / pack_name(where.pack_id)
    original = pack.read_bytes()
    os.chmod(pack, 0o600)
    damaged = bytearray(original)
    damaged[where.offset + where.length // 2] ^= 0x5A
    pack.write_bytes(bytes(damaged))
    try:
        with pytest.raises(IntegrityError):
            fresh.restore("db", point.point_id, None, options={"to_database": "par_damaged"})
        assert spy == [2]
        assert "par_damaged" not in pg_cluster.databases()
        procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert "par_damaged" not in procs  # no loader left running
    finally:
        pack.write_bytes(original)
        pg_cluster.dropdb("par_damaged")


def test_the_old_path_reports_pg_restores_failure(pg_cluster, source, monkeypatch):
    """Without a map, a pg_restore that fails once it has read the dump's table of contents
    (it connects as a role that does not exist) fails the restore with its own line, and
    the new database is dropped."""
    vault, point, _ = source
    monkeypatch.setattr(pgrestore, "blocks_path", lambda entry: "databases/no-such-map.blocks")
    real = pgrestore.start_child
    monkeypatch.setattr(pgrestore, "start_child", lambda argv, **kw: real([*argv, "--role=no_such_role"], **kw))
    with pytest.raises(PostgresRestoreFailed, match='role "no_such_role" does not exist.*new database was dropped'):
        vault.restore("db", point.point_id, None, options={"to_database": "par_old_failing"})
    assert "par_old_failing" not in pg_cluster.databases()


def test_a_database_without_table_data_restores_through_the_map(pg_cluster, tmp_path, spy):
    """A database with a schema and a sequence but no rows: an empty map (no blocks), the
    restore runs the three steps with nothing to load, and the sequence value is back."""
    pg_cluster.createdb("par_bare")
    pg_cluster.script("create schema s; create sequence s.n; select setval('s.n', 77);", db="par_bare")
    vault = Vault.create(str(tmp_path / "vault"), home=str(tmp_path / "home"))
    vault.protect("postgres", "bare", {
        "connection": {"params": {"host": pg_cluster.socket, "port": str(pg_cluster.port), "user": "postgres"}},
        "databases": ["par_bare"]})
    try:
        point = vault.backup("bare")
        blockmap = parse_map(vault.point_view("bare", point.point_id).read_bytes("databases/par_bare.blocks"))
        assert blockmap is not None and blockmap.blocks == () and blockmap.toc_end == blockmap.size
        vault.restore("bare", point.point_id, None, options={"to_database": "par_bare_copy"})
        assert spy == [2]
        assert pg_cluster.psql("select last_value from s.n", "par_bare_copy") == "77"
    finally:
        pg_cluster.dropdb("par_bare_copy")
        pg_cluster.dropdb("par_bare")


def test_a_map_that_does_not_fit_the_dump_falls_back_to_the_old_path(pg_cluster, source, monkeypatch):
    """A map with one block for the whole data (the right size, not this dump's): nothing is
    loaded through it, the restore streams the dump into one pg_restore, equal too."""
    vault, point, _ = source
    real = pgrestore.parse_map

    def empty(data):
        found = real(data)
        return BlockMap(found.size, found.toc_end, ((found.blocks[0][0], 1, found.toc_end, found.size),))

    monkeypatch.setattr(pgrestore, "parse_map", empty)
    streamed = []
    real_stream = pgrestore.DatabaseRestore._run_streaming
    monkeypatch.setattr(pgrestore.DatabaseRestore, "_run_streaming",
                        lambda self, *a: streamed.append(1) or real_stream(self, *a))
    vault.restore("db", point.point_id, None, options={"to_database": "par_misfit"})
    try:
        assert streamed == [1]
        equal_to_source(pg_cluster, "par_misfit")
    finally:
        pg_cluster.dropdb("par_misfit")


def test_the_fast_row_skip_finds_the_same_blocks_as_the_walk(pg_cluster, source):
    """Blocks of rows whose lengths hold newline bytes (10, 266, 2570), of rows of random
    bytes that do not end in a newline, and of large rows: the map from 1 MiB reads (rows
    skipped with numpy) equals the one from 7-byte reads (walked) and the true layout."""
    import random

    vault, point, _ = source
    dump = vault.point_view("db", point.point_id).read_bytes("databases/par_src.dump")
    toc_end = parse_map(vault.point_view("db", point.point_id).read_bytes("databases/par_src.blocks")).toc_end
    rng = random.Random(7)

    def row(length: int, newline: bool = True) -> bytes:
        body = bytes(rng.choice(b"abc\t\\0\x00\x0a") if not newline else rng.choice(b"abc\t\\0")
                     for _ in range(length - 1))
        return body + (b"\n" if newline else bytes([rng.randrange(256)]))

    blocks, parts, offset = [], [dump[:toc_end]], toc_end
    shapes = [[row(10), row(266), row(2570), row(11)] * 3000,
              [row(rng.randrange(1, 300), newline=False) for _ in range(8000)],
              [row(rng.choice((10, 266, 100, 5000))) for _ in range(6000)] + [row(300_000)],
              []]
    for dump_id, rows in enumerate(shapes, start=9001):
        block = bytes((1, 0)) + struct.pack("<I", dump_id) + b"".join(
            b"\x00" + struct.pack("<I", len(r)) + r for r in rows) + bytes(5)
        blocks.append([dump_id, 1, offset, offset + len(block)])
        parts.append(block)
        offset += len(block)
    data = b"".join(parts)

    found = []
    for size in (7, 1 << 20):
        mapper = BlockMapper(Pieces(data, size))
        buffer = bytearray(1 << 20)
        while mapper.readinto(buffer):
            pass
        found.append(parse_map(mapper.wait(1)))
    assert [list(b) for b in found[0].blocks] == blocks == [list(b) for b in found[1].blocks]
    assert found[1].cuts  # noted on the way, each at a chunk header (parse_map checks their range)
    for dump_id, cuts in found[1].cuts.items():
        start, end = found[1].by_id()[dump_id][2:]
        headers, pos = set(), start + 6
        while (length := struct.unpack_from("<I", data, pos + 1)[0]):
            headers.add(pos)
            pos += 5 + length
        assert set(cuts) <= headers


def test_a_command_line_restore_loads_no_numpy(pg_cluster, tmp_path):
    """``strongroom restore ITEM --to-database`` of a small vault reads the block map and
    looks its chunks up without numpy (about 40 ms of every restore's start); the rows are
    all back."""
    pg_cluster.createdb("par_lean")
    pg_cluster.script("create table t(id int primary key, v text);"
                      " insert into t select g, repeat('x', g % 50) from generate_series(1, 20000) g;", db="par_lean")
    home, url = tmp_path / "home", str(tmp_path / "vault")
    vault = Vault.create(url, home=str(home))
    vault.protect("postgres", "lean", {
        "connection": {"params": {"host": pg_cluster.socket, "port": str(pg_cluster.port), "user": "postgres"}},
        "databases": ["par_lean"]})
    report = tmp_path / "modules.txt"
    code = ("import sys\nfrom strongroom.cli import main\ntry:\n    main(sys.argv[2:])\nexcept SystemExit as exc:\n"
            "    code = exc.code\nopen(sys.argv[1], 'w').write(f'{code} {\"numpy\" in sys.modules}')\n")
    try:
        vault.backup("lean")
        vault.close()
        done = subprocess.run([sys.executable, "-c", code, str(report), "--vault", url,
                               "restore", "lean", "--to-database", "par_lean_copy"],
                              env={**os.environ, "STRONGROOM_HOME": str(home)}, capture_output=True, text=True)
        assert report.read_text() == "0 False", done.stderr
        assert pg_cluster.table_digest("par_lean_copy", "t") == pg_cluster.table_digest("par_lean", "t")
    finally:
        pg_cluster.dropdb("par_lean_copy")
        pg_cluster.dropdb("par_lean")
