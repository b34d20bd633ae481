"""The server's errors: bad admin input and unknown names (one line, exit code 3 or 40)."""

from __future__ import annotations

from ..errors import NotFound, UsageError

__all__ = ["ServerDirError", "ServerExtraMissing", "UnknownServerToken", "UnknownServerUser", "UnknownHostedVault"]


class ServerDirError(UsageError):
    """{message}"""

    exit_code = 3


class ServerExtraMissing(UsageError):
    """The vault server needs packages that are not installed ({missing}): pip install 'strongroom[server]'"""

    exit_code = 3


class UnknownServerUser(UsageError):
    """No user '{user}' on this server ('strongroom server user list' shows them)."""

    exit_code = 3


class UnknownServerToken(UsageError):
    """No token '{token_id}' on this server ('strongroom server token list' shows them)."""

    exit_code = 3


class UnknownHostedVault(NotFound):
    """This server hosts no vault '{vault}'."""

    exit_code = 40
