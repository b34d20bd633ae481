"""What the services call back through: the vault's hooks, bound to the vault.

The services sit below the plugin machinery and the facade, so they do not call pluggy
or pass the vault around; the facade gives each service an object with these methods
(:class:`strongroom.vault.Vault` binds them to ``strongroom_*`` hooks with itself as
the ``vault`` argument).  :data:`NO_HOOKS` does nothing, for services used on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Protocol

if TYPE_CHECKING:
    from ..models import Job, ProtectedItem, RecoveryPoint
    from ..policy.record import Policy

__all__ = ["NO_HOOKS", "NoHooks", "VaultHooks"]


class VaultHooks(Protocol):
    """The hook calls of the vault's operations (see :mod:`strongroom.hookspecs`)."""

    def before_backup(self, item: ProtectedItem) -> None: ...

    def around_backup(self, item: ProtectedItem, run: Callable[[], RecoveryPoint]) -> RecoveryPoint:
        """Run ``run`` (the backup) inside the plugins' backup wrappers; returns the point."""
        ...

    def point_created(self, item: ProtectedItem, point: RecoveryPoint) -> None:
        """A new point was committed (``strongroom_point_created``, then ``strongroom_after_backup``)."""
        ...

    def after_restore(self, point: RecoveryPoint, target: str | None) -> None: ...

    def job_finished(self, job: Job) -> None: ...

    def retention_tags(self, point: RecoveryPoint, policy: Policy | None) -> Iterable[str]:
        """Every plugin's extra tags for ``point``, together."""
        ...

    def validate_policy(self, policy: Policy) -> None:
        """Raise to reject ``policy``."""
        ...


class NoHooks:
    """Hooks that do nothing: no plugin is listening."""

    def before_backup(self, item: ProtectedItem) -> None:
        pass

    def around_backup(self, item: ProtectedItem, run: Callable[[], RecoveryPoint]) -> RecoveryPoint:
        return run()

    def point_created(self, item: ProtectedItem, point: RecoveryPoint) -> None:
        pass

    def after_restore(self, point: RecoveryPoint, target: str | None) -> None:
        pass

    def job_finished(self, job: Job) -> None:
        pass

    def retention_tags(self, point: RecoveryPoint, policy: Policy | None) -> Iterable[str]:
        return ()

    def validate_policy(self, policy: Policy) -> None:
        pass


NO_HOOKS = NoHooks()
