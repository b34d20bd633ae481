"""A vault's recovery points as a read-only file system (``strongroom mount``).

:class:`~strongroom.mount.tree.PointsFS` answers the file-system questions (attributes,
listings, link targets, reads) from the vault, knowing nothing of FUSE;
:mod:`strongroom.mount.fuse` serves it through ``mfusepy`` (the ``mount`` extra).
"""
