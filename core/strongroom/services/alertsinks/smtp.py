"""The ``email`` sink: the alert as an e-mail, sent with SMTP (:mod:`smtplib`).

Options: ``host`` (required), ``from`` (required), ``to`` (required: addresses separated
by commas), ``port`` (default 25, or 465 with ``ssl``), ``starttls`` (yes/no: upgrade the
connection with STARTTLS, refused if the server cannot), ``ssl`` (yes/no: TLS from the
first byte), ``cafile`` (a PEM file of the certificates to trust instead of the system's, for a
server with a private CA), ``username`` and ``password`` (secret; log in when both are
given), ``timeout`` (seconds, default 10).  Server certificates are always verified.

The message's subject is ``[strongroom] SEVERITY CATEGORY: summary``; its body says the
vault, the alert's kind, item, time and details in plain text, and the alert document is
attached as ``alert.json``.  Messages name the server as ``host:port`` only.
"""

from __future__ import annotations

import email.message
import email.utils
import json
import os
from typing import Mapping

from . import SinkFailed, SinkType, encode
from .options import check_flag, check_timeout, flag, timeout_of

__all__ = ["EMAIL"]


def _recipients(options: Mapping[str, str]) -> list[str]:
    return [address.strip() for address in options["to"].split(",") if address.strip()]


def _port(options: Mapping[str, str]) -> int:
    return int(options.get("port", "465" if flag(options, "ssl") else "25"))


def _check(options: Mapping[str, str]) -> None:
    for name in ("host", "from", "to", "username", "password"):
        if any(c in options.get(name, "") for c in "\r\n"):
            raise ValueError(f"{name} must be one line")
    if not _recipients(options):
        raise ValueError("to must name at least one address")
    for address in [options["from"], *_recipients(options)]:
        if "@" not in email.utils.parseaddr(address)[1]:
            raise ValueError(f"{address!r} is not an e-mail address")
    try:
        port = _port(options)
    except ValueError:
        raise ValueError(f"port must be a number, not {options['port']!r}") from None
    if not 0 < port < 65536:
        raise ValueError("port must be between 1 and 65535")
    check_flag(options, "starttls")
    check_flag(options, "ssl")
    if flag(options, "starttls") and flag(options, "ssl"):
        raise ValueError("give starttls or ssl, not both")
    if options.get("cafile") and not os.path.isfile(options["cafile"]):
        raise ValueError(f"cafile {options['cafile']} is not a file")
    if ("username" in options) != ("password" in options):
        raise ValueError("give both username and password, or neither")
    check_timeout(options)


def message(options: Mapping[str, str], document: dict) -> email.message.EmailMessage:
    """The e-mail for ``document``."""
    alert, vault = document.get("alert", {}), document.get("vault", {})
    msg = email.message.EmailMessage()
    msg["Subject"] = f"[strongroom] {str(alert.get('severity', '')).upper()} {alert.get('category')}: {alert.get('summary')}"
    msg["From"] = options["from"]
    msg["To"] = ", ".join(_recipients(options))
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain="strongroom")
    lines = [
        str(alert.get("summary", "")),
        "",
        f"Vault:    {vault.get('name', '')} ({vault.get('id', '')}) at {vault.get('url', '')}",
        f"Alert:    {alert.get('alert_id', '')}, {alert.get('category', '')} / {alert.get('kind', '')},"
        f" severity {alert.get('severity', '')}",
        f"Time:     {alert.get('time', '')} on {alert.get('host', '')}",
    ]
    if alert.get("item"):
        lines.append(f"Item:     {alert['item']}")
    if alert.get("details"):
        lines += ["", "Details:", json.dumps(alert["details"], indent=2, ensure_ascii=False, default=str)]
    lines += ["", f"Acknowledge it with: strongroom alerts ack {alert.get('alert_id', '')}"]
    msg.set_content("\n".join(lines) + "\n")
    msg.add_attachment(encode(document), maintype="application", subtype="json", filename="alert.json")
    return msg


def send(options: Mapping[str, str], document: dict) -> str:
    import smtplib  # here, not at the top: the sink registers at every command's start-up
    import ssl

    host, port, timeout = options["host"], _port(options), timeout_of(options)
    where = f"{host}:{port}"
    try:
        context = ssl.create_default_context(cafile=options.get("cafile") or None)
        if flag(options, "ssl"):
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            client.ehlo_or_helo_if_needed()
            if flag(options, "starttls"):
                if not client.has_extn("starttls"):
                    raise SinkFailed(f"{where} does not offer STARTTLS; not sent")
                client.starttls(context=context)
                client.ehlo()
            if options.get("username"):
                client.login(options["username"], options["password"])
            refused = client.send_message(message(options, document))
    except SinkFailed:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise SinkFailed(f"{where} refused the login (SMTP {exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise SinkFailed(f"{where} refused every recipient ({len(exc.recipients)})") from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise SinkFailed(f"{where} answered SMTP {exc.smtp_code}: {text.splitlines()[0] if text else ''}") from None
    except (smtplib.SMTPException, ssl.SSLError) as exc:
        raise SinkFailed(f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    except TimeoutError:
        raise SinkFailed(f"no answer from {where} within {timeout:g} s") from None
    except OSError as exc:
        raise SinkFailed(f"cannot reach {where}: {exc.strerror or type(exc).__name__}") from None
    accepted = len(_recipients(options)) - len(refused)
    return f"{where} accepted it for {accepted} recipient(s)" + (f", refused {len(refused)}" if refused else "")


EMAIL = SinkType(
    "email", "send the alert as an e-mail (SMTP)", send,
    options={"host": "the SMTP server", "port": "its port (default 25; 465 with ssl)",
             "from": "the sender's address", "to": "recipients, separated by commas",
             "starttls": "yes: upgrade the connection with STARTTLS", "ssl": "yes: TLS from the start (port 465)",
             "cafile": "PEM certificates to trust instead of the system's (a private CA)",
             "username": "log in as this user", "password": "the login's password (secret)",
             "timeout": "seconds to wait for the server (default 10)"},
    required=frozenset({"host", "from", "to"}), secret=frozenset({"password"}), check=_check,
)
