"""The vm workload: virtual machine disks (offline images or live QEMU VMs), restored
whole or file by file from inside a disk, or served over NBD to boot from (``strongroom vm export``).

Registered through the ``strongroom`` entry-point group, like any third-party plugin.
"""

from strongroom import hookimpl

from .workload import VmWorkload

__all__ = ["VmWorkload"]


@hookimpl
def strongroom_register_workloads(registry) -> None:
    registry.add("vm", VmWorkload)


@hookimpl
def strongroom_register_commands(cli) -> None:
    from .export import vm_group

    cli.add_command(vm_group)
