"""The vault server under load: many clients backing up at once through one server, against
the same clients backing up straight to the vault folders.

Two modes, each with fresh vaults and the same data (source trees generated from seeds):

- ``direct``: vault A (``--clients-a`` clients, one item each) and vault B (``--clients-b``)
  are local folders; every client is a ``strongroom`` process with ``--vault FOLDER``.
- ``server``: the same two folders hosted by one ``strongroom server run`` (a child process,
  TLS on loopback); every client has a user of its own, ``operator`` on its vault, and runs
  ``strongroom --vault https://127.0.0.1:PORT/vaults/NAME --storage-option ca_file=CERT``
  with its token in ``STRONGROOM_TOKEN``.  Meanwhile a reader (``reader`` on ``*``) polls
  the dashboard overview (logged in, session cookie) and ``/metrics`` (bearer token).

Each client has its own ``STRONGROOM_HOME`` holding a copy of the vault's local key (so no
passphrase derivation is timed) and its own source tree (``--files`` files of ``--file-kib``
KiB, half random, half text).  Each client protects its item (not timed), then ``--rounds``
rounds: all clients start at once and back up; between rounds every tree changes (two files
rewritten, one grown, one added).  Timed per backup: the client process, start to exit;
per round: the first start to the last exit.  In server mode the server's CPU seconds
(``/proc/PID/stat``) during the rounds and its peak RSS (``VmHWM``) are read, and its request
counts (``strongroom_http_requests_total``, before and after the rounds).

At the end every point is counted (``points --json``: one per item and round) and each
vault is verified with ``vault verify --read-data``: in server mode through the server
with a ``contributor`` token, in direct mode on the folder.  Any client exit other than 0,
any poll other than 200, a missing point or a failed verify is an error: the report says
which and the command exits 1.

    python -m bench.server.run [--clients-a 16] [--clients-b 4] [--rounds 3] [--files 24]
        [--file-kib 128] [--modes direct,server] [--work DIR] [--output bench/server/RESULTS.md]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import shlex
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import attrs

CLI = "from strongroom.cli import main; main()"
VAULTS = ("A", "B")
POLL_SECONDS = 0.25


# --- the data ------------------------------------------------------------------------------


def _content(rng: random.Random, size: int, text: bool) -> bytes:
    if not text:
        return rng.randbytes(size)
    words = [f"word{rng.randrange(5000)}" for _ in range(size // 8 + 1)]
    return " ".join(words).encode()[:size]


def make_tree(folder: Path, seed: int, files: int, size: int) -> None:
    """``files`` files of ``size`` bytes in ``folder`` (fresh), every other one text."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    for i in range(files):
        (folder / f"f{i:03d}.dat").write_bytes(_content(rng, size, text=bool(i % 2)))


def change_tree(folder: Path, seed: int, round_: int, size: int) -> None:
    """The changes before round ``round_``: two files rewritten, one grown, one added."""
    rng = random.Random(seed * 1000 + round_)
    names = sorted(p.name for p in folder.iterdir())
    for name in rng.sample(names, 2):
        (folder / name).write_bytes(_content(rng, size, text=rng.random() < 0.5))
    with open(folder / rng.choice(names), "ab") as f:
        f.write(_content(rng, size // 4, text=True))
    (folder / f"new{round_:02d}.dat").write_bytes(_content(rng, size, text=False))


# --- the clients ---------------------------------------------------------------------------


@attrs.frozen
class Client:
    name: str  # also the item's name and the user's
    vault: str  # A or B
    seed: int
    home: Path
    src: Path


@attrs.frozen
class Run:
    client: str
    round: int
    seconds: float
    code: int
    error: str


def run_cli(args: list[str], env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def timed(client: Client, round_: int, args: list[str], env: dict) -> Run:
    started = time.perf_counter()
    proc = run_cli(args, env)
    return Run(client.name, round_, time.perf_counter() - started, proc.returncode,
               "" if proc.returncode == 0 else last_line(proc.stderr or proc.stdout))


def all_at_once(jobs) -> list:
    """Run ``jobs`` (callables) in as many threads, all started together."""
    jobs = list(jobs)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        return list(pool.map(lambda job: job(), jobs))


# --- the server ----------------------------------------------------------------------------


def proc_figures(pid: int) -> tuple[float, int]:
    """(CPU seconds, user + system; peak RSS in bytes) of process ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    peak = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return cpu, peak


def request_counts(http) -> dict[tuple[str, str, str], float]:
    """(route, method, status) -> requests served, from ``/metrics`` (every role summed)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = http.get("/metrics")
    response.raise_for_status()
    counts: dict = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "strongroom_http_requests_total":
                key = (sample.labels["route"], sample.labels["method"], sample.labels["status"])
                counts[key] = counts.get(key, 0) + sample.value
    return counts


class Reader(threading.Thread):
    """Polls the dashboard overview (session cookie) and /metrics (token) until stopped."""

    def __init__(self, base: str, ca_file: str, token: str) -> None:
        super().__init__(daemon=True)
        self.base, self.ca_file, self.token = base, ca_file, token
        self.stopping = threading.Event()
        self.polls: list[tuple[str, int, float]] = []  # (what, status, seconds)
        self.failure = ""

    def run(self) -> None:
        import httpx

        ctx = ssl.create_default_context(cafile=self.ca_file)
        try:
            with httpx.Client(base_url=self.base, verify=ctx, timeout=60, follow_redirects=False) as web, \
                    httpx.Client(base_url=self.base, verify=ctx, timeout=60,
                                 headers={"Authorization": f"Bearer {self.token}"}) as scraper:
                login = web.post("/dashboard/login", data={"token": self.token})
                self.polls.append(("login", 200 if login.status_code == 303 else login.status_code, 0.0))
                while True:  # at least one poll of each, however short the rounds
                    for what, http, path in (("overview", web, "/dashboard/"), ("metrics", scraper, "/metrics")):
                        started = time.perf_counter()
                        status = http.get(path).status_code
                        self.polls.append((what, status, time.perf_counter() - started))
                    if self.stopping.wait(POLL_SECONDS):
                        break
        except Exception as exc:  # noqa: BLE001 - reported as an error of the run
            self.failure = f"{type(exc).__name__}: {exc}"[:300]


# --- one mode ------------------------------------------------------------------------------


@attrs.define
class Outcome:
    mode: str
    runs: list[Run] = attrs.Factory(list)
    walls: list[float] = attrs.Factory(list)  # per round
    setup_errors: list[str] = attrs.Factory(list)
    points: dict = attrs.Factory(dict)  # vault -> points found
    verify: dict = attrs.Factory(dict)  # vault -> (exit code, last line)
    client_cpu: float = 0.0  # CPU seconds of the client processes during the rounds
    server_cpu: float | None = None
    server_rss: int | None = None
    requests: dict = attrs.Factory(dict)
    polls: list = attrs.Factory(list)
    reader_failure: str = ""
    server_log_errors: list[str] = attrs.Factory(list)


def make_vaults(root: Path, keyhome: Path) -> dict[str, tuple[Path, str]]:
    """Vault folders A and B with a local key slot in ``keyhome``: name -> (folder, vault id)."""
    from strongroom.vault import Vault

    made = {}
    for name in VAULTS:
        vault = Vault.create(str(root / f"vault-{name}"), name=name, key_provider="local", home=str(keyhome))
        made[name] = (root / f"vault-{name}", vault.vault_id)
    return made


def give_key(keyhome: Path, home: Path, vault_id: str) -> None:
    """A copy of the vault's local key in a client's home (each client machine has one)."""
    (home / "keys").mkdir(parents=True, exist_ok=True)
    os.chmod(home / "keys", 0o700)
    shutil.copy2(keyhome / "keys" / f"{vault_id}.key", home / "keys" / f"{vault_id}.key")


def run_mode(mode: str, work: Path, args, log) -> Outcome:
    out = Outcome(mode)
    root = work / mode
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    keyhome = root / "keyhome"
    os.environ["STRONGROOM_HOME"] = str(keyhome)
    vaults = make_vaults(root, keyhome)
    size = args.file_kib * 1024
    clients = [Client(f"{v.lower()}{i:02d}", v, seed=(ord(v) * 100 + i), home=root / "clients" / f"{v.lower()}{i:02d}",
                      src=root / "src" / f"{v.lower()}{i:02d}")
               for v, n in (("A", args.clients_a), ("B", args.clients_b)) for i in range(n)]
    for c in clients:
        make_tree(c.src, c.seed, args.files, size)
        give_key(keyhome, c.home, vaults[c.vault][1])
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    server = None
    tokens: dict[str, str] = {}
    try:
        if mode == "server":
            server, tokens = start_server(root, vaults, clients)
        def target(c: Client) -> tuple[list[str], dict]:
            env = {**base_env, "STRONGROOM_HOME": str(c.home)}
            if server is None:
                return ["--vault", str(vaults[c.vault][0])], env
            env["STRONGROOM_TOKEN"] = tokens[c.name]
            return ["--vault", server.vault_url(c.vault), "--storage-option", f"ca_file={server.cert}"], env

        for run in all_at_once(lambda c=c: timed(c, 0, [*target(c)[0], "protect", "files", "--path", str(c.src),
                                                         c.name], target(c)[1]) for c in clients):
            if run.code:
                out.setup_errors.append(f"protect {run.client}: exit {run.code}: {run.error}")
        reader = None
        if server is not None:
            admin = server.client(server.admin_token)
            before = request_counts(admin)
            cpu_before, _ = proc_figures(server.proc.pid)
            reader = Reader(server.url, str(server.cert), tokens["reader"])
            reader.start()
        children_before = os.times()
        for round_ in range(1, args.rounds + 1):
            if round_ > 1:
                for c in clients:
                    change_tree(c.src, c.seed, round_, size)
            started = time.perf_counter()
            runs = all_at_once(lambda c=c: timed(c, round_, [*target(c)[0], "backup", c.name], target(c)[1])
                               for c in clients)
            out.walls.append(time.perf_counter() - started)
            out.runs.extend(runs)
            failed = sum(1 for r in runs if r.code)
            log(f"{mode}: round {round_}: {out.walls[-1]:.1f} s, {failed} failed")
        children_after = os.times()
        out.client_cpu = (children_after.children_user - children_before.children_user
                          + children_after.children_system - children_before.children_system)
        if server is not None:
            reader.stopping.set()
            reader.join(120)
            out.polls, out.reader_failure = reader.polls, reader.failure
            out.server_cpu = proc_figures(server.proc.pid)[0] - cpu_before
            after = request_counts(admin)
            out.requests = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
            admin.close()
        # every point, then every vault verified
        for name in VAULTS:
            checker = next((c for c in clients if c.vault == name), None)
            if checker is None:
                continue
            argv, env = target(checker)
            if server is not None:
                env = {**env, "STRONGROOM_TOKEN": tokens["auditor"]}
            listed = run_cli([*argv, "points", "--json"], env)
            if listed.returncode:
                out.points[name] = f"points: exit {listed.returncode}: {last_line(listed.stderr)}"
            else:
                found: dict = {}
                for point in json.loads(listed.stdout):
                    found[point["item_name"]] = found.get(point["item_name"], 0) + 1
                out.points[name] = {c.name: found.get(c.name, 0) for c in clients if c.vault == name}
            verified = run_cli([*argv, "vault", "verify", "--read-data"], env)
            out.verify[name] = (verified.returncode, last_line(verified.stdout + verified.stderr))
        if server is not None:
            out.server_rss = proc_figures(server.proc.pid)[1]
    finally:
        if server is not None:
            code = server.stop()
            if code != 0:
                out.server_log_errors.append(f"the server exited {code} on SIGTERM")
            text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
            out.server_log_errors += [line[:300] for line in text.splitlines()
                                      if "Traceback" in line or "ERROR" in line][:10]
    return out


def start_server(root: Path, vaults: dict, clients: list[Client]):
    """The server folder hosting both vaults, a user per client (operator on its vault), a
    reader (on ``*``) and an auditor (contributor on ``*``); started.  (server, user -> token)"""
    from strongroom.plugins import PluginHost
    from strongroom.server.hosted import adopt_hosted
    from strongroom.testing.vaultserver import ServerProcess
    from strongroom.vault import Vault

    server = ServerProcess.create(root / "server")
    plugins = PluginHost.create()
    client_home = os.environ["STRONGROOM_HOME"]
    for name, (folder, _) in vaults.items():
        kit = Vault.open(str(folder), home=client_home).keys.recovery_kit()
        os.environ["STRONGROOM_HOME"] = str(server.dir.home)  # the server's key slot goes there
        try:
            adopt_hosted(server.dir, name, str(folder), {}, plugins, kit, lambda _: None)
        finally:
            os.environ["STRONGROOM_HOME"] = client_home
    users = server.users
    tokens = {}
    for user, vault, role in [*((c.name, c.vault, "operator") for c in clients),
                              ("reader", "*", "reader"), ("auditor", "*", "contributor")]:
        users.add_user(user)
        users.assign(user, vault, role)
        tokens[user] = users.create_token(user)
    server.env = {k: v for k, v in server.env.items() if not k.startswith("STRONGROOM_")}
    return server.start(timeout=60), tokens


# --- the report ----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def errors_of(out: Outcome, rounds: int) -> list[str]:
    errors = list(out.setup_errors)
    errors += [f"{out.mode}: backup {r.client} round {r.round}: exit {r.code}: {r.error}" for r in out.runs if r.code]
    for name, found in out.points.items():
        if isinstance(found, str):
            errors.append(f"{out.mode}: vault {name}: {found}")
        else:
            errors += [f"{out.mode}: vault {name}: item {item} has {n} points, not {rounds}"
                       for item, n in found.items() if n != rounds]
    errors += [f"{out.mode}: verify {name}: exit {code}: {line}" for name, (code, line) in out.verify.items() if code]
    errors += [f"{out.mode}: poll {what}: status {status}" for what, status, _ in out.polls if status != 200]
    if out.reader_failure:
        errors.append(f"{out.mode}: reader: {out.reader_failure}")
    errors += [f"{out.mode}: server log: {line}" for line in out.server_log_errors]
    return errors


def report(outcomes: dict[str, Outcome], args, argv: list[str]) -> tuple[str, list[str]]:
    from bench.machine import describe_machine

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    n = args.clients_a + args.clients_b
    lines = ["# The vault server under load", "",
             f"Machine: {describe_machine()}", f"Commit: {commit}",
             f"Command: `python -m bench.server.run {shlex.join(argv)}`", "",
             f"{n} clients ({args.clients_a} on vault A, {args.clients_b} on vault B, one item each,"
             f" {args.files} files of {args.file_kib} KiB), {args.rounds} rounds of backups, every client at once;"
             " all on this machine (clients, server and reader share its cores).", "",
             "## Backups", "",
             "| mode | backups | failed | median (s) | p90 (s) | max (s) | round wall, median (s) | rounds (s) |"
             " client CPU (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    stats = {}
    for mode, out in outcomes.items():
        times = [r.seconds for r in out.runs]
        stats[mode] = (statistics.median(times) if times else float("nan"), pct(times, 0.9),
                       statistics.median(out.walls) if out.walls else float("nan"))
        lines.append(f"| {mode} | {len(out.runs)} | {sum(1 for r in out.runs if r.code)} | {stats[mode][0]:.2f}"
                     f" | {stats[mode][1]:.2f} | {max(times, default=float('nan')):.2f} | {stats[mode][2]:.2f}"
                     f" | {', '.join(f'{w:.1f}' for w in out.walls)} | {out.client_cpu:.1f} |")
    if "direct" in stats and "server" in stats:
        d, s = stats["direct"], stats["server"]
        lines += ["", "## Server against direct", "", "| figure | server / direct |", "|---|---|",
                  f"| backup time, median | {s[0] / d[0]:.2f} |", f"| backup time, p90 | {s[1] / d[1]:.2f} |",
                  f"| round wall time, median | {s[2] / d[2]:.2f} |",
                  f"| client CPU seconds | {outcomes['server'].client_cpu / outcomes['direct'].client_cpu:.2f} |"]
    server = outcomes.get("server")
    if server is not None and server.server_cpu is not None:
        total = sum(server.requests.values())
        lines += ["", "## The server", "", "| figure | value |", "|---|---|",
                  f"| CPU seconds during the rounds | {server.server_cpu:.1f} |",
                  f"| peak RSS | {(server.server_rss or 0) / 2**20:.0f} MiB |",
                  f"| requests served during the rounds | {total:.0f} |",
                  f"| requests per second of rounds | {total / max(sum(server.walls), 1e-9):.0f} |",
                  f"| CPU ms per request | {1000 * server.server_cpu / max(total, 1):.2f} |"]
        lines += ["", "Requests during the rounds by route, method and status:", "",
                  "| route | method | status | requests |", "|---|---|---|---|"]
        for (route, method, status), count in sorted(server.requests.items(), key=lambda kv: -kv[1]):
            lines.append(f"| `{route}` | {method} | {status} | {count:.0f} |")
        polls = server.polls
        lines += ["", "## The reader", "", "| page | polls | not 200 | median (ms) | max (ms) |", "|---|---|---|---|---|"]
        for what in ("overview", "metrics"):
            took = [t * 1000 for w, _, t in polls if w == what]
            bad = sum(1 for w, status, _ in polls if w == what and status != 200)
            lines.append(f"| {what} | {len(took)} | {bad} | {statistics.median(took) if took else float('nan'):.0f}"
                         f" | {max(took, default=float('nan')):.0f} |")
    lines += ["", "## Points and verification", "", "| mode | vault | items | points | verify --read-data |",
              "|---|---|---|---|---|"]
    for mode, out in outcomes.items():
        how = "through the server, contributor token" if mode == "server" else "on the folder"
        for name in VAULTS:
            found = out.points.get(name)
            if found is None:
                continue
            points = found if isinstance(found, str) else str(sum(found.values()))
            items = "-" if isinstance(found, str) else str(len(found))
            code, line = out.verify.get(name, (None, ""))
            lines.append(f"| {mode} | {name} | {items} | {points} | {'ok' if code == 0 else f'exit {code}'} ({how}) |")
    errors = [e for out in outcomes.values() for e in errors_of(out, args.rounds)]
    lines += ["", "## Errors", ""] + ([f"- {e}" for e in errors] if errors else ["None."])
    return "\n".join(lines) + "\n", errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server.run", description=__doc__.splitlines()[0])
    parser.add_argument("--clients-a", type=int, default=16, help="clients backing up to vault A (default 16)")
    parser.add_argument("--clients-b", type=int, default=4, help="clients backing up to vault B (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="backups per client (default 3)")
    parser.add_argument("--files", type=int, default=24, help="files per client (default 24)")
    parser.add_argument("--file-kib", type=int, default=128, help="KiB per file (default 128)")
    parser.add_argument("--modes", default="direct,server", help="direct,server (default: both, in that order)")
    parser.add_argument("--work", help="work folder (default: a temporary one, removed at the end)")
    parser.add_argument("--output", help="write the report here too")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - {"direct", "server"}:
        parser.error("--modes takes direct, server or both")
    tmp = None if args.work else tempfile.mkdtemp(prefix="strongroom-bench-server-")
    work = Path(args.work or tmp)
    saved_home = os.environ.get("STRONGROOM_HOME")
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    try:
        outcomes = {mode: run_mode(mode, work, args, log) for mode in modes}
    finally:
        if saved_home is None:
            os.environ.pop("STRONGROOM_HOME", None)
        else:
            os.environ["STRONGROOM_HOME"] = saved_home
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    text, errors = report(outcomes, args, argv)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
