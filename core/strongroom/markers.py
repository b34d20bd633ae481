"""The pluggy markers of strongroom's plugin API.

Plugin authors import these as ``strongroom.hookimpl`` (to implement a hook) and
``strongroom.hookspec`` (used by :mod:`strongroom.hookspecs` to declare one); they never
need to import pluggy themselves.

    from strongroom import hookimpl

    @hookimpl
    def strongroom_register_workloads(registry):
        registry.add("files", FilesWorkload)
"""

from __future__ import annotations

import pluggy

#: The pluggy project name: hook functions are recognised by the markers of this project.
PROJECT_NAME = "strongroom"

#: The entry-point group that installed distributions use to declare plugins, built-ins included.
ENTRY_POINT_GROUP = "strongroom"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["ENTRY_POINT_GROUP", "PROJECT_NAME", "hookimpl", "hookspec"]
