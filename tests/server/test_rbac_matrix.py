"""The role matrix (docs/server.md, "Roles") on a live server: every CLI operation x every role.

Each operation names the weakest role that may run it.  For every role it is run through
``strongroom --vault https://.../vaults/main`` with that role's token: a weaker role must
fail with an error line naming the refusal (exit 23 or 24) and leave the vault's objects
as they were (only the audit journal and the alerts grow); the named role and the stronger ones must
succeed.  Preconditions (an item, a point, a policy, a key slot) are made by the owner
before each run, under names of the run's own.
"""

from __future__ import annotations

import json
import os

import attrs
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from gatewaykit import PASSPHRASE, live_server, snapshot  # noqa: E402

from strongroom.server.roles import ROLES  # noqa: E402
from strongroom.testing import Cli  # noqa: E402

ORDER = ("none", *ROLES)


@attrs.frozen
class Op:
    name: str
    needed: str
    argv: object  # (ctx, role) -> argv
    setup: object = None  # (ctx, role) -> None, run as owner first


def _point(ctx, item):
    out = ctx.run("owner", "points", item, "--json").stdout
    return json.loads(out)[0]["point_id"]


def _protect(ctx, item, backup=False):
    ctx.run("owner", "protect", "files", "--path", str(ctx.src), item)
    if backup:
        ctx.run("owner", "backup", item)


def _slot(ctx, role):
    out = ctx.run("owner", "vault", "key", "add", "--label", f"spare-{role}", "--new-passphrase-env", "NEWPASS",
                  "--json", env={"NEWPASS": "another passphrase"}).stdout
    ctx.slots[role] = json.loads(out)["slot"]


OPS = (
    Op("points", "reader", lambda c, r: ["points", "web"]),
    Op("browse", "operator", lambda c, r: ["browse", "web"]),
    Op("restore", "operator", lambda c, r: ["restore", "--target", str(c.tmp / f"out-{r}"), "web"]),
    Op("protect", "operator", lambda c, r: ["protect", "files", "--path", str(c.src), f"new-{r}"]),
    Op("backup", "operator", lambda c, r: ["backup", "web"]),
    Op("policy create", "contributor", lambda c, r: ["policy", "create", "--every", "4h", f"pc-{r}"]),
    Op("policy update", "contributor", lambda c, r: ["policy", "update", "--keep-daily", "3", f"pu-{r}"],
       lambda c, r: c.run("owner", "policy", "create", "--every", "4h", f"pu-{r}")),
    Op("policy delete", "contributor", lambda c, r: ["policy", "delete", f"pd-{r}"],
       lambda c, r: c.run("owner", "policy", "create", "--every", "4h", f"pd-{r}")),
    Op("items stop", "contributor", lambda c, r: ["items", "stop", "--retain", "forever", f"st-{r}"],
       lambda c, r: _protect(c, f"st-{r}")),
    Op("items stop --delete-data", "contributor",
       lambda c, r: ["items", "stop", "--delete-data", "--yes", f"dd-{r}"],
       lambda c, r: _protect(c, f"dd-{r}", backup=True)),
    Op("points delete", "contributor", lambda c, r: ["points", "delete", "--yes", f"pt-{r}@{_point(c, f'pt-{r}')}"],
       lambda c, r: _protect(c, f"pt-{r}", backup=True)),
    Op("prune", "contributor", lambda c, r: ["prune"]),
    Op("verify", "operator", lambda c, r: ["vault", "verify"]),
    Op("key add", "owner", lambda c, r: ["vault", "key", "add", "--label", f"k-{r}", "--new-passphrase-env", "NEWPASS"]),
    Op("key remove", "owner", lambda c, r: ["vault", "key", "remove", c.slots[r]], _slot),
    Op("key rotate", "owner", lambda c, r: ["vault", "key", "rotate"]),
)


@attrs.define
class Ctx:
    server: object
    tmp: object
    src: object
    slots: dict = attrs.field(factory=dict)

    def run(self, user, *args, env=None, expect=0):
        full = {**self.server.env(None if user == "none" else user), "NEWPASS": "another passphrase", **(env or {})}
        if user == "none":
            full["STRONGROOM_TOKEN"] = self.server.tokens["nobody"]
        return Cli()(*args, env=full, expect=expect)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    root = tmp_path_factory.mktemp("rbac")
    src = root / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.txt").write_text("hello\n")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STRONGROOM_PASSPHRASE", PASSPHRASE)
        env.setenv("STRONGROOM_HOME", str(root / "client-home"))
        with live_server(root) as server:
            c = Ctx(server, root, src)
            _protect(c, "web", backup=True)
            yield c


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_role_matrix(ctx, op):
    """Below the role it needs, an operation is refused and changes nothing; from it up, it succeeds."""
    folder = ctx.server.storage["main"]
    for role in ORDER:
        if op.setup is not None:
            op.setup(ctx, role)
        argv = op.argv(ctx, role)
        before = snapshot(folder)
        result = ctx.run(role, *argv, expect=None)
        allowed = ROLES.index(role) >= ROLES.index(op.needed) if role != "none" else False
        shown = f"{op.name} as {role}: exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        if allowed:
            assert result.exit_code == 0, shown
        else:
            assert result.exit_code in (23, 24), shown
            assert "Traceback" not in result.stderr
            assert f"role {role}" in result.stderr, shown
            assert snapshot(folder) == before, f"{op.name} as {role} changed the vault"


def _sockets() -> int:
    """Sockets this process has open."""
    fds = os.listdir("/proc/self/fd")
    return sum(os.readlink(f"/proc/self/fd/{fd}").startswith("socket:") for fd in fds
               if os.path.exists(f"/proc/self/fd/{fd}"))


def test_a_command_closes_its_connections_to_the_server(ctx):
    """Each command closes the connections its vault opened, so a process that runs many
    (an API user, these in-process tests) never holds the server's connection limit."""
    ctx.run("owner", "points", "web")
    before = _sockets()
    for _ in range(12):
        ctx.run("owner", "backup", "web")
    assert _sockets() <= before + 2, (before, _sockets())
