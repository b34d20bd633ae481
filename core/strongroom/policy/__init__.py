"""Policies: schedules, retention and due work, and the vault services built on them.

- :mod:`.schedule` - when things run (every N hours, daily, weekly; timezones, DST);
- :mod:`.retention` - GFS tags and expiry of recovery points, floors;
- :mod:`.due` - whether a scheduled run is due, missed runs coalesced;
- :mod:`.book` - policy documents in the vault (create, update, delete, validation);
- :mod:`.claims` - run claims, so two ``run-due`` processes never run one slot twice;
- :mod:`.runner` - ``run-due`` and the ``agent`` loop.

The first three are pure (they take ``now``); the others work on a vault.
"""
