"""A SeaweedFS cluster on loopback for tests of zonal redundancy: volume servers in racks.

:class:`SeaweedCluster` runs, as separate child processes on free loopback ports:

- one master with ``-defaultReplication=010`` (every volume has one extra copy on another
  rack of the same data center) and ``-volumeSizeLimitMB=64`` (each bucket grows several
  volumes: small ones keep the disk use down);
- three volume servers in data center ``dc1``, racks ``rack1`` to ``rack3``
  (``-preStopSeconds=0``: a stopped one goes at once);
- a filer with the S3 gateway (``-s3.port.iceberg=0 -s3.port.lance=0``: else fixed ports
  that clash), authentication on with one Admin identity (``key``/``secret``).

Every HTTP port P is chosen with its gRPC twin P + 10000 free.  Ready means the S3
gateway answers ``/healthz`` and all three volume servers are data nodes in the master's
``/dir/status`` (the gateway answers seconds before the volume servers register).
:meth:`kill_volume` kills volume server ``n`` (1-3) with SIGKILL by its pid, as a crash
or a lost rack; :meth:`restart_volume` starts it again on the same port and data folder
and waits until it is a data node again; :meth:`stop` stops every process and removes
the work folder when the cluster made it.  With replication ``010`` and three racks,
losing one volume server keeps every object readable; losing two may lose the volumes
whose two copies were on them.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from typing import Any

import attrs

from .servers import _GRPC_OFFSET, _RANDOM, _WEED_PORTS, _bindable, _get, _weed_binary

__all__ = ["SeaweedCluster"]

VOLUMES = 3


def _port_pairs(roles: list[str]) -> dict[str, int]:
    """An HTTP port per role such that every port and its gRPC twin (+10000) is free now."""
    taken: set[int] = set()
    ports: dict[str, int] = {}
    for role in roles:
        for _ in range(200):
            port = _RANDOM.choice(_WEED_PORTS)
            pair = {port, port + _GRPC_OFFSET}
            if not pair & taken and all(_bindable(p) for p in pair):
                break
        else:
            raise RuntimeError("no free pair of ports (P, P+10000) found for SeaweedFS")
        taken |= pair
        ports[role] = port
    return ports


def data_nodes(status: bytes) -> list[str]:
    """The ``Url`` of every data node in a master's ``/dir/status`` answer (none while it
    has no topology yet: ``DataCenters`` may be null right after a node dies)."""
    try:
        topology = json.loads(status or b"{}").get("Topology") or {}
    except ValueError:
        return []
    return [node.get("Url", "") for dc in topology.get("DataCenters") or []
            for rack in dc.get("Racks") or [] for node in rack.get("DataNodes") or []]


@attrs.define
class SeaweedCluster:
    """A master, three volume servers in racks rack1..rack3 and a filer with S3 (module docstring)."""

    key: str = "strongroom-cluster-key"
    secret: str = attrs.field(factory=lambda: f"strongroom-cluster-{uuid.uuid4().hex}", repr=False)
    replication: str = "010"
    workdir: str | None = None
    startup_timeout: float = 90.0
    ports: dict[str, int] = attrs.field(factory=dict)
    _procs: dict[str, subprocess.Popen] = attrs.field(factory=dict, repr=False)
    _own_workdir: bool = attrs.field(default=False, repr=False)
    _weed: str = attrs.field(default="", repr=False)

    # --- where it is ------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def master_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['master']}"

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint_url, "key": self.key, "secret": self.secret}

    def volume_url(self, n: int) -> str:
        """``host:port`` of volume server ``n`` as the master names it."""
        return f"127.0.0.1:{self.ports[f'volume{n}']}"

    def pid(self, role: str) -> int | None:
        proc = self._procs.get(role)
        return proc.pid if proc is not None and proc.poll() is None else None

    def data_nodes(self) -> list[str]:
        """The volume servers the master counts now."""
        return data_nodes(_get(f"{self.master_url}/dir/status")[1])

    def layout(self) -> dict[str, set[str]]:
        """Volume id -> the racks that hold a copy of it (from the master's ``/vol/status``)."""
        try:
            volumes = json.loads(_get(f"{self.master_url}/vol/status")[1] or b"{}").get("Volumes") or {}
        except ValueError:
            return {}
        out: dict[str, set[str]] = {}
        for dc in (volumes.get("DataCenters") or {}).values():
            for rack, nodes in (dc or {}).items():
                for held in (nodes or {}).values():
                    for volume in held or []:
                        out.setdefault(str(volume.get("Id")), set()).add(rack)
        return out

    # --- running it -------------------------------------------------------------------

    def start(self) -> SeaweedCluster:
        self._weed = _weed_binary()
        if self.workdir is None:
            self.workdir, self._own_workdir = tempfile.mkdtemp(prefix="strongroom-cluster-"), True
        os.makedirs(self.workdir, exist_ok=True)
        try:
            self.ports = _port_pairs(["master", "filer", "s3"] + [f"volume{n}" for n in range(1, VOLUMES + 1)])
            self._start_master()
            for n in range(1, VOLUMES + 1):
                self._start_volume(n)
            self._start_filer()
            self._wait(lambda: _get(f"{self.endpoint_url}/healthz")[0] == 200
                       and len(self.data_nodes()) >= VOLUMES, "the S3 gateway and three volume servers")
        except BaseException:
            tail = self._log_tail("master") + " | " + self._log_tail("filer")
            self.stop()
            raise RuntimeError(f"the SeaweedFS cluster did not start; its logs end with: {tail}") from None
        return self

    def _dir(self, name: str) -> str:
        path = os.path.join(self.workdir or "", name)
        os.makedirs(path, exist_ok=True)
        return path

    def _launch(self, role: str, args: list[str]) -> None:
        with open(os.path.join(self.workdir or "", f"{role}.log"), "ab") as log:
            self._procs[role] = subprocess.Popen([self._weed, *args], stdout=log, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, cwd=self.workdir)

    def _start_master(self) -> None:
        self._launch("master", [
            "master", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-port={self.ports['master']}",
            f"-mdir={self._dir('master')}", f"-defaultReplication={self.replication}",
            "-volumeSizeLimitMB=64", "-telemetry=false",
        ])

    def _start_volume(self, n: int) -> None:
        self._launch(f"volume{n}", [
            "volume", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-port={self.ports[f'volume{n}']}",
            f"-dir={self._dir(f'volume{n}')}", "-max=0", f"-master=127.0.0.1:{self.ports['master']}",
            "-dataCenter=dc1", f"-rack=rack{n}", "-preStopSeconds=0",
        ])

    def _start_filer(self) -> None:
        config = os.path.join(self.workdir or "", "s3-identities.json")
        with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump({"identities": [{"name": "strongroom-cluster",
                                       "credentials": [{"accessKey": self.key, "secretKey": self.secret}],
                                       "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, f)
        filer = self._dir("filer")
        self._launch("filer", [
            "filer", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-port={self.ports['filer']}",
            f"-master=127.0.0.1:{self.ports['master']}", f"-defaultStoreDir={filer}",
            f"-localSocket={filer}/filer.sock",
            "-s3", f"-s3.port={self.ports['s3']}", f"-s3.localSocket={filer}/s3.sock", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
        ])

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for role, proc in self._procs.items():
                if proc.poll() is not None and not role.startswith("volume"):
                    raise RuntimeError(f"weed {role} exited with code {proc.returncode}")
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{what} were not ready within {self.startup_timeout:g} s")

    def _log_tail(self, role: str, lines: int = 3) -> str:
        try:
            with open(os.path.join(self.workdir or "", f"{role}.log"), errors="replace") as log:
                return " | ".join(line.strip() for line in log.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill_volume(self, n: int) -> None:
        """Kill volume server ``n`` (1-3) with SIGKILL, by its pid."""
        proc = self._procs[f"volume{n}"]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart_volume(self, n: int) -> None:
        """Start volume server ``n`` again (same port, same data) and wait until the master counts it."""
        if self.pid(f"volume{n}") is not None:
            raise RuntimeError(f"volume server {n} is running")
        self._start_volume(n)
        url = self.volume_url(n)
        self._wait(lambda: url in self.data_nodes(), f"volume server {n}")

    def wait_until_gone(self, n: int, timeout: float = 60.0) -> None:
        """Wait until the master no longer counts volume server ``n`` (after :meth:`kill_volume`)."""
        url, deadline = self.volume_url(n), time.monotonic() + timeout
        while url in self.data_nodes():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the master still counts volume server {n} after {timeout:g} s")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop every process (SIGTERM, SIGKILL after 3 s) and remove the folder if it is the cluster's."""
        for role in ["filer", *[f"volume{n}" for n in range(VOLUMES, 0, -1)], "master"]:
            proc = self._procs.pop(role, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for role, port in self.ports.items():  # weed puts gRPC sockets in /tmp, whatever it is told
            kind = "volume" if role.startswith("volume") else role
            for path in glob.glob(f"/tmp/seaweedfs-{kind}-grpc-{port + _GRPC_OFFSET}.sock"):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir, self._own_workdir = None, False

    def client(self):
        """A boto3 S3 client of the Admin identity (boto3 is a test dependency)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.key,
                            aws_secret_access_key=self.secret, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}))

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"strongroom-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name)
        return name
