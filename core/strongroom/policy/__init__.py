"""Policies as pure rules: schedules, retention, due times and the records they make.

- :mod:`.schedule` - when things run (every N hours, daily, weekly; timezones, DST);
- :mod:`.retention` - GFS tags and expiry of recovery points, floors;
- :mod:`.due` - whether a scheduled run is due, missed runs coalesced;
- :mod:`.durations` - durations and dates as people type them;
- :mod:`.record` - the :class:`~.record.Policy` record; :mod:`.options` builds one from
  command-line options;
- :mod:`.prunesettings` - the vault's prune settings record.

Everything here is a function of its inputs (it takes ``now``) and reads no vault; the
services that keep policies in a vault and run schedules are in
:mod:`strongroom.services` (``policies``, ``retention``, ``claims``, ``schedule``).
"""
