"""The files workload: folders and files with full metadata.

Registered through the ``strongroom`` entry-point group, like any third-party plugin.
"""

from strongroom import hookimpl

from .workload import FilesWorkload

__all__ = ["FilesWorkload"]


@hookimpl
def strongroom_register_workloads(registry) -> None:
    registry.add("files", FilesWorkload)
