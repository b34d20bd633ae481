"""strongroom-notify: tell operators when a strongroom job ends badly.

A strongroom plugin (entry point ``notify`` of the ``strongroom`` group) written only
against the public API, ``strongroom``.  It implements two hooks:

- ``strongroom_job_finished``: when a job ends in a state listed in ``on`` (by default
  ``failed`` and ``completed_with_warnings``), send a JSON notification (version 1, see
  :mod:`strongroom_notify.payload`) to a webhook and/or a command
  (:mod:`strongroom_notify.sinks`).  A failing sink never changes the job's outcome or
  the exit code: it is one ``strongroom-notify: <sink>: <why>`` line on stderr.
- ``strongroom_register_commands``: ``strongroom notify show`` and
  ``strongroom notify test`` (:mod:`strongroom_notify.command`).

Configuration: ``$STRONGROOM_HOME/notify.toml`` and ``STRONGROOM_NOTIFY_URL``
(:mod:`strongroom_notify.config`).  With neither, the plugin does nothing at all.
"""

from __future__ import annotations

__version__ = "0.1.0"

from strongroom_notify.hooks import strongroom_job_finished, strongroom_register_commands  # noqa: E402

__all__ = ["__version__", "strongroom_job_finished", "strongroom_register_commands"]
