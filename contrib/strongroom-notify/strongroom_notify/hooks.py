"""The plugin's two hooks: notify when a job ends, add the ``notify`` command.

``strongroom_job_finished`` reads the configuration afresh for every job.  Without one
it returns at once and does nothing else (nor imports its sinks).  It never raises and never changes a job's
outcome or the exit code of the command that ran the job: a bad configuration, a failing
sink or a bug of its own is one ``strongroom-notify: ...`` line on stderr.
"""

from __future__ import annotations

import os

from strongroom import hookimpl, strongroom_home

__all__ = ["strongroom_job_finished", "strongroom_register_commands"]


@hookimpl
def strongroom_job_finished(vault, job) -> None:
    from strongroom_notify.config import load_config
    from strongroom_notify.errors import NotifyConfigError

    try:
        try:
            config = load_config(strongroom_home(), os.environ)
        except NotifyConfigError as exc:
            _warn("configuration", f"{exc}; no notification sent")
            return
        if config is None or not config.wants(job.type, job.state):
            return
        # the sinks (HTTP, TLS) are imported only when a notification is to be sent
        from strongroom_notify.notifier import deliver, sinks_for, warn
        from strongroom_notify.payload import VaultRef, notification

        document = notification(VaultRef.of(vault), job.to_dict())
        for result in deliver(sinks_for(config, os.environ), document):
            if not result.ok:
                warn(result.sink, result.detail)
    except Exception as exc:  # never let notifying change the job's outcome
        _warn("internal error", f"{type(exc).__name__}; no notification sent")


def _warn(what: str, why: str) -> None:
    from strongroom_notify.notifier import warn

    warn(what, why)


@hookimpl
def strongroom_register_commands(cli) -> None:
    from strongroom_notify.command import notify

    cli.add_command(notify)
