"""Real storage servers on loopback for tests: OpenSSH (SFTP) and an S3 server (moto).

Each server is a child process started on 127.0.0.1 on a free port and stopped by
:meth:`stop`; nothing is left behind but the folder it was given.  The
:mod:`strongroom.testing` fixtures start one of each per test session.

- :class:`SshServer` runs the system's ``sshd`` (Debian: ``openssh-server``) with a
  throwaway host key, a throwaway client key and a config of its own, logging in as
  the user running the tests (root needs ``/run/sshd``, which is created).  Clients
  check the host key against a ``known_hosts`` file written beside it.
- :class:`S3Server` runs ``python -m moto.server`` (``moto[s3]``, ``flask``,
  ``flask-cors``), a real HTTP endpoint for s3fs.  No region is given anywhere: with
  one, bucket creation sends a LocationConstraint that the server refuses.  Object
  lock works there as a bucket-default COMPLIANCE retention and as legal holds.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from typing import Any

import attrs

__all__ = ["S3Server", "ServerUnavailable", "SshServer", "free_port"]

SSHD = "/usr/sbin/sshd"


class ServerUnavailable(RuntimeError):
    """A server cannot run here (its package is missing); the message says what to install."""


def free_port() -> int:
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


@attrs.define
class S3Server:
    """moto's S3 server on 127.0.0.1: a real HTTP endpoint."""

    port: int = 0
    key: str = "strongroom-test-key"
    secret: str = "strongroom-test-secret"
    _proc: subprocess.Popen | None = attrs.field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint_url, "key": self.key, "secret": self.secret}

    def start(self) -> "S3Server":
        try:
            import flask  # noqa: F401
            import flask_cors  # noqa: F401
            import moto.server  # noqa: F401
        except ImportError as exc:
            raise ServerUnavailable(
                f"S3 test server not installed ({exc.name} is missing: pip install 'moto[s3]' flask flask-cors)"
            ) from None
        self.port = self.port or free_port()
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret}
        env.pop("AWS_DEFAULT_REGION", None)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
        )
        _wait_for_port(self.port, self._proc, "the S3 server (moto)")
        return self

    def stop(self) -> None:
        _stop(self._proc)
        self._proc = None

    def client(self):
        """A boto3 S3 client for this server (boto3 is a test dependency)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.key,
                            aws_secret_access_key=self.secret, region_name="us-east-1")

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
        """Remove a bucket and everything in it (best effort: locked objects stay)."""
        client = self.client()
        try:
            paginator = client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=name):
                doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                          for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                for start in range(0, len(doomed), 1000):
                    client.delete_objects(Bucket=name, Delete={"Objects": doomed[start:start + 1000], "Quiet": True})
            client.delete_bucket(Bucket=name)
        except Exception:  # locked objects (by design) or a server already gone
            pass
