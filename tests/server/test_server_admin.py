"""The server folder and its admin commands: init, users, tokens, roles, vaults, and that
changes take effect on a running server without a restart."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import socket
import stat

import httpx
import pytest
from cryptography import x509

from strongroom.server.roles import ROLES, at_least
from strongroom.server.serverdir import ServerDir, UserBook, parse_expires
from strongroom.testing import ServerProcess


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


class TestInit:
    def test_makes_the_folder_with_private_modes(self, tmp_path, server_cli):
        """init writes server.toml, a self-signed certificate, users.json and home/, secrets 0600."""
        folder = tmp_path / "srv"
        result = server_cli("server", "init", str(folder), "--listen", "127.0.0.1:28999")
        assert (folder / "server.toml").is_file() and (folder / "home").is_dir()
        assert _mode(folder) == 0o700
        assert _mode(folder / "users.json") == 0o600
        assert _mode(folder / "tls" / "key.pem") == 0o600
        config = ServerDir(folder).config
        assert config.listen == "127.0.0.1:28999"
        assert config.tls_cert == "tls/cert.pem"
        cert = x509.load_pem_x509_certificate((folder / "tls" / "cert.pem").read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in san.get_values_for_type(x509.DNSName)
        assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
        assert "srv_" in result.stdout

    def test_admin_token_is_shown_once_and_stored_hashed(self, tmp_path, server_cli):
        """The admin token is printed by init only; users.json keeps its SHA-256, never the secret."""
        folder = tmp_path / "srv"
        result = server_cli("server", "init", str(folder), "--json")
        token = json.loads(result.stdout)["token"]
        secret = token.split("_", 2)[2]
        stored = (folder / "users.json").read_text()
        assert secret not in stored
        assert hashlib.sha256(secret.encode()).hexdigest() in stored
        listing = server_cli("server", "token", "list", "--dir", str(folder))
        assert secret not in listing.output and token.split("_")[1] in listing.stdout
        book = ServerDir(folder).users
        principal = book.authenticate(token, NOW)
        assert principal.user == "admin" and principal.role_for("anything") == "owner"

    def test_refuses_a_folder_that_is_not_empty(self, tmp_path, server_cli):
        """init does not touch a folder that already holds files."""
        (tmp_path / "srv").mkdir()
        (tmp_path / "srv" / "mine.txt").write_text("keep")
        result = server_cli("server", "init", str(tmp_path / "srv"), expect=3)
        assert result.stderr.count("\n") == 1 and "not an empty folder" in result.stderr
        assert sorted(p.name for p in (tmp_path / "srv").iterdir()) == ["mine.txt"]

    def test_uses_a_given_certificate(self, tmp_path, server_folder, server_cli):
        """With --tls-cert/--tls-key the folder names them and makes no certificate of its own."""
        sdir, _ = server_folder
        cert, key = sdir.path / "tls" / "cert.pem", sdir.path / "tls" / "key.pem"
        folder = tmp_path / "srv2"
        server_cli("server", "init", str(folder), "--tls-cert", str(cert), "--tls-key", str(key))
        config = ServerDir(folder).config
        assert config.tls_cert == str(cert) and config.tls_key == str(key)
        assert not (folder / "tls").exists()


class TestUserBook:
    def test_wrong_malformed_and_unknown_tokens_are_refused(self, tmp_path):
        """authenticate gives None for a wrong secret, a malformed token, an unknown id, no token."""
        book = UserBook(tmp_path / "users.json")
        book.add_user("ann")
        token = book.create_token("ann")
        prefix, token_id, secret = token.split("_", 2)
        assert book.authenticate(token, NOW).user == "ann"
        assert book.authenticate(f"{prefix}_{token_id}_{'A' * len(secret)}", NOW) is None
        assert book.authenticate(f"{prefix}_{'0' * 16}_{secret}", NOW) is None
        assert book.authenticate("Bearer nonsense", NOW) is None
        assert book.authenticate(None, NOW) is None

    def test_expired_and_revoked_tokens_are_refused(self, tmp_path):
        """A token stops working at its expiry and when revoked."""
        book = UserBook(tmp_path / "users.json")
        book.add_user("ann")
        token = book.create_token("ann", NOW + dt.timedelta(hours=1))
        assert book.authenticate(token, NOW) is not None
        assert book.authenticate(token, NOW + dt.timedelta(hours=1)) is None
        other = book.create_token("ann")
        book.revoke(other.split("_")[1])
        assert book.authenticate(other, NOW) is None

    def test_the_stronger_of_a_vault_role_and_a_star_role_counts(self, tmp_path):
        """role_for takes the stronger of the vault's own role and the every-vault one."""
        book = UserBook(tmp_path / "users.json")
        book.add_user("ann")
        book.assign("ann", "*", "reader")
        book.assign("ann", "v1", "contributor")
        principal = book.authenticate(book.create_token("ann"), NOW)
        assert principal.role_for("v1") == "contributor"
        assert principal.role_for("v2") == "reader"
        book.unassign("ann", "*")
        assert book.authenticate(book.create_token("ann"), NOW).role_for("v2") is None

    def test_roles_are_ordered(self):
        """Each role includes the ones before it; no role includes none."""
        for i, role in enumerate(ROLES):
            assert all(at_least(role, lower) for lower in ROLES[:i + 1])
            assert not any(at_least(role, higher) for higher in ROLES[i + 1:])
            assert not at_least(None, role) and not at_least("admin", role)

    def test_expires_forms(self):
        """--expires takes 30d, 12h, 2w and dates; refuses junk and the past."""
        assert parse_expires("30d", NOW) == NOW + dt.timedelta(days=30)
        assert parse_expires("12h", NOW) == NOW + dt.timedelta(hours=12)
        assert parse_expires("2031-02-03", NOW) == dt.datetime(2031, 2, 3, tzinfo=dt.timezone.utc)
        assert parse_expires(None, NOW) is None


class TestBadInput:
    @pytest.mark.parametrize("args, message", [
        (["token", "create", "nobody"], "No user 'nobody'"),
        (["token", "create", "admin", "--expires", "soon"], "expected a duration"),
        (["token", "create", "admin", "--expires", "2001-01-01"], "in the past"),
        (["token", "revoke", "0123456789abcdef"], "No token '0123456789abcdef'"),
        (["role", "assign", "admin", "--vault", "v1", "--role", "superuser"], "unknown role 'superuser'"),
        (["role", "assign", "nobody", "--vault", "v1", "--role", "reader"], "No user 'nobody'"),
        (["role", "assign", "admin", "--role", "reader"], "missing --vault"),
        (["role", "remove", "admin", "--vault", "v9"], "has no role on vault 'v9'"),
        (["user", "add", "../etc"], "bad user name"),
        (["user", "add", "admin"], "already exists"),
        (["vault", "add", "v1", "--storage", "/nonexistent/x"], "give --create"),
    ])
    def test_one_line_exit_3(self, server_folder, server_cli, args, message):
        """Bad admin input: one line on standard error, exit code 3, nothing changed."""
        sdir, _ = server_folder
        before = (sdir.path / "users.json").read_bytes()
        result = server_cli("server", *args, "--dir", str(sdir.path), expect=3)
        assert message in result.stderr and result.stderr.count("\n") == 1
        assert (sdir.path / "users.json").read_bytes() == before

    def test_no_folder_given(self, server_cli, monkeypatch):
        """Without --dir or STRONGROOM_SERVER_DIR: one line, exit 3."""
        monkeypatch.delenv("STRONGROOM_SERVER_DIR", raising=False)
        result = server_cli("server", "user", "list", expect=3)
        assert "--dir DIR" in result.stderr and result.stderr.count("\n") == 1


class TestVaults:
    def test_create_and_adopt(self, tmp_path, server_folder, server_cli, strongroom_cli):
        """vault add --create makes a vault the server opens; --recovery-kit adopts one made elsewhere."""
        from strongroom.server.hosted import Hosted

        sdir, _ = server_folder
        server_cli("server", "vault", "add", "v1", "--storage", str(tmp_path / "v1"), "--create",
                   "--dir", str(sdir.path))
        strongroom_cli()("vault", "create", str(tmp_path / "v2"), "--name", "other")
        strongroom_cli(str(tmp_path / "v2"))("vault", "key", "export", "--output", str(tmp_path / "kit.txt"))
        server_cli("server", "vault", "add", "v2", "--storage", str(tmp_path / "v2"), "--recovery-kit",
                   str(tmp_path / "kit.txt"), "--dir", str(sdir.path))
        listing = json.loads(server_cli("server", "vault", "list", "--json", "--dir", str(sdir.path)).stdout)
        assert [v["name"] for v in listing] == ["v1", "v2"]
        hosted = Hosted(ServerDir(sdir.path))
        assert hosted.names() == ["v1", "v2"]
        assert hosted.vault("v1").settings.name == "v1"
        slots = hosted.dir.home / "keys"
        assert slots.is_dir() and len(list(slots.rglob("*"))) >= 2  # the server's slots of v1 and v2

    def test_secret_options_come_from_the_environment(self, server_folder, monkeypatch):
        """A secret option is kept as the name of a variable in server.toml; its value is read when used."""
        from strongroom.server.serverdir import HostedConfig

        sdir, _ = server_folder
        sdir.add_vault("s3v", "s3://bucket/v", {"key": "k", "secret": {"from_env": "MY_SECRET"}})
        conf = ServerDir(sdir.path).config.vaults["s3v"]
        assert conf == HostedConfig("s3v", "s3://bucket/v", {"key": "k", "secret": {"from_env": "MY_SECRET"}})
        monkeypatch.setenv("MY_SECRET", "s3cr3t")
        assert conf.resolved_options() == {"key": "k", "secret": "s3cr3t"}
        assert "s3cr3t" not in (sdir.path / "server.toml").read_text() and "s3cr3t" not in repr(conf)

    def test_refusals_are_journaled_in_the_vault(self, tmp_path, server_folder, server_cli):
        """ServerState.refused writes a server.refused entry into the hosted vault's journal."""
        from strongroom.server.app import ServerState
        from strongroom.server.hosted import Hosted
        from strongroom.server.serverdir import Principal

        sdir, _ = server_folder
        server_cli("server", "vault", "add", "v1", "--storage", str(tmp_path / "v1"), "--create",
                   "--dir", str(sdir.path))
        state = ServerState(ServerDir(sdir.path), Hosted(ServerDir(sdir.path)))
        state.refused("v1", Principal("ann", "0123456789abcdef", {"v1": "reader"}), "DELETE /vaults/v1/objects/x",
                      "reader may not delete")
        state.refused("nope", None, "GET /vaults/nope/list", "no such vault")
        entry = [e for e in state.hosted.vault("v1").journal.entries() if e.operation == "server.refused"][-1]
        assert entry.outcome == "refused" and entry.params["user"] == "ann"
        assert entry.params["token_id"] == "0123456789abcdef" and "may not delete" in entry.detail
        line = json.loads(sdir.audit_log.read_text().splitlines()[-1])
        assert line["vault"] == "nope" and line["operation"] == "server.refused"


class TestRunningServer:
    def test_serves_over_tls_with_its_own_certificate(self, strongroom_server: ServerProcess):
        """/healthz answers over TLS verified with the folder's certificate, and not with the default trust."""
        with strongroom_server.client() as client:
            assert client.get("/healthz").text == "ok\n"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{strongroom_server.url}/healthz")

    def test_revocation_and_expiry_take_effect_without_restart(self, strongroom_server: ServerProcess):
        """A token revoked by the CLI, or past its expiry, is refused at the next request."""
        strongroom_server.admin("user", "add", "ann")
        token = strongroom_server.admin("token", "create", "ann", "--json").stdout
        token = json.loads(token)["token"]
        with strongroom_server.client(token) as client:
            assert client.get("/whoami").json()["user"] == "ann"
            strongroom_server.admin("token", "revoke", token.split("_")[1])
            assert client.get("/whoami").status_code == 401
        now = dt.datetime.now(dt.timezone.utc)
        expired = strongroom_server.users.create_token("ann", now - dt.timedelta(seconds=1))
        valid = strongroom_server.users.create_token("ann", now + dt.timedelta(hours=1))
        with strongroom_server.client(expired) as client:
            assert client.get("/whoami").status_code == 401
        with strongroom_server.client(valid) as client:
            assert client.get("/whoami").status_code == 200
        audit = [json.loads(line) for line in strongroom_server.dir.audit_log.read_text().splitlines()]
        assert [a["operation"] for a in audit] == ["server.refused", "server.refused"]

    def test_role_changes_without_restart(self, strongroom_server: ServerProcess):
        """role assign and remove show in the caller's roles at the next request."""
        strongroom_server.admin("user", "add", "bob")
        token = json.loads(strongroom_server.admin("token", "create", "bob", "--json").stdout)["token"]
        with strongroom_server.client(token) as client:
            assert client.get("/whoami").json()["roles"] == {}
            strongroom_server.admin("role", "assign", "bob", "--vault", "v1", "--role", "operator")
            assert client.get("/whoami").json()["roles"] == {"v1": "operator"}
            roles = json.loads(strongroom_server.admin("role", "list", "--json").stdout)
            assert {"schema": 1, "user": "bob", "vault": "v1", "role": "operator"} in roles
            strongroom_server.admin("role", "remove", "bob", "--vault", "v1")
            assert client.get("/whoami").json()["roles"] == {}

    def test_oversized_body_is_refused_and_sigterm_exits_0(self, strongroom_server: ServerProcess):
        """A body declared over the limit gets 413 before it is read; SIGTERM stops the server with 0."""
        from strongroom.server.app import MAX_BODY

        raw = socket.create_connection((strongroom_server.host, strongroom_server.port), timeout=10)
        with strongroom_server.ssl_context().wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(f"PUT /vaults/v1/objects/data/00/x HTTP/1.1\r\nHost: localhost\r\n"
                        f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode())
            assert tls.recv(4096).split(b"\r\n")[0] == b"HTTP/1.1 413 Request Entity Too Large"
        with strongroom_server.client() as client:
            assert client.get("/healthz").status_code == 200  # still serving
        assert strongroom_server.stop() == 0


class TestWithoutTheExtra:
    def test_server_commands_name_the_extra(self, server_cli, monkeypatch):
        """Without the [server] packages every server command says what to install: one line, exit 3."""
        from strongroom.cli import server_cmd

        monkeypatch.setattr(server_cmd, "_EXTRA", ("no_such_module_for_the_test",))
        result = server_cli("server", "user", "list", "--dir", "/nonexistent", expect=3)
        assert "pip install 'strongroom[server]'" in result.stderr and result.stderr.count("\n") == 1
