"""Key slots of a vault on storage: finding, unlocking, adding, removing, upgrading, checking.

What it promises:

- :func:`survey` reads every object under ``keys/`` (each at most
  :data:`~.masterkey.MAX_SLOT_BYTES`) and sorts it into slots of this vault, *foreign*
  objects (a name that is not ``keys/<slot id>``, a slot stored under another slot's
  name, a version 2 slot of another vault: never tried, whatever they hold) and damaged
  ones (malformed).  One bad object never locks a vault that another slot opens.
- :func:`unlock` tries the slots, local ones first, then the others by slot id, and
  returns the master key and the slot that opened it.  A slot of the old format opens
  with one notice line; a passphrase slot of a cost below the production floor with one
  warning line.
- :func:`upgrade` rewrites, under the same name, every old-format slot this client can
  open now (the local key on this machine, a passphrase it is given) in the current
  format; a passphrase slot gets a fresh salt and the current cost.  The others are
  left as they are, with the reason.
- :func:`check` says, for ``vault verify``, what is wrong with the slots (problems:
  foreign or damaged objects, a slot whose key is here but does not open it, a slot
  wrapping another master key) and what could not be checked (notes).
- :func:`remove_slot` never removes the last slot that can open the vault (a slot of this
  vault, not foreign nor damaged, other than the one removed), forced or not.
- :func:`rewrap_slot` wraps the master key of a slot under a new key-encryption key of the
  same provider: it writes the new slot first (checked to open), lets the provider
  ``activate`` its key, and only then removes the old slot, so the vault opens at every
  moment (a crash leaves both slots, or the new one).
- A slot whose key is unavailable (a token gone, a wrong PIN) fails only that slot: the
  next one is tried.  When the only slot tried fails with a provider's own error (a
  subclass of KeyNotAvailable), that error is raised as it is, with its exit code.
- Nothing here writes but :func:`add_slot`, :func:`remove_slot`, :func:`rewrap_slot` and
  :func:`upgrade`, and only under ``keys/``.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import (ForeignKeySlot, IntegrityError, KeyNotAvailable, KeySlotError, ObjectLocked, ObjectNotFound,
                      WrongPassphrase)
from ..models import iso, new_id, utcnow
from .kdf import check_scrypt, warn_if_weak
from .keyproviders import KeyContext, check_options
from .masterkey import (
    MAX_SLOT_BYTES, SLOT_ID, SLOT_PREFIX, SLOT_VERSION, KeySlot, MasterKey, slot_name_id, unwrap_master_key,
    wrap_master_key,
)

if TYPE_CHECKING:
    from ..registry import Registry
    from ..storage import Store

log = logging.getLogger(__name__)


@attrs.frozen
class SlotSurvey:
    """The objects under ``keys/``: this vault's slots, foreign and damaged objects ``(name, why)``."""

    slots: tuple[KeySlot, ...] = ()
    foreign: tuple[tuple[str, str], ...] = ()
    damaged: tuple[tuple[str, str], ...] = ()

    @property
    def problems(self) -> list[str]:
        """One line for each foreign or damaged object."""
        return [why for _, why in self.damaged + self.foreign]


def survey(store: Store, vault_id: str | None = None) -> SlotSurvey:
    """Every object under ``keys/``, sorted (see the module docstring)."""
    slots: list[KeySlot] = []
    foreign: list[tuple[str, str]] = []
    damaged: list[tuple[str, str]] = []
    for name in sorted(store.list(SLOT_PREFIX)):
        if slot_name_id(name) is None:
            foreign.append((name, f"{name} is not a key slot of this vault: its name is not keys/<slot id>"))
            continue
        try:
            slot = KeySlot.from_bytes(store.get_range(name, 0, MAX_SLOT_BYTES + 1), name)
        except ObjectNotFound:
            continue
        except ForeignKeySlot as exc:
            foreign.append((name, str(exc)))
            continue
        except KeySlotError as exc:
            damaged.append((name, str(exc)))
            continue
        if vault_id is not None and slot.version == SLOT_VERSION and slot.vault_id != vault_id:
            foreign.append((name, f"{name} is not a key slot of this vault: it belongs to vault {slot.vault_id}"))
            continue
        slots.append(slot)
    return SlotSurvey(tuple(slots), tuple(foreign), tuple(damaged))


def load_slots(store: Store, problems: list[str] | None = None, vault_id: str | None = None) -> list[KeySlot]:
    """The slots of this vault; foreign and damaged objects are described in ``problems``."""
    found = survey(store, vault_id)
    if problems is not None:
        problems.extend(found.problems)
    return list(found.slots)


def unlock(store: Store, ctx: KeyContext, providers: Registry, *, notice: bool = True) -> tuple[MasterKey, KeySlot]:
    """Try the slots, local ones first, and return the master key and the slot that opened.

    With ``notice`` off the caller gives the slot's notice lines (:func:`notice`) itself,
    once it knows the vault opens (a vault refused for its format prints only the refusal)."""
    found = survey(store, ctx.vault_id)
    reasons = found.problems
    if not found.slots:
        if found.foreign and not found.damaged:  # only objects that are no slot of this vault
            raise ForeignKeySlot(message="the vault has no key slot of its own: " + "; ".join(reasons))
        if reasons:  # every slot object is malformed or foreign
            raise KeySlotError(message="; ".join(reasons))
        raise KeyNotAvailable(vault_id=ctx.vault_id, reason="the vault has no key slots")
    wrong_passphrase = False
    failures: list[KeyNotAvailable] = []
    for slot in sorted(found.slots, key=lambda s: (s.provider != "local", s.slot_id)):
        if slot.provider not in providers:
            reasons.append(f"slot {slot.slot_id}: key provider '{slot.provider}' is not installed")
            continue
        try:
            kek = providers.get(slot.provider).unlock(ctx, slot.params)
        except KeyNotAvailable as exc:
            reasons.append(f"slot {slot.slot_id}: {exc.fields.get('reason', exc)}")
            failures.append(exc)
            continue
        master = unwrap_master_key(slot, kek, vault_id=ctx.vault_id)
        if master is not None:
            if notice:
                notice_of(slot)
            return master, slot
        if slot.provider == "passphrase":
            wrong_passphrase = True
        reasons.append(f"slot {slot.slot_id}: the {slot.provider} key does not open it")
    if wrong_passphrase:
        raise WrongPassphrase(vault_id=ctx.vault_id)
    if len(found.slots) == 1 and len(failures) == 1 and type(failures[0]) is not KeyNotAvailable:
        raise failures[0]  # a provider's own error (a wrong PIN, a token gone), with its exit code
    raise KeyNotAvailable(vault_id=ctx.vault_id, reason="; ".join(reasons))


def notice_of(slot: KeySlot) -> None:
    """Log the notice lines of a slot that opened: an old format, a weak passphrase cost."""
    if slot.is_old:
        log.warning("note: key slot %s is in the old format (version %d: its label and parameters are not"
                    " authenticated); 'strongroom vault key upgrade' rewrites it", slot.slot_id, slot.version)
    if slot.provider == "passphrase":
        warn_if_weak(slot.params, f"key slot {slot.slot_id}")


def add_slot(
    store: Store, master: MasterKey, ctx: KeyContext, providers: Registry, provider: str,
    *, label: str = "",
) -> KeySlot:
    """A new slot of ``provider``, made with ``ctx.options`` (refused if it takes none of them)."""
    chosen = providers.get(provider)
    check_options(provider, chosen, ctx.options)
    kek, params = chosen.create(ctx)
    slot = wrap_master_key(
        master, kek, vault_id=ctx.vault_id, slot_id=new_id(8), provider=provider,
        label=label, created=iso(utcnow()), params=params,
    )
    store.put(slot.object_name, slot.to_bytes())
    return slot


def refuse_last_slot(slot: KeySlot, slots: list[KeySlot]) -> None:
    """KeySlotError if no slot but ``slot`` among ``slots`` (this vault's, not foreign nor damaged) is left."""
    if not [s for s in slots if s.slot_id != slot.slot_id]:
        raise KeySlotError(
            message=f"refusing to remove key slot {slot.slot_id}: it is the last key slot that can open the vault"
            " (add another slot first: 'strongroom vault key add')"
        )


def remove_slot(store: Store, slot_id: str, *, force: bool = False, vault_id: str | None = None) -> KeySlot:
    """Delete the slot whose id starts with ``slot_id``; never the last one that can open the
    vault (``force`` does not change that: it is kept for old callers)."""
    slots = load_slots(store, vault_id=vault_id)
    matches = [s for s in slots if s.slot_id.startswith(slot_id)]
    if len(matches) != 1:
        raise KeySlotError(message=f"no single key slot matches '{slot_id}'")
    refuse_last_slot(matches[0], slots)
    store.delete(matches[0].object_name)
    return matches[0]


#: Test-only: ``STRONGROOM_TEST_KILL_AT=<seam>`` SIGKILLs the process at that seam of a
#: re-wrap (``key.rewrap.written``: the new slot is on storage, the provider's key not yet
#: activated; ``key.rewrap.activated``: the old slot not yet removed).
KILL_AT_ENV = "STRONGROOM_TEST_KILL_AT"


def _seam(name: str) -> None:
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def check_rewrap(ctx: KeyContext, providers: Registry, slot: KeySlot) -> Any:
    """The provider that re-wraps ``slot``; KeyNotAvailable if it is not installed, KeySlotError
    (from :func:`check_options`) for options it does not take.  Writes nothing."""
    if slot.provider not in providers:
        raise KeyNotAvailable(vault_id=ctx.vault_id,
                              reason=f"key provider '{slot.provider}' of slot {slot.slot_id} is not installed")
    provider = providers.get(slot.provider)
    check_options(slot.provider, provider, ctx.options)
    return provider


def rewrap_slot(store: Store, master: MasterKey, ctx: KeyContext, providers: Registry, slot: KeySlot) -> KeySlot:
    """Wrap ``master`` under a new key of ``slot``'s provider, then remove ``slot`` (module docstring).

    The options the provider takes that the old slot's params hold under the same name
    are used again unless ``ctx.options`` gives them anew; ``ctx.previous`` is the old
    slot's params.  Returns the new slot (the old one stays where object lock keeps it).
    """
    provider = check_rewrap(ctx, providers, slot)
    takes = tuple(getattr(provider, "options", ()) or ())
    options = {**{k: v for k, v in slot.params.items() if k in takes and isinstance(v, str)}, **ctx.options}
    use = attrs.evolve(ctx, options=options, previous=dict(slot.params))
    kek, params = provider.create(use)
    new = wrap_master_key(master, kek, vault_id=ctx.vault_id, slot_id=new_id(8), provider=slot.provider,
                          label=slot.label, created=iso(utcnow()), params=params)
    if unwrap_master_key(new, kek, vault_id=ctx.vault_id) != master:  # never write a slot that does not open
        raise KeySlotError(message=f"the re-wrapped slot of {slot.slot_id} did not open: nothing was changed")
    store.put(new.object_name, new.to_bytes())
    _seam("key.rewrap.written")
    activate = getattr(provider, "activate", None)
    if activate is not None:
        activate(use, kek, params)
    _seam("key.rewrap.activated")
    try:
        store.delete(slot.object_name)
    except ObjectLocked:  # object lock keeps it: the old key still opens it until the lock ends
        log.warning("warning: the storage's object lock keeps the old key slot %s; its old key opens the vault"
                    " until the lock ends", slot.slot_id)
    return new


@attrs.frozen
class Upgrade:
    """What :func:`upgrade` did with one old-format slot: ``new`` if rewritten, else ``reason``."""

    old: KeySlot
    new: KeySlot | None = None
    reason: str = ""


def upgrade(store: Store, master: MasterKey, ctx: KeyContext, providers: Registry) -> list[Upgrade]:
    """Rewrite every old-format slot this client can open now (see the module docstring)."""
    done: list[Upgrade] = []
    passphrase_ctx: KeyContext | None = None
    for slot in load_slots(store, vault_id=ctx.vault_id):
        if not slot.is_old:
            continue
        if slot.provider not in providers:
            done.append(Upgrade(slot, reason=f"key provider '{slot.provider}' is not installed"))
            continue
        provider = providers.get(slot.provider)
        use = ctx
        try:
            if slot.provider == "passphrase":
                if passphrase_ctx is None:  # asked once, for every passphrase slot
                    known = ctx.passphrase.get(vault_id=ctx.vault_id)
                    passphrase_ctx = attrs.evolve(ctx, passphrase=attrs.evolve(ctx.passphrase, known=known))
                use = passphrase_ctx
            kek = provider.unlock(use, slot.params)
        except KeyNotAvailable as exc:
            done.append(Upgrade(slot, reason=str(exc.fields.get("reason", exc))))
            continue
        try:
            opened = unwrap_master_key(slot, kek, vault_id=ctx.vault_id)
        except IntegrityError:
            opened = None
        if opened != master:
            done.append(Upgrade(slot, reason=f"the {slot.provider} key given does not open it"))
            continue
        params = slot.params
        if slot.provider == "passphrase":  # a fresh salt at the current cost
            kek, params = provider.create(use)
        slot_id = slot.slot_id if SLOT_ID.fullmatch(slot.slot_id) else new_id(8)
        new = wrap_master_key(master, kek, vault_id=ctx.vault_id, slot_id=slot_id, provider=slot.provider,
                              label=slot.label, created=slot.created, params=params)
        if unwrap_master_key(new, kek, vault_id=ctx.vault_id) != master:  # never write a slot that does not open
            done.append(Upgrade(slot, reason="the rewritten slot did not open"))
            continue
        try:
            still = KeySlot.from_bytes(store.get_range(slot.object_name, 0, MAX_SLOT_BYTES + 1), slot.object_name)
        except (ObjectNotFound, KeySlotError):
            still = None
        if still != slot:
            done.append(Upgrade(slot, reason="it was changed or removed meanwhile"))
            continue
        store.put(new.object_name, new.to_bytes())
        if new.object_name != slot.object_name:
            try:
                store.delete(slot.object_name)
            except ObjectLocked:  # object lock keeps it: both slots open the vault
                pass
        done.append(Upgrade(slot, new))
    return done


def check(store: Store, master: MasterKey, ctx: KeyContext, providers: Registry,
          opened_with: KeySlot | None = None) -> tuple[list[str], list[str]]:
    """(notes, problems) about the vault's key slots, for ``vault verify``; asks for no passphrase."""
    found = survey(store, ctx.vault_id)
    problems = [f"key slots: {why}" for why in found.problems]
    notes: list[str] = []
    quiet = attrs.evolve(ctx, passphrase=attrs.evolve(ctx.passphrase, prompt=None))
    for slot in found.slots:
        name = f"key slot {slot.slot_id} ({slot.provider})"
        if slot.is_old:
            notes.append(f"{name} is in the old format (version {slot.version});"
                         " 'strongroom vault key upgrade' rewrites it")
        if slot.provider not in providers:
            notes.append(f"{name} not checked: its key provider is not installed here")
            continue
        if slot.provider == "passphrase":
            try:
                check_scrypt(slot.params)
            except ValueError as exc:
                problems.append(f"{name} is damaged: {exc}")
                continue
        if opened_with is not None and slot == opened_with:
            continue  # it opened the vault in this run
        try:
            kek = providers.get(slot.provider).unlock(quiet, slot.params)
        except KeyNotAvailable as exc:
            notes.append(f"{name} not checked: {exc.fields.get('reason', exc)}")
            continue
        try:
            opened = unwrap_master_key(slot, kek, vault_id=ctx.vault_id)
        except IntegrityError as exc:
            problems.append(f"{name} opens but holds no master key ({exc})")
            continue
        if opened is None and slot.provider == "passphrase":
            notes.append(f"{name} not checked: the passphrase given does not open it (another passphrase, or damage)")
        elif opened is None:
            problems.append(f"{name} is damaged or was changed: its key is here but does not open it")
        elif opened != master:
            problems.append(f"{name} wraps another master key than the one that opened the vault")
    return notes, problems
