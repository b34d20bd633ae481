"""The errors strongroom-notify reports: one line each, exit codes 100-103.

They are shown only by the ``strongroom notify`` commands (``strongroom: error: <message>``,
exit code below).  During a job nothing here is raised to strongroom: a bad configuration
or a failing sink becomes one ``strongroom-notify: ...`` warning line on stderr.
"""

from __future__ import annotations

from strongroom import StrongroomError

__all__ = ["NotifyConfigError", "NotifyDeliveryFailed", "NotifyError", "NotifyNotConfigured"]


class NotifyError(StrongroomError):
    """strongroom-notify: {message}"""

    exit_code = 100


class NotifyConfigError(NotifyError):
    """Bad notification configuration in {source}: {reason}"""

    exit_code = 101


class NotifyNotConfigured(NotifyError):
    """No notification sink is configured: add [webhook] or [command] to {path}, or set STRONGROOM_NOTIFY_URL."""

    exit_code = 102


class NotifyDeliveryFailed(NotifyError):
    """{failed} of {total} notification sink(s) failed: {sinks}."""

    exit_code = 103
