"""The files workload: folders and files with full metadata.

Registered through the ``strongroom`` entry-point group, like any third-party plugin.
The workload's module is imported when the hook runs (or ``FilesWorkload`` is asked
for): the scan's helper process imports :mod:`.scan` alone.
"""

from strongroom import hookimpl

__all__ = ["FilesWorkload"]


def __getattr__(name: str):
    if name == "FilesWorkload":
        from .workload import FilesWorkload

        return FilesWorkload
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def strongroom_register_workloads(registry) -> None:
    from .workload import FilesWorkload

    registry.add("files", FilesWorkload)
