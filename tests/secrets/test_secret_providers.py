"""Secret references: the built-in env: and file: providers, the resolver's refusals, and
providers that plugins register through strongroom_register_secret_providers; the test
kit's SecretProviderContract runs on env:, file: and a plugin's test: scheme."""

from __future__ import annotations

import logging
import os

import pytest

import strongroom
from strongroom import Secret, SecretNotAvailable, SecretProvider, hookimpl
from strongroom.errors import DuplicateRegistration, InvalidSecretReference, PluginLoadError
from strongroom.plugins import PluginHost
from strongroom.repository import keyproviders
from strongroom.secrets import MAX_SECRET_FILE, SecretResolver
from strongroom.testing import SecretCase, SecretProviderContract
from strongroom.vault import Vault

PASSWORD = "pw-Zq81-secret"


class Named:
    """A plugin object for direct registration: hook functions become its attributes."""

    def __init__(self, **hooks: object) -> None:
        for name, function in hooks.items():
            setattr(self, name, function)


class TableProvider(SecretProvider):
    """``test:NAME``: a secret from a table; ``test:boom`` fails with the secret in its message."""

    scheme = "test"
    description = "secrets of a test table"

    def __init__(self, table: dict[str, bytes]) -> None:
        self.table = table

    def resolve(self, rest: str) -> Secret:
        if rest == "boom":
            raise RuntimeError(f"connection refused, password was {PASSWORD}")
        if rest not in self.table:
            raise SecretNotAvailable(reason=f"no secret named {rest}")
        return Secret(self.table[rest])


def provider_plugin(provider: SecretProvider) -> Named:
    @hookimpl
    def strongroom_register_secret_providers(registry):
        registry.add(provider.scheme, provider)

    return Named(strongroom_register_secret_providers=strongroom_register_secret_providers)


@pytest.fixture
def builtin() -> SecretResolver:
    return SecretResolver.builtin()


class TestEnvProvider:
    def test_resolves_the_variable(self, builtin, monkeypatch):
        """env:NAME is the variable's value, read when resolved (a changed value is seen)."""
        monkeypatch.setenv("K3_PW", PASSWORD)
        assert builtin.resolve("env:K3_PW") == Secret(PASSWORD.encode())
        monkeypatch.setenv("K3_PW", "changed")
        assert builtin.resolve("env:K3_PW").value == b"changed"

    def test_unset_variable_is_named(self, builtin, monkeypatch):
        """An unset variable is exit 36 naming the reference and the variable."""
        monkeypatch.delenv("K3_PW", raising=False)
        with pytest.raises(SecretNotAvailable) as excinfo:
            builtin.resolve("env:K3_PW")
        assert str(excinfo.value) == "Secret env:K3_PW is not available: environment variable K3_PW is not set"
        assert excinfo.value.exit_code == 36

    def test_empty_variable_is_refused(self, builtin, monkeypatch):
        """A set but empty variable is refused: an empty password is never sent."""
        monkeypatch.setenv("K3_PW", "")
        with pytest.raises(SecretNotAvailable, match="env:K3_PW is not available: the secret is empty"):
            builtin.resolve("env:K3_PW")

    def test_name_with_equals_sign_is_refused_when_given(self, builtin):
        """check() refuses env:A=B, which can never name a variable (exit 35)."""
        with pytest.raises(InvalidSecretReference, match="name of an environment variable") as excinfo:
            builtin.check("env:A=B")
        assert excinfo.value.exit_code == 35


class TestFileProvider:
    def test_one_trailing_newline_is_stripped(self, builtin, tmp_path):
        """Exactly one trailing \\n or \\r\\n is stripped; everything else is kept."""
        cases = {"a": (PASSWORD + "\n", PASSWORD), "b": (PASSWORD + "\r\n", PASSWORD),
                 "c": (PASSWORD + "\n\n", PASSWORD + "\n"), "d": (" x y ", " x y ")}
        for name, (content, expected) in cases.items():
            (tmp_path / name).write_text(content, newline="")
            (tmp_path / name).chmod(0o600)
            assert builtin.resolve(f"file:{tmp_path / name}").value == expected.encode(), name

    def test_file_is_read_at_every_resolve(self, builtin, tmp_path):
        """A file rewritten between two resolves gives the new secret."""
        path = tmp_path / "pw"
        path.write_text("one\n")
        path.chmod(0o600)
        assert builtin.resolve(f"file:{path}").value == b"one"
        path.write_text("two\n")
        assert builtin.resolve(f"file:{path}").value == b"two"

    def test_check_makes_the_path_absolute(self, builtin, tmp_path, monkeypatch):
        """The stored reference of a relative path is absolute (a scheduled run has another cwd)."""
        monkeypatch.chdir(tmp_path)
        assert builtin.check("file:pw") == f"file:{tmp_path / 'pw'}"

    @pytest.mark.parametrize("kind", ["missing", "folder", "fifo", "large", "empty", "newline-only"])
    def test_unusable_files_are_refused(self, builtin, tmp_path, kind):
        """Missing, a folder, a FIFO (without blocking), over 64 KiB, empty: exit 36, the path named."""
        path = tmp_path / "pw"
        reason = {"missing": "No such file", "folder": "not a regular file", "fifo": "not a regular file",
                  "large": "larger than 64 KiB", "empty": "the secret is empty",
                  "newline-only": "the secret is empty"}[kind]
        if kind == "folder":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "large":
            path.write_bytes(b"x" * (MAX_SECRET_FILE + 1))
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "newline-only":
            path.write_bytes(b"\n")
        with pytest.raises(SecretNotAvailable) as excinfo:
            builtin.resolve(f"file:{path}")
        assert str(excinfo.value).startswith(f"Secret file:{path} is not available: ")
        assert reason in str(excinfo.value)

    @pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
    def test_unreadable_file_is_refused(self, builtin, tmp_path):
        """A file this user may not read is exit 36 with the system's reason."""
        path = tmp_path / "pw"
        path.write_text(PASSWORD)
        path.chmod(0)
        with pytest.raises(SecretNotAvailable, match="Permission denied"):
            builtin.resolve(f"file:{path}")

    def test_unprotected_file_is_used_with_one_warning(self, builtin, tmp_path, caplog):
        """A file others may read still resolves, with one warning naming it and the chmod;
        a file of mode 0600 gives no warning."""
        path = tmp_path / "pw"
        path.write_text(PASSWORD)
        path.chmod(0o644)
        with caplog.at_level(logging.WARNING, logger="strongroom.secrets"):
            assert builtin.resolve(f"file:{path}").value == PASSWORD.encode()
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "UNPROTECTED SECRET FILE" in warnings[0] and f"chmod 600 {path}" in warnings[0]
        assert PASSWORD not in warnings[0]
        caplog.clear()
        path.chmod(0o600)
        with caplog.at_level(logging.WARNING, logger="strongroom.secrets"):
            builtin.resolve(f"file:{path}")
        assert not [r for r in caplog.records if r.levelno == logging.WARNING]


class TestReferences:
    @pytest.mark.parametrize("ref", [PASSWORD, "", "env:", "Env:X", ":x", "9a:x"])
    def test_malformed_reference_is_refused_without_echoing_it(self, builtin, ref):
        """A text that is not SCHEME:REST is exit 35 listing the known schemes, and is not
        repeated (it may be the password itself, given by mistake)."""
        for call in (builtin.check, builtin.resolve):
            with pytest.raises(InvalidSecretReference) as excinfo:
                call(ref)
            message = str(excinfo.value)
            assert excinfo.value.exit_code == 35
            assert "SCHEME:REST" in message and "known schemes: env, file" in message
            assert PASSWORD not in message

    def test_unknown_scheme_lists_the_known_ones(self, builtin):
        """An unknown scheme is named with the known ones (exit 35), when given and when resolved."""
        for call in (builtin.check, builtin.resolve):
            with pytest.raises(InvalidSecretReference) as excinfo:
                call("pkcs11:token=x")
            assert str(excinfo.value) == ("Bad secret reference: unknown scheme 'pkcs11'"
                                          " (known schemes: env, file)")

    def test_secret_repr_is_redacted(self, builtin, monkeypatch):
        """A resolved secret shows itself nowhere: repr and str are redacted."""
        monkeypatch.setenv("K3_PW", PASSWORD)
        secret = builtin.resolve("env:K3_PW")
        assert PASSWORD not in repr(secret) and PASSWORD not in str(secret)

    def test_public_resolve_secret_knows_the_builtins(self, monkeypatch):
        """strongroom.resolve_secret resolves env: and file: without a plugin host."""
        monkeypatch.setenv("K3_PW", PASSWORD)
        assert strongroom.resolve_secret("env:K3_PW").value == PASSWORD.encode()
        assert {"SecretProvider", "SecretResolver", "resolve_secret", "SecretNotAvailable",
                "InvalidSecretReference"} <= set(strongroom.__all__)


class TestRegistrationHook:
    def test_builtin_schemes_come_from_the_keys_plugin(self):
        """The essential keys plugin registers env and file through the hook."""
        host = PluginHost.create()
        assert {"env", "file"} <= set(host.secret_providers.names())
        assert host.secret_providers.owner("env") == "keys"
        infos = {info.name: info for info in host.plugin_infos()}
        assert "secret-provider:file" in infos["keys"].registered
        assert "strongroom_register_secret_providers" in infos["keys"].hooks

    def test_a_plugins_scheme_resolves(self):
        """A provider added by strongroom_register_secret_providers resolves its scheme, and
        its one-line reason reaches the error with the reference."""
        plugin = provider_plugin(TableProvider({"db": PASSWORD.encode()}))
        host = PluginHost.create(extra_plugins=[("keys", keyproviders), ("tablesecrets", plugin)],
                                 load_entry_points=False)  # only these two, whatever else is installed
        assert host.secret_providers.owner("test") == "tablesecrets"
        assert host.secrets.check("test:db") == "test:db"
        assert host.secrets.resolve("test:db").value == PASSWORD.encode()
        with pytest.raises(SecretNotAvailable, match="^Secret test:other is not available: no secret named other$"):
            host.secrets.resolve("test:other")
        # an installed plugin (contrib/strongroom-pkcs11) may add schemes of its own
        with pytest.raises(InvalidSecretReference, match=r"known schemes: env, file, (\w+, )*test\)"):
            host.secrets.resolve("nope:x")

    def test_a_failing_provider_never_leaks_its_message(self):
        """An exception other than a strongroom error becomes exit 36 naming the provider and
        the exception's type, never its message (which may hold the secret)."""
        host = PluginHost.create(extra_plugins=[("tablesecrets", provider_plugin(TableProvider({})))])
        with pytest.raises(SecretNotAvailable) as excinfo:
            host.secrets.resolve("test:boom")
        assert str(excinfo.value) == "Secret test:boom is not available: the 'test' provider failed (RuntimeError)"
        assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__

    def test_a_scheme_registered_twice_names_both_plugins(self):
        """A plugin registering env again stops start-up naming keys and the plugin."""

        class Env(TableProvider):
            scheme = "env"

        with pytest.raises((DuplicateRegistration, PluginLoadError)) as excinfo:
            PluginHost.create(extra_plugins=[("envagain", provider_plugin(Env({})))])
        assert "keys" in str(excinfo.value) and "envagain" in str(excinfo.value)

    def test_workloads_of_a_vault_resolve_with_every_registered_scheme(self, tmp_path):
        """The vault gives each workload it makes the host's resolver: the plugin's scheme
        works there, while a workload made outside a vault knows the built-ins only."""
        plugin = provider_plugin(TableProvider({"db": PASSWORD.encode()}))
        host = PluginHost.create(extra_plugins=[("tablesecrets", plugin)])
        vault = Vault.create(str(tmp_path / "vault"), name="secrets", plugins=host)
        workload = vault.workload("files")
        assert workload.secrets.resolve("test:db").value == PASSWORD.encode()
        assert host.workloads.get("files")().secrets.schemes() == ["env", "file"]


class TestEnvProviderContract(SecretProviderContract):
    @pytest.fixture
    def secret_case(self, monkeypatch):
        monkeypatch.setenv("K3_CONTRACT_PW", PASSWORD)
        monkeypatch.delenv("K3_CONTRACT_MISSING", raising=False)
        return SecretCase(plugin=keyproviders, scheme="env", present="K3_CONTRACT_PW",
                          expected=PASSWORD.encode(), missing="K3_CONTRACT_MISSING",
                          change=lambda new: monkeypatch.setenv("K3_CONTRACT_PW", new.decode()))


class TestFileProviderContract(SecretProviderContract):
    @pytest.fixture
    def secret_case(self, tmp_path):
        path = tmp_path / "pw"
        path.write_bytes(PASSWORD.encode() + b"\n")
        path.chmod(0o600)
        return SecretCase(plugin=keyproviders, scheme="file", present=str(path), expected=PASSWORD.encode(),
                          missing=str(tmp_path / "missing"), change=lambda new: path.write_bytes(new + b"\n"))


class TestPluginProviderContract(SecretProviderContract):
    @pytest.fixture
    def secret_case(self):
        table = {"db": PASSWORD.encode()}
        return SecretCase(plugin=provider_plugin(TableProvider(table)), scheme="test", present="db",
                          expected=PASSWORD.encode(), missing="other",
                          change=lambda new: table.update(db=new))
