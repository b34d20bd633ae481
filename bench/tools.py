"""The command lines of each compared tool: strongroom, restic and BorgBackup.

A :class:`Session` is one tool in one benchmark run: a private home (key store, caches),
a fresh repository, and the command lines of every operation.  All three tools restore a
source ``/a/b`` as ``TARGET/a/b``: strongroom and restic write the absolute path under
the target, borg extracts the stored path (``a/b``, without its leading ``/``) relative
to its working folder, which is set to the target.

Sessions only build command lines and environments; :mod:`bench.measure` runs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata

import attrs

__all__ = ["LISTING", "NAMES", "Session", "command_lines", "ensure_installed", "make_session", "settings_of",
           "version_of"]

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")
PASSWORD = "bench-password-not-secret"
#: Tool name -> (executable, Debian package).
BINARIES = {"strongroom": (STRONGROOM, None), "restic": ("restic", "restic"), "borg": ("borg", "borgbackup")}
NAMES = tuple(BINARIES)
#: The label of the listing command in :func:`command_lines`.
LISTING = "listing (start-up)"


def _base_env() -> dict[str, str]:
    """The caller's environment without any setting of the compared tools or XDG folders."""
    prefixes = ("STRONGROOM_", "RESTIC_", "BORG_", "XDG_")
    # As on a user's machine, Python keeps its compiled modules (a CI environment may
    # forbid writing them, which would make every strongroom command compile its code).
    dropped = {"PYTHONDONTWRITEBYTECODE"}
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k not in dropped}


@attrs.define
class Session:
    """One tool's state in one run: ``home`` (private), ``repo`` (fresh), source ``src``."""

    home: str
    src: str
    backups: int = 0

    name = ""
    settings = ""

    @property
    def repo(self) -> str:
        return os.path.join(self.home, "repo")

    @property
    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def stored(self, rel: str) -> str:
        """Path of ``src/rel`` inside a backup, without the leading ``/``."""
        return os.path.join(self.src, rel).lstrip("/") if rel else self.src.lstrip("/")

    def restored_root(self, target: str) -> str:
        """Where ``src`` lands after a restore into ``target``."""
        return os.path.join(target, self.stored(""))

    def setup(self) -> list[list[str]]:
        """Commands creating the repository (not timed)."""
        raise NotImplementedError

    def backup(self) -> list[str]:
        """The next backup (borg: names the next archive ``point-N``)."""
        raise NotImplementedError

    def restore_all(self, target: str) -> tuple[list[str], str | None]:
        """(argv, working folder) restoring the latest backup into ``target``."""
        raise NotImplementedError

    def restore_file(self, target: str, rel: str) -> tuple[list[str], str | None]:
        raise NotImplementedError

    def verify(self) -> list[str]:
        raise NotImplementedError

    def listing(self) -> list[str]:
        """A cheap command that opens the repository and lists its backups."""
        raise NotImplementedError


class StrongroomSession(Session):
    name = "strongroom"
    settings = ("vault-managed key (the default), default settings; `STRONGROOM_HOME` private "
                "per run")

    @property
    def env(self) -> dict[str, str]:
        return {**_base_env(), "STRONGROOM_HOME": os.path.join(self.home, "home")}

    def setup(self) -> list[list[str]]:
        return [[STRONGROOM, "vault", "create", self.repo],
                [STRONGROOM, "--vault", self.repo, "protect", "files", "corpus", "--path", self.src]]

    def backup(self) -> list[str]:
        return [STRONGROOM, "--vault", self.repo, "backup", "corpus"]

    def restore_all(self, target: str) -> tuple[list[str], str | None]:
        return [STRONGROOM, "--vault", self.repo, "restore", "corpus", "--target", target], None

    def restore_file(self, target: str, rel: str) -> tuple[list[str], str | None]:
        argv, _ = self.restore_all(target)
        return [*argv, self.stored(rel)], None

    def verify(self) -> list[str]:
        return [STRONGROOM, "--vault", self.repo, "vault", "verify", "--read-data"]

    def listing(self) -> list[str]:
        return [STRONGROOM, "--vault", self.repo, "points", "corpus"]


class ResticSession(Session):
    name = "restic"
    settings = ("default settings (repository format 2, compression `auto` = zstd), "
                "`RESTIC_PASSWORD` set, cache in a private `RESTIC_CACHE_DIR` per run")

    @property
    def env(self) -> dict[str, str]:
        return {**_base_env(), "RESTIC_PASSWORD": PASSWORD,
                "RESTIC_CACHE_DIR": os.path.join(self.home, "cache")}

    def setup(self) -> list[list[str]]:
        return [["restic", "-r", self.repo, "init"]]

    def backup(self) -> list[str]:
        return ["restic", "-r", self.repo, "backup", self.src]

    def restore_all(self, target: str) -> tuple[list[str], str | None]:
        return ["restic", "-r", self.repo, "restore", "latest", "--target", target], None

    def restore_file(self, target: str, rel: str) -> tuple[list[str], str | None]:
        argv, _ = self.restore_all(target)
        return [*argv, "--include", "/" + self.stored(rel)], None

    def verify(self) -> list[str]:
        return ["restic", "-r", self.repo, "check", "--read-data"]

    def listing(self) -> list[str]:
        return ["restic", "-r", self.repo, "snapshots"]


class BorgSession(Session):
    name = "borg"
    settings = ("`borg init --encryption=repokey-blake2`, `borg create --compression zstd,3`, "
                "`BORG_PASSPHRASE` set, a private `BORG_BASE_DIR` per run (its files cache starts "
                "empty for the first backup and is kept for the next ones)")

    @property
    def env(self) -> dict[str, str]:
        return {**_base_env(), "BORG_PASSPHRASE": PASSWORD,
                "BORG_BASE_DIR": os.path.join(self.home, "base"),
                "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
                "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    @property
    def latest(self) -> str:
        return f"{self.repo}::point-{self.backups}"

    def setup(self) -> list[list[str]]:
        return [["borg", "init", "--encryption=repokey-blake2", self.repo]]

    def backup(self) -> list[str]:
        self.backups += 1
        return ["borg", "create", "--compression", "zstd,3", self.latest, self.src]

    def restore_all(self, target: str) -> tuple[list[str], str | None]:
        return ["borg", "extract", self.latest], target

    def restore_file(self, target: str, rel: str) -> tuple[list[str], str | None]:
        return ["borg", "extract", self.latest, self.stored(rel)], target

    def verify(self) -> list[str]:
        return ["borg", "check", "--verify-data", self.repo]

    def listing(self) -> list[str]:
        return ["borg", "list", self.repo]


_SESSIONS = {cls.name: cls for cls in (StrongroomSession, ResticSession, BorgSession)}


def make_session(name: str, home: str, src: str) -> Session:
    """A new session of tool ``name`` keeping its files under ``home`` (created)."""
    os.makedirs(home, exist_ok=True)
    return _SESSIONS[name](home, src)


def command_lines(name: str) -> list[tuple[str, str]]:
    """(operation, command line) of tool ``name``; paths shown as REPO, SRC, TARGET, FILE."""
    session = _SESSIONS[name]("/HOME", "/SRC")

    def text(argv: list[str], cwd: str | None = None) -> str:
        line = " ".join(argv).replace(STRONGROOM, "strongroom").replace("/HOME/repo", "REPO")
        line = line.replace("::point-1", "::point-N")
        return f"cd {cwd} && {line}" if cwd else line

    rows = [("setup (not timed)", text(argv)) for argv in session.setup()]
    rows += [("backup", text(session.backup())),
             ("full restore", text(*session.restore_all("TARGET"))),
             ("single-file restore", text(*session.restore_file("TARGET", "FILE"))),
             ("verify", text(session.verify())),
             (LISTING, text(session.listing()))]
    return rows


def settings_of(name: str) -> str:
    return _SESSIONS[name].settings


def version_of(name: str) -> str:
    if name == "strongroom":
        return f"strongroom {metadata.version('strongroom')}"
    argv = ["restic", "version"] if name == "restic" else ["borg", "--version"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]


def ensure_installed(names: list[str]) -> None:
    """Install the missing tools with apt-get when root; SystemExit with one line otherwise."""
    missing = [BINARIES[n][1] for n in names if shutil.which(BINARIES[n][0]) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"bench: missing {', '.join(missing)}: install with "
                         f"'apt-get install {' '.join(missing)}' as root (or run the bench as root)")
    print(f"bench: installing {' '.join(missing)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv)} failed:\n{result.stderr[-2000:]}")
