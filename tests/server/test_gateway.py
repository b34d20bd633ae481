"""The object gateway on a live server: tokens, names, roles, sizes, audit, and the HTTP store."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from gatewaykit import PASSPHRASE, live_server, snapshot  # noqa: E402

from strongroom.errors import AccessDenied, DeleteRefused, ObjectNotFound, ServerTokenRefused  # noqa: E402
from strongroom.storage.httpstore import HttpStore  # noqa: E402

PACK = "data/ab/ab" + "0" * 30
LEASE = "leases/20260101T000000000000Z-0000abcd"
CLAIM = "runs/0123456789abcdef/20260101T000000Z/20260101T000000000000Z-0000abcd"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STRONGROOM_PASSPHRASE", PASSPHRASE)
        env.setenv("STRONGROOM_HOME", str(root / "client-home"))
        with live_server(root, vaults=("main", "other")) as live:
            yield live


def store_of(server, user, vault="main") -> HttpStore:
    return HttpStore(server.url(vault), server.tokens[user], ca_file=server.ca_file)


def refusals(server, vault="main") -> list[dict]:
    """The server.refused entries of the vault's journal, read with the server's own key."""
    from strongroom.vault import Vault

    with pytest.MonkeyPatch.context() as env:
        env.setenv("STRONGROOM_HOME", str(server.dir / "home"))
        v = Vault.open(str(server.storage[vault]))
        return [e.to_dict() if hasattr(e, "to_dict") else e for e in v.journal.entries()
                if getattr(e, "operation", None) == "server.refused"]


class TestTokens:
    def test_no_token_is_401(self, server):
        """A request without a token is refused with 401 and a one-line reason."""
        with server.client(None) as c:
            r = c.get("/vaults/main/list")
        assert r.status_code == 401
        assert "refused the token" in r.json()["error"]

    def test_wrong_token_is_401_and_the_client_says_so(self, server):
        """A wrong token: 401, which the HTTP store turns into ServerTokenRefused (exit 23)."""
        bad = HttpStore(server.url(), "sr_nonsense", ca_file=server.ca_file)
        with pytest.raises(ServerTokenRefused) as info:
            bad.exists("strongroom.json")
        assert info.value.exit_code == 23
        assert "sr_nonsense" not in str(info.value)

    def test_revoked_token_is_401(self, server):
        """A token revoked while the server runs stops working at once."""
        from strongroom.server.serverdir import ServerDir

        users = ServerDir(server.dir).users
        users.add_user("leaver")
        token = users.create_token("leaver")
        users.assign("leaver", "main", "reader")
        assert HttpStore(server.url(), token, ca_file=server.ca_file).exists("strongroom.json")
        token_id = [t.token_id for t in users.tokens() if t.user == "leaver"][0]
        users.revoke(token_id)
        with pytest.raises(ServerTokenRefused):
            HttpStore(server.url(), token, ca_file=server.ca_file).exists("strongroom.json")

    def test_unknown_vault_is_404(self, server):
        """A vault the server does not host is 404 (after the token is checked)."""
        with server.client("owner") as c:
            r = c.get("/vaults/nosuch/list")
        assert r.status_code == 404
        assert "hosts no vault" in r.json()["error"]

    def test_no_role_on_the_vault_is_403(self, server):
        """A valid token without a role on the vault reads nothing."""
        with server.client("nobody") as c:
            r = c.get("/vaults/main/objects/strongroom.json")
        assert r.status_code == 403
        assert "role none" in r.json()["error"]


class TestNames:
    @pytest.mark.parametrize("raw", [
        "/vaults/main/objects/..%2fserver.toml",
        "/vaults/main/objects/%2e%2e/%2e%2e/etc/passwd",
        "/vaults/main/objects/data/../strongroom.json",
        "/vaults/main/objects//etc/passwd",
        "/vaults/main/objects/keys/.tmp-x",
    ])
    def test_traversal_names_are_400(self, server, raw):
        """A name with '..', an empty component or a reserved one never reaches storage: 400."""
        ctx = ssl.create_default_context(cafile=server.ca_file)
        host, port = server.base.removeprefix("https://").split(":")
        with socket.create_connection((host, int(port))) as raw_sock, \
                ctx.wrap_socket(raw_sock, server_hostname=host) as s:
            s.sendall(f"GET {raw} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.tokens['owner']}\r\n"
                      "Connection: close\r\n\r\n".encode())
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        status = int(reply.split(b" ", 2)[1])
        assert status in (400, 404), reply[:300]
        assert b"root:" not in reply and b"[server]" not in reply

    def test_bad_prefix_is_400(self, server):
        with server.client("reader") as c:
            assert c.get("/vaults/main/list", params={"prefix": "../"}).status_code == 400


class TestRoles:
    def test_reader_reads_and_lists(self, server):
        """A reader gets objects, ranges, sizes and listings, but not the backed-up data."""
        store = store_of(server, "reader")
        names = list(store.list("keys/"))
        assert names and all(n.startswith("keys/") for n in names)
        whole = store.get("strongroom.json")
        assert store.get_range("strongroom.json", 2, 5) == whole[2:7]
        assert store.size("strongroom.json") == len(whole)
        with pytest.raises(ObjectNotFound):
            store.get("index/20260101T000000000000Z-00000000")
        pack = "data/cd/cd" + "1" * 30
        store_of(server, "owner").put(pack, b"some data")
        with pytest.raises(AccessDenied) as info:
            store.get(pack)
        assert "read backed-up data" in str(info.value)
        assert store_of(server, "operator").get(pack)

    def test_reader_trying_every_write_route_is_403_and_audited(self, server):
        """Every write a reader tries is refused (403), nothing changes, each refusal is journaled."""
        before = snapshot(server.storage["main"])
        count = len(refusals(server))
        store = store_of(server, "reader")
        writes = [
            lambda: store.put(PACK, b"x"), lambda: store.put("index/20260101T000000000000Z-00000001", b"x"),
            lambda: store.put("items/0123456789abcdef/20260101T000000000000Z-00000001", b"x"),
            lambda: store.put("settings/20260101T000000000000Z-00000001", b"x"),
            lambda: store.put("keys/zz", b"{}"), lambda: store.put("strongroom.json", b"{}"),
            lambda: store.put(LEASE, b"x"),
        ]
        deletes = [lambda: store.delete("strongroom.json"), lambda: store.delete(next(iter(store.list("keys/"))))]
        for attempt in writes:
            with pytest.raises(AccessDenied) as info:
                attempt()
            assert info.value.exit_code == 24 and "role reader on vault main may not" in str(info.value)
        for attempt in deletes:
            with pytest.raises(DeleteRefused):
                attempt()
        assert snapshot(server.storage["main"]) == before
        assert len(refusals(server)) >= count + len(writes) + len(deletes)

    def test_operator_is_append_only(self, server):
        """An operator adds a pack but may not overwrite or delete it; a retried identical put passes."""
        store = store_of(server, "operator")
        store.put(PACK, b"pack bytes")
        store.put(PACK, b"pack bytes")  # a retry: the same bytes
        with pytest.raises(AccessDenied) as info:
            store.put(PACK, b"other bytes")
        assert "may not overwrite pack" in str(info.value) and "it takes contributor" in str(info.value)
        with pytest.raises(DeleteRefused):
            store.delete(PACK)
        assert (server.storage["main"] / PACK).read_bytes() == b"pack bytes"

    def test_operator_deletes_only_the_claim_it_took(self, server):
        """A run claim the operator's own token put may be deleted by it; another's may not."""
        mine, theirs = CLAIM[:-1] + "1", CLAIM[:-1] + "2"
        operator = store_of(server, "operator")
        contributor = store_of(server, "contributor")
        operator.put(mine, b"claim")
        contributor.put(theirs, b"claim")
        operator.delete(mine)
        assert not (server.storage["main"] / mine).exists()
        with pytest.raises(DeleteRefused):
            operator.delete(theirs)
        contributor.delete(theirs)

    def test_security_history_is_never_deleted(self, server):
        """Even an owner cannot delete a journal entry through the gateway."""
        owner = store_of(server, "owner")
        entry = next(iter(owner.list("journal/")))
        with pytest.raises(DeleteRefused):
            owner.delete(entry)

    def test_a_token_of_another_vault(self, server):
        """A role on vault 'other' gives nothing on 'main'."""
        from strongroom.server.serverdir import ServerDir

        users = ServerDir(server.dir).users
        users.add_user("elsewhere")
        token = users.create_token("elsewhere")
        users.assign("elsewhere", "other", "owner")
        HttpStore(server.url("other"), token, ca_file=server.ca_file).get("strongroom.json")
        with pytest.raises(AccessDenied):
            HttpStore(server.url("main"), token, ca_file=server.ca_file).get("strongroom.json")


class TestAbuse:
    def test_oversized_body_is_413(self, server):
        """A body declared larger than the limit is refused before it is read."""
        ctx = ssl.create_default_context(cafile=server.ca_file)
        host, port = server.base.removeprefix("https://").split(":")
        with socket.create_connection((host, int(port))) as raw_sock, \
                ctx.wrap_socket(raw_sock, server_hostname=host) as s:
            s.sendall(f"PUT /vaults/main/objects/{PACK[:-1]}9 HTTP/1.1\r\nHost: {host}\r\n"
                      f"Authorization: Bearer {server.tokens['owner']}\r\nContent-Length: {1 << 40}\r\n\r\n".encode())
            reply = s.recv(65536)
        assert int(reply.split(b" ", 2)[1]) == 413

    def test_a_slow_client_does_not_block_others(self, server):
        """A client that sends half a body and stalls does not keep others from being served."""
        ctx = ssl.create_default_context(cafile=server.ca_file)
        host, port = server.base.removeprefix("https://").split(":")
        raw_sock = socket.create_connection((host, int(port)))
        s = ctx.wrap_socket(raw_sock, server_hostname=host)
        s.sendall(f"PUT /vaults/main/objects/{PACK[:-1]}8 HTTP/1.1\r\nHost: {host}\r\n"
                  f"Authorization: Bearer {server.tokens['owner']}\r\nContent-Length: 1000000\r\n\r\n".encode()
                  + b"x" * 1000)
        try:
            done = []
            worker = threading.Thread(target=lambda: done.append(store_of(server, "reader").get("strongroom.json")))
            worker.start()
            worker.join(20)
            assert done, "a reader was not served while another client stalled"
        finally:
            s.close()
        time.sleep(0.1)
        assert not (server.storage["main"] / (PACK[:-1] + "8")).exists()


class TestSecurityRulesOnTheServer:
    """The vault's own rules hold on the server even for a client that skips them."""

    @pytest.fixture(scope="class")
    @classmethod
    def guarded(cls, server, tmp_path_factory):
        """Vault 'other' linked to a guard (by its owner, through the server)."""
        from strongroom.testing import Cli

        tmp = tmp_path_factory.mktemp("guard")
        cli = Cli()
        env = {**server.env("owner"), "STRONGROOM_VAULT": server.url("other")}
        cli("guard", "keygen", "--out", str(tmp / "guard.key"), env=env)
        cli("vault", "guard", "link", str(tmp / "guard.key.pub"), env=env)
        return tmp, env

    def test_key_slot_removal_needs_the_guards_ticket_even_for_an_owner(self, server, guarded):
        """Deleting keys/<slot> without a key.remove ticket is refused; with one (the CLI sends it) it passes."""
        from strongroom.testing import Cli

        tmp, env = guarded
        cli = Cli()
        added = json.loads(cli("vault", "key", "add", "--label", "spare", "--new-passphrase-env", "NEWPASS",
                               "--json", env={**env, "NEWPASS": "spare passphrase"}).stdout)["slot"]
        owner = store_of(server, "owner", "other")
        with pytest.raises(DeleteRefused) as info:
            owner.delete(f"keys/{added}")
        assert "key.remove ticket" in str(info.value)
        vault_id = json.loads(cli("vault", "info", "--json", env=env).stdout)["vault_id"]
        cli("guard", "sign", "--key", str(tmp / "guard.key"), "--vault-id", vault_id, "--operation", "key.remove",
            "--param", f"slot={added}", "--output", str(tmp / "t1"), env=env)
        cli("vault", "key", "remove", "--ticket", str(tmp / "t1"), added, env=env)
        assert not (server.storage["other"] / "keys" / added).exists()

    def test_a_settings_document_that_weakens_security_is_refused(self, server, guarded):
        """A contributor's client turning soft delete off without the guard's ticket: 403, not stored."""
        from strongroom.models import time_id, utcnow

        vault = _open_as(server, "contributor")
        current = vault.settings.to_dict()
        security = current["security"]
        weakened = {**current, "security": {**security, "soft_delete": {**security["soft_delete"], "state": "disabled"}}}
        name = f"settings/{time_id(utcnow())}"
        with pytest.raises(AccessDenied) as info:
            vault.repo.put_document(name, weakened)
        assert "without the guard's ticket" in str(info.value)
        assert not (server.storage["other"] / name).exists()

    def test_a_point_header_is_not_deleted_before_its_purge_time(self, server, guarded, tmp_path):
        """With soft delete on, deleting a live point's header directly is refused, even for an owner."""
        from strongroom.testing import Cli

        _, env = guarded
        (tmp_path / "f.txt").write_text("data")
        cli = Cli()
        cli("protect", "files", "--path", str(tmp_path), "rules-item", env=env)
        cli("backup", "rules-item", env=env)
        point = json.loads(cli("points", "rules-item", "--json", env=env).stdout)[0]
        name = f"points/{point['item_id']}/{point['point_id']}"
        with pytest.raises(DeleteRefused) as info:
            store_of(server, "owner", "other").delete(name)
        assert "soft delete is on" in str(info.value) or "purge time" in str(info.value)
        assert (server.storage["other"] / name).exists()

    def test_a_policy_version_that_shortens_retention_needs_the_guards_ticket(self, server, guarded):
        """A contributor's client writing a policy version that keeps fewer daily points, around the
        client's own checks: 403 without a retention.shorten ticket, not stored; a longer one passes."""
        from strongroom.models import time_id, utcnow
        from strongroom.testing import Cli

        _, env = guarded
        Cli()("policy", "create", "keep10", "--daily", "01:00", "--keep-daily", "10", env=env)
        vault = _open_as(server, "contributor")
        (current,) = [p for p in vault.policies.list() if p.name == "keep10"]
        doc = current.to_dict()
        shorter = f"policies/keep10/{time_id(utcnow())}"
        with pytest.raises(AccessDenied) as info:
            vault.repo.put_document(shorter, {**doc, "retention": {**doc["retention"], "daily": 2}})
        assert "retention.shorten ticket" in str(info.value)
        assert not (server.storage["other"] / shorter).exists()
        longer = f"policies/keep10/{time_id(utcnow())}"
        vault.repo.put_document(longer, {**doc, "retention": {**doc["retention"], "daily": 20}})
        assert (server.storage["other"] / longer).exists()

    def test_an_operator_trims_superseded_heads_but_never_the_newest(self, server, guarded):
        """Each client deletes the heads the newest eight supersede after writing its own: an
        operator may; deleting one of the newest eight is refused, even for an owner."""
        vault = _open_as(server, "operator")
        for _ in range(10):
            vault.heads.record("test")
        heads = sorted(p.name for p in (server.storage["other"] / "heads").iterdir())
        assert len(heads) == 8  # the older ones went, trimmed by the operator's client
        with pytest.raises(DeleteRefused) as info:
            store_of(server, "owner", "other").delete(f"heads/{heads[-1]}")
        assert "one of the newest 8" in str(info.value)


def _open_as(server, user):
    from strongroom.vault import Vault

    with pytest.MonkeyPatch.context() as env:
        env.setenv("STRONGROOM_TOKEN", server.tokens[user])
        env.setenv("STRONGROOM_PASSPHRASE", PASSPHRASE)
        return Vault.open(server.url("other"), storage_options={"ca_file": server.ca_file})
