"""The difference between a declarative file and the vaults it names, and applying it.

:func:`plan_vault` compares one :class:`~.spec.VaultSpec` with the vault at its URL (None
when there is none yet) and returns a :class:`VaultPlan`: the changes, each one line
(``+ item docs (files)``, ``~ item docs: exclude ['*.tmp'] -> ['*.tmp', '*.log']``), and
what the vault has that the file does not name.  :func:`apply_plan` makes the changes,
in order: the vault (created, key from the usual sources), its name and redundancy,
policies (created or updated), items (protected, or updated as ``items update`` does:
a new item version the next backup follows), alert sinks (added, changed, removed).

Promises: nothing is written while planning (a new item's source is checked by its
workload then, so a missing path is refused before any vault changes); items, policies and vaults are never
deleted or stopped (those the file leaves out are listed as "not in the file" and left
alone); an item whose workload differs from the file's, or that is stopped, is not
changed.  Alert sinks are the exception: the file's sinks are the vault's sinks, so a
sink the file leaves out is removed.  Option values of sinks are never printed (they
may be secrets): a change names the options that differ.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from ..errors import UsageError
from ..models import DELETED, PROTECTED
from ..plugins import PluginHost
from ..policy.record import Policy
from ..services.alertsinks import SinkConfig
from .export import policy_options
from .spec import ItemSpec, SinkSpec, VaultSpec, option_params

__all__ = ["Change", "VaultPlan", "apply_plan", "plan_vault"]


@attrs.frozen
class Change:
    """One change: ``action`` ``+`` (add), ``~`` (change) or ``-`` (remove) of ``kind``
    (vault, policy, item, sink) ``name``; ``detail`` what changes; ``run`` does it."""

    action: str
    kind: str
    name: str
    detail: str = ""
    run: Callable[[Any], Any] | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def line(self) -> str:
        return f"{self.action} {self.kind} {self.name}{self.detail}"

    def to_dict(self) -> dict:
        return {"action": self.action, "kind": self.kind, "name": self.name, "line": self.line}


@attrs.frozen
class VaultPlan:
    spec: VaultSpec
    exists: bool
    changes: tuple[Change, ...] = ()
    not_in_file: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.spec.name, "url": self.spec.url, "exists": self.exists,
                "changes": [c.to_dict() for c in self.changes], "not_in_file": list(self.not_in_file)}


def plan_vault(spec: VaultSpec, vault: Any | None, plugins: PluginHost, *, ticket: str | None = None) -> VaultPlan:
    """The changes that make ``vault`` (None: not created yet) what ``spec`` says;
    ``ticket``: the guard's, given to the policy and item updates that need one."""
    changes: list[Change] = []
    left: list[str] = []
    if vault is None:
        changes.append(Change("+", "vault", spec.name, f" at {spec.url}" + (
            f" (redundancy {spec.redundancy})" if spec.redundancy != "local" else "")))
    else:
        changes += _vault_changes(spec, vault)
    policies = {p.name: p for p in vault.policies.list()} if vault is not None else {}
    for policy in spec.policies:
        changes += _policy_changes(policy, policies.get(policy.name), ticket)
    left += [f"policy {name}" for name in sorted(set(policies) - {p.name for p in spec.policies})]
    items = {i.name: i for i in vault.items() if i.state != DELETED} if vault is not None else {}
    for item in spec.items:
        changes += _item_changes(item, items.get(item.name), vault, plugins, left, ticket)
    left += [f"item {name}" for name in sorted(set(items) - {i.name for i in spec.items})]
    sinks = {s.name: s for s in vault.alert_sinks.list()} if vault is not None else {}
    for sink in spec.sinks:
        changes += _sink_changes(sink, sinks.get(sink.name))
    for name in sorted(set(sinks) - {s.name for s in spec.sinks}):
        changes.append(Change("-", "sink", name, f" ({sinks[name].type})",
                              run=lambda v, name=name: v.alert_sinks.remove(name)))
    return VaultPlan(spec=spec, exists=vault is not None, changes=tuple(changes), not_in_file=tuple(left))


def apply_plan(plan: VaultPlan, vault: Any | None, create: Callable[[VaultSpec], Any]) -> Any:
    """Make ``plan``'s changes; ``create(spec)`` makes the vault when there is none.
    Returns the vault."""
    if vault is None:
        vault = create(plan.spec)
    for change in plan.changes:
        if change.run is not None:
            change.run(vault)
    return vault


# --- each kind ---------------------------------------------------------------------------


def _vault_changes(spec: VaultSpec, vault: Any) -> list[Change]:
    changes = []
    if vault.settings.name != spec.name:
        changes.append(Change("~", "vault", spec.name, f": name {vault.settings.name!r} -> {spec.name!r}",
                              run=lambda v: v.update_settings(name=spec.name)))
    current = vault.redundancy
    if (current.kind, current.secondary or None) != (spec.redundancy, spec.secondary):
        shown = f"{current.kind}" + (f" ({current.secondary})" if current.secondary else "")
        wanted = f"{spec.redundancy}" + (f" ({spec.secondary})" if spec.secondary else "")
        changes.append(Change("~", "vault", spec.name, f": redundancy {shown} -> {wanted}",
                              run=lambda v: v.set_redundancy(spec.redundancy, spec.secondary)))
    return changes


def _policy_changes(policy: Policy, current: Policy | None, ticket: str | None) -> list[Change]:
    if current is None:
        return [Change("+", "policy", policy.name, f" ({policy.schedule.describe()}, keep {policy.retention.describe()})",
                       run=lambda v: v.policies.create(policy))]
    old, new = policy_options(current), policy_options(policy)
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    if not keys:
        return []
    updated = attrs.evolve(policy, created=current.created)
    return [Change("~", "policy", policy.name, f": {k} {_shown(old.get(k))} -> {_shown(new.get(k))}",
                   run=(lambda v: v.policies.update(updated, ticket=ticket)) if i == 0 else None)
            for i, k in enumerate(keys)]


def _item_changes(spec: ItemSpec, current: Any | None, vault: Any | None, plugins: PluginHost,
                  left: list[str], ticket: str | None) -> list[Change]:
    workload = plugins.workloads.get(spec.workload)()
    workload.secrets = plugins.secrets
    source = dict(spec.source) if spec.source is not None else workload.source_from_options(dict(spec.options))
    if current is None:
        workload.validate_source(source)  # refused now, before any vault is changed
        following = f", policy {spec.policy}" if spec.policy else ""
        return [Change("+", "item", spec.name, f" ({spec.workload}{following})",
                       run=lambda v: v.protect(spec.workload, spec.name, source, policy=spec.policy))]
    if current.workload != spec.workload:
        raise UsageError(message=f"item '{spec.name}' of vault {vault.url} is a {current.workload} item, the file"
                                 f" says {spec.workload}: protect the source under another name")
    if current.state != PROTECTED:
        left.append(f"item {spec.name} ({current.state}: 'items resume' it to manage it from the file)")
        return []
    wanted = source
    if _bare(source) != _bare(current.source):
        wanted = workload.validate_source(source)
    names = {param.name: key for key, param in option_params(plugins, spec.workload).items()}
    old, new = _bare(current.source), _bare(wanted)
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    changes = [Change("~", "item", spec.name, f": {names.get(k, k)} {_shown(old.get(k))} -> {_shown(new.get(k))}")
               for k in keys]
    if spec.policy is not None and spec.policy != current.policy:
        changes.append(Change("~", "item", spec.name, f": policy {_shown(current.policy)} -> {spec.policy}"))
    if changes:
        new_source = source if keys else None
        changes[0] = attrs.evolve(changes[0], run=lambda v: v.update_item(
            spec.name, source=new_source, policy=spec.policy if spec.policy != current.policy else None,
            ticket=ticket))
    return changes


def _sink_changes(spec: SinkSpec, current: SinkConfig | None) -> list[Change]:
    def add(v: Any) -> None:
        v.alert_sinks.add(spec.name, spec.type, dict(spec.options), spec.category)

    if current is None:
        return [Change("+", "sink", spec.name, f" ({spec.type}, {spec.category})", run=add)]
    differ = []
    if current.type != spec.type:
        differ.append(f"type {current.type} -> {spec.type}")
    if current.category != spec.category:
        differ.append(f"category {current.category} -> {spec.category}")
    options = sorted(k for k in {*current.options, *spec.options} if current.options.get(k) != spec.options.get(k))
    if options:
        differ.append(f"options {', '.join(options)} changed")
    if not differ:
        return []

    def replace(v: Any) -> None:
        v.alert_sinks.remove(spec.name)
        add(v)

    return [Change("~", "sink", spec.name, f": {'; '.join(differ)}", run=replace)]


def _bare(source: dict) -> dict:
    """``source`` without keys whose value is None (TOML has no null: an exported file
    leaves them out)."""
    return {k: v for k, v in source.items() if v is not None}


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, tuple):
        value = list(value)
    return repr(value) if not isinstance(value, str) else value
