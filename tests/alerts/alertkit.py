"""Real receivers on loopback for the alert sinks: an SMTP server (aiosmtpd) and a script
(the HTTP one is ``webhookkit``'s, shared with other folders); and a vault with one
protected folder."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ssl
from pathlib import Path

import pytest

from strongroom.testing import free_port
from strongroom.vault import Vault


# --- e-mail ---------------------------------------------------------------------------


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1, recording every message; ``logins`` the accepted logins."""

    def __init__(self, *, tls_context: ssl.SSLContext | None = None, login: tuple[str, str] | None = None) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                receiver.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                receiver.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
                return "250 Message accepted"

        def authenticator(server, session, envelope, mechanism, auth_data):
            user = auth_data.login.decode()
            ok = login is not None and (user, auth_data.password.decode()) == login
            if ok:
                receiver.logins.append(user)
            return AuthResult(success=ok, handled=False)

        kwargs: dict = {"hostname": "127.0.0.1", "port": free_port()}
        if login is not None:
            kwargs.update(authenticator=authenticator, auth_require_tls=tls_context is not None)
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        self.port = kwargs["port"]
        self.controller = Controller(Handler(), **kwargs)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp():
    receiver = SmtpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def tls_files(tmp_path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


# --- command --------------------------------------------------------------------------


@pytest.fixture
def command_script(tmp_path) -> tuple[Path, Path]:
    """A script that saves its stdin and its STRONGROOM_ALERT_* variables in a folder,
    one file per alert; returns (script, folder)."""
    folder = tmp_path / "received"
    folder.mkdir()
    script = tmp_path / "on-alert.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'out="{folder}/$STRONGROOM_ALERT_ID"\n'
        'cat > "$out.json"\n'
        'env | grep ^STRONGROOM_ | sort > "$out.env"\n'
    )
    script.chmod(0o755)
    return script, folder


# --- a vault --------------------------------------------------------------------------


@pytest.fixture
def source(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("alpha")
    return src


@pytest.fixture
def item_vault(vault_url, source) -> Vault:
    """A vault with item ``docs`` protecting ``source``."""
    vault = Vault.create(vault_url, name="alerts-test")
    vault.protect("files", "docs", {"paths": [str(source)]})
    return vault
