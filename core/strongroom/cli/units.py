"""The systemd units ``strongroom install-units`` writes (also in ``packaging/systemd/``).

Each text is a template: :func:`render` fills in ``@STRONGROOM@`` (the strongroom
executable), ``@VAULT@`` (the vault URL) and ``@WANTEDBY@`` (``multi-user.target`` for the
system, ``default.target`` for a user), escaping ``%`` (systemd's specifiers) and ``"``, ``\\``
(inside the quoted values; ``$`` too in the command line).  ``packaging/systemd/`` holds the same texts, unrendered (a
test keeps them equal).
"""

from __future__ import annotations

__all__ = ["AGENT", "RUN_DUE_SERVICE", "RUN_DUE_TIMER", "SYSTEM_ONLY", "UNITS", "render"]

AGENT = """\
# strongroom agent: runs due backups, prunes and drills while it runs.
# Written by `strongroom install-units`, which fills in @STRONGROOM@ (the strongroom
# executable) and @VAULT@ (the vault URL). Use this or strongroom-run-due.timer, not both.
# The passphrase and storage secrets go in the environment file (mode 0600), e.g.
#   STRONGROOM_PASSPHRASE=...
# which is /etc/strongroom/strongroom.env for the system, ~/.config/strongroom/strongroom.env
# for a user unit (%E).

[Unit]
Description=strongroom agent: scheduled backups, prunes and drills
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
NotifyAccess=main
Environment="STRONGROOM_VAULT=@VAULT@"
EnvironmentFile=-%E/strongroom/strongroom.env
ExecStart="@STRONGROOM@" agent
# The agent says WATCHDOG=1 at least every half of this while it runs.
WatchdogSec=5min
Restart=on-failure
RestartSec=30s
# SIGTERM to the agent only: it lets the work in progress finish (its children, such as
# pg_dump, keep running); systemd kills what is left after TimeoutStopSec, which is safe.
KillMode=mixed
TimeoutStopSec=1h
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
# Hardening that keeps every protected path readable (backups read anywhere) and the
# vault, a local folder anywhere outside /usr, /boot and /etc, writable.
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes

[Install]
WantedBy=@WANTEDBY@
"""

RUN_DUE_SERVICE = """\
# strongroom run-due: runs the backups, prune and drills that are due, then exits.
# Started by strongroom-run-due.timer (an alternative to strongroom-agent.service).
# Written by `strongroom install-units`, which fills in @STRONGROOM@ and @VAULT@.
# Secrets go in the environment file, as for the agent (%E/strongroom/strongroom.env).

[Unit]
Description=strongroom: run due backups, prunes and drills
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
Environment="STRONGROOM_VAULT=@VAULT@"
EnvironmentFile=-%E/strongroom/strongroom.env
ExecStart="@STRONGROOM@" run-due
# A run that fails a job exits 79: the unit shows failed (systemctl --failed).
KillMode=mixed
TimeoutStopSec=1h
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
"""

RUN_DUE_TIMER = """\
# Starts strongroom-run-due.service every minute (run-due runs only what is due and is
# safe to start often, and from two places at once).
# Written by `strongroom install-units`.

[Unit]
Description=strongroom: look for due backups every minute

[Timer]
OnCalendar=minutely
Persistent=true

[Install]
WantedBy=timers.target
"""

#: The units by file name, in the order they are written.
UNITS = {
    "strongroom-agent.service": AGENT,
    "strongroom-run-due.service": RUN_DUE_SERVICE,
    "strongroom-run-due.timer": RUN_DUE_TIMER,
}


#: Sandboxing a user's systemd instance may lack (it needs user namespaces): left out of
#: user units, so they start everywhere.
SYSTEM_ONLY = ("PrivateTmp=", "ProtectSystem=", "ProtectKernelTunables=", "ProtectKernelModules=",
               "ProtectKernelLogs=", "ProtectControlGroups=", "ProtectClock=", "ProtectHostname=",
               "RestrictRealtime=", "RestrictSUIDSGID=", "LockPersonality=")


def _escape(value: str) -> str:
    """A value for inside a double-quoted systemd setting: ``%`` doubled (not a specifier),
    ``\\`` and ``"`` escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def render(text: str, *, executable: str, vault: str, user: bool) -> str:
    """``text`` with its placeholders filled in (see the module docstring); for a user
    unit, without the :data:`SYSTEM_ONLY` settings."""
    if user:
        text = "".join(line for line in text.splitlines(keepends=True) if not line.startswith(SYSTEM_ONLY))
    return (text.replace("@STRONGROOM@", _escape(executable).replace("$", "$$"))
            .replace("@VAULT@", _escape(vault))
            .replace("@WANTEDBY@", "default.target" if user else "multi-user.target"))
