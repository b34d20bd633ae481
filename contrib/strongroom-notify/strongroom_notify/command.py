"""``strongroom notify show`` and ``strongroom notify test``.

- ``show`` prints the configuration in effect: where it comes from, the states and job
  types that notify, the sinks.  A header's literal value and a URL's password and query
  values are shown as ``***``; ``--json`` prints the same as an object, with
  ``configured`` (false, and nothing else, when nothing is configured).
- ``test`` sends a made-up job (type ``backup``, item ``strongroom-notify-test``,
  ``details.test`` true, ``--state`` as asked) through every configured sink, whatever
  ``on`` and ``types`` say, and prints one line per sink.  It exits 0 when every sink
  delivered, else with :class:`~strongroom_notify.errors.NotifyDeliveryFailed` (103).

A bad configuration is :class:`~strongroom_notify.errors.NotifyConfigError` (101); ``test``
with no sink configured is :class:`~strongroom_notify.errors.NotifyNotConfigured` (102).
"""

from __future__ import annotations

import json
import os
from typing import Any

import click
from strongroom import emit_json

from strongroom_notify.config import FINISHED_STATES

__all__ = ["notify"]


@click.group()
def notify() -> None:
    """Notifications when jobs end badly (strongroom-notify)."""


@notify.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(as_json: bool) -> None:
    """Show the notification configuration in effect, secrets as ***."""
    from strongroom import strongroom_home

    from strongroom_notify.config import config_path, load_config

    config = load_config(strongroom_home(), os.environ)
    described = None if config is None else describe(config)
    if as_json:
        emit_json({"configured": described is not None, **(described or {})})
    elif described is None:
        click.echo(f"Not configured: no {config_path(strongroom_home())} and STRONGROOM_NOTIFY_URL is not set.")
    else:
        for line in _lines(described):
            click.echo(line)


@notify.command()
@click.option("--state", type=click.Choice(FINISHED_STATES), default="failed", show_default=True,
              help="The state of the made-up job.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def test(state: str, as_json: bool) -> None:
    """Send a made-up job through every configured sink and say whether each worked."""
    from strongroom import strongroom_home

    from strongroom_notify.config import config_path, load_config
    from strongroom_notify.errors import NotifyDeliveryFailed, NotifyNotConfigured
    from strongroom_notify.notifier import deliver, sinks_for
    from strongroom_notify.payload import notification

    config = load_config(strongroom_home(), os.environ)
    sinks = [] if config is None else sinks_for(config, os.environ)
    if not sinks:
        raise NotifyNotConfigured(path=config_path(strongroom_home()))
    results = deliver(sinks, notification(_test_vault(), _test_job(state)))
    if as_json:
        emit_json([{"sink": r.sink, "ok": r.ok, "detail": r.detail} for r in results])
    else:
        for r in results:
            click.echo(f"{r.sink}: {'ok' if r.ok else 'FAILED'}: {r.detail}")
    failed = [r.sink for r in results if not r.ok]
    if failed:
        raise NotifyDeliveryFailed(failed=len(failed), total=len(results), sinks=", ".join(failed))


def describe(config) -> dict[str, Any]:
    """The configuration as ``show`` prints it, with no secret in it."""
    from strongroom_notify.urls import redact

    webhook = command = None
    if config.webhook is not None:
        webhook = {"url": redact(config.webhook.url), "timeout": config.webhook.timeout,
                   "headers": {name: value.describe() for name, value in config.webhook.headers}}
    if config.command is not None:
        command = {"argv": list(config.command.argv), "timeout": config.command.timeout}
    return {
        "source": config.source,
        "on": [s for s in FINISHED_STATES if s in config.on],
        "types": None if config.types is None else sorted(config.types),
        "webhook": webhook,
        "command": command,
    }


def _lines(described: dict[str, Any]) -> list[str]:
    lines = [f"source:  {described['source']}",
             f"on:      {', '.join(described['on']) or '(nothing)'}",
             f"types:   {', '.join(described['types']) if described['types'] is not None else 'all'}"]
    webhook, command = described["webhook"], described["command"]
    if webhook is not None:
        lines.append(f"webhook: POST {webhook['url']} (timeout {webhook['timeout']:g} s)")
        lines += [f"  {name}: {value if isinstance(value, str) else json.dumps(value)}"
                  for name, value in webhook["headers"].items()]
    if command is not None:
        lines.append(f"command: {' '.join(command['argv'])} (timeout {command['timeout']:g} s)")
    if webhook is None and command is None:
        lines.append("sinks:   none (nothing is sent)")
    return lines


def _test_vault():
    from strongroom_notify.payload import VaultRef

    return VaultRef(vault_id="0" * 32, name="strongroom-notify-test", url="")


def _test_job(state: str) -> dict[str, Any]:
    import datetime as dt

    from strongroom import Job

    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
    job = Job(job_id="strongroom-notify-test", type="backup", state=state, started=now, ended=now,
              item="strongroom-notify-test",
              error="a made-up failure sent by 'strongroom notify test'" if state == "failed" else None,
              details={"test": True})
    return job.to_dict()
