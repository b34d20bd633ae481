"""Send one notification through every configured sink; report each sink's outcome.

:func:`deliver` never raises for a sink's failure: each sink gives one
:class:`~strongroom_notify.sinks.Delivery`, in the order webhook, command.  An
unexpected exception inside a sink is reported by its type only, since its message could
quote a secret.  :func:`warn` is the one way this plugin writes to a terminal during a
job: a line ``strongroom-notify: <what>: <why>`` on stderr.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import click

from strongroom_notify.config import NotifyConfig
from strongroom_notify.payload import encode
from strongroom_notify.sinks import CommandSink, Delivery, SinkFailed, WebhookSink

__all__ = ["deliver", "sinks_for", "warn"]

PREFIX = "strongroom-notify"


def sinks_for(config: NotifyConfig, environ: Mapping[str, str] | None = None) -> list[Any]:
    """The configured sinks, webhook first."""
    environ = os.environ if environ is None else environ
    sinks: list[Any] = []
    if config.webhook is not None:
        sinks.append(WebhookSink(config.webhook, environ))
    if config.command is not None:
        sinks.append(CommandSink(config.command, environ))
    return sinks


def deliver(sinks: list[Any], document: dict[str, Any]) -> list[Delivery]:
    """Send ``document`` (a notification) through each sink in turn."""
    body = encode(document)
    results = []
    for sink in sinks:
        try:
            results.append(Delivery(sink.name, True, sink.send(body, document["job"])))
        except SinkFailed as exc:
            results.append(Delivery(sink.name, False, str(exc)))
        except Exception as exc:  # a bug in a sink must not cost the other sinks their turn
            results.append(Delivery(sink.name, False, f"unexpected {type(exc).__name__}"))
    return results


def warn(what: str, why: str) -> None:
    try:
        click.echo(f"{PREFIX}: {what}: {why}", err=True)
    except (OSError, ValueError):
        pass  # no usable stderr: the job's outcome still must not change
