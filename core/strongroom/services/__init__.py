"""The vault's operations, as small services that take what they need.

Each service is given the repository, the clock, the other services and the callables
it calls back through (:class:`~strongroom.services.hooks.VaultHooks`, a workload
lookup), never the :class:`~strongroom.vault.Vault` facade, which composes them:

- :mod:`.versions` - names of versioned documents, the newest version of each;
- :mod:`.settings` - the vault settings documents;
- :mod:`.jobs` - job records, and running an operation as a job;
- :mod:`.items` - protected-item documents;
- :mod:`.pointstatus` and :mod:`.points` - recovery-point headers and their statuses,
  and read access to a point's tree;
- :mod:`.retention` - retention verdicts of an item's points, written as statuses;
- :mod:`.policies` - policy documents;
- :mod:`.lifecycle` - protect, stop, resume;
- :mod:`.backup`, :mod:`.restore`, :mod:`.verify`, :mod:`.prune` - the operations on
  data; :mod:`.repair` (with :mod:`.losses`, which points and files lost data) - setting
  damaged objects aside and indexing intact copies;
- :mod:`.claims` and :mod:`.schedule` - scheduled runs (``run-due``, ``agent``);
- :mod:`.keys` - key slots.

A service never imports the facade, the plugin machinery or the command line.
"""
