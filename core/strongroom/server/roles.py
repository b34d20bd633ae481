"""The four roles a user may hold on a hosted vault, after Azure's built-in backup roles.

Each role includes the rights of the ones before it: a **reader** sees everything and
changes nothing; an **operator** also backs up and restores (writes new objects only, never
overwrites or deletes one); a **contributor** also changes policies, stops protection and
deletes data as the vault's security rules allow; an **owner** also grants access and
deletes the vault.  The gateway decides which role a request needs; this module only
orders them.
"""

from __future__ import annotations

from .errors import ServerDirError

__all__ = ["ROLES", "at_least", "check_role"]

ROLES = ("reader", "operator", "contributor", "owner")


def at_least(role: str | None, needed: str) -> bool:
    """Whether ``role`` (None: no role) includes the rights of ``needed``."""
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else a one-line usage error."""
    if role not in ROLES:
        raise ServerDirError(message=f"unknown role '{role}': use one of {', '.join(ROLES)}")
    return role


def highest(roles: list[str]) -> str | None:
    """The strongest of ``roles`` (None for none)."""
    known = [r for r in roles if r in ROLES]
    return max(known, key=ROLES.index) if known else None
