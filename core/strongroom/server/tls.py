"""A self-signed TLS certificate for a new server folder.

:func:`make_self_signed` writes ``cert.pem`` and ``key.pem`` (mode 0600, written as a new
file, never over an existing one): an ECDSA P-256 key and a certificate for ``localhost``
and ``127.0.0.1`` (plus the listen host when it is another name or address), valid for
:data:`VALID_DAYS` days.  Clients trust it with ``--storage-option ca_file=cert.pem``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

__all__ = ["VALID_DAYS", "make_self_signed"]

VALID_DAYS = 825


def _san(hosts: list[str]):
    from cryptography import x509

    names: list = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_self_signed(cert_path: Path, key_path: Path, extra_host: str | None = None) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "strongroom server")])
    now = dt.datetime.now(dt.timezone.utc)
    hosts = ["localhost", "127.0.0.1"] + ([extra_host] if extra_host and extra_host not in ("0.0.0.0", "::") else [])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    fd = os.open(cert_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
