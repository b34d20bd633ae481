"""One exception hierarchy for everything strongroom reports to a user.

Every error class has a docstring that is its message template (formatted with the
keyword arguments given to the constructor) and a stable ``exit_code`` that the CLI
returns.  Scripts may rely on the exit codes; they are listed in ``docs/cli.md``.

Plugins keep their own errors in their own package, as subclasses of these (the
built-in workloads: ``strongroom_postgres.errors`` uses codes 80-89,
``strongroom_vm.errors`` 90-96; a third-party plugin picks codes from 100 to 125).

    >>> raise ItemNotFound(item="web")
    strongroom.errors.ItemNotFound: Protected item 'web' not found in this vault.
"""

from __future__ import annotations


class StrongroomError(Exception):
    """{message}"""

    exit_code = 2

    def __init__(self, message: str | None = None, **fields: object) -> None:
        self.fields = dict(fields)
        if message is not None:
            self.fields.setdefault("message", message)
        super().__init__(self.render())

    def __reduce__(self):
        # as raised, fields and all, when it crosses to another process (pickled)
        return _rebuilt, (type(self), self.fields)

    def render(self) -> str:
        template = (type(self).__doc__ or "{message}").strip().splitlines()[0]
        try:
            return template.format(**self.fields)
        except (KeyError, IndexError):
            return self.fields.get("message", template)  # type: ignore[return-value]


def _rebuilt(cls: type[StrongroomError], fields: dict) -> StrongroomError:
    error = cls.__new__(cls)
    error.fields = dict(fields)
    Exception.__init__(error, error.render())
    return error


# --- usage and configuration ---------------------------------------------------------


class UsageError(StrongroomError):
    """{message}"""

    exit_code = 3


class ConfirmationNeeded(UsageError):
    """{what} asks for confirmation and standard input is not a terminal: add --yes to go ahead."""

    exit_code = 3


class NoVaultGiven(UsageError):
    """No vault given: pass --vault URL, set STRONGROOM_VAULT or set default_vault in config.toml."""

    exit_code = 4


class UnknownStorageOption(UsageError):
    """Storage option '{option}'{origin} is not one that {storage} takes{hint}"""

    exit_code = 3


class ConfigFileInvalid(UsageError):
    """{file}: {where}: {reason}"""

    exit_code = 6


class MountUnavailable(StrongroomError):
    """Cannot mount: {reason}"""

    exit_code = 7


# --- plugins ---------------------------------------------------------------------------


class PluginError(StrongroomError):
    """{message}"""

    exit_code = 5


class PluginLoadError(PluginError):
    """Plugin '{plugin}' failed to load: {reason}"""


class DuplicateRegistration(PluginError):
    """{kind} '{name}' is registered twice (by {first} and by {second})."""


class UnknownName(PluginError):
    """Unknown {kind} '{name}'; known: {known}."""


# --- storage ---------------------------------------------------------------------------


class StorageError(StrongroomError):
    """Storage error: {message}"""

    exit_code = 20


class TransientStorageError(StorageError):
    """Temporary storage error (retrying may help): {message}"""


class ObjectNotFound(StorageError):
    """Object '{name}' not found in the vault storage."""

    exit_code = 21


class ObjectLocked(StorageError):
    """Object '{name}' is locked on storage until {until} ({mode} retention, S3 object lock): it cannot be deleted before then."""

    exit_code = 22


class ServerTokenRefused(StorageError):
    """The server at {url} refused the token (missing, wrong, revoked or expired): set STRONGROOM_TOKEN or --token-file."""

    exit_code = 23


class AccessDenied(StorageError):
    """The server refused: {message}"""

    exit_code = 24


class DeleteRefused(ObjectLocked):
    """The server refused: {message}"""

    exit_code = 24


class ServerRequestRefused(StorageError):
    """The server at {url} refused the request: {message}"""

    exit_code = 25


# --- vault -----------------------------------------------------------------------------


class VaultError(StrongroomError):
    """{message}"""

    exit_code = 10


class VaultNotFound(VaultError):
    """No vault at {url}."""

    exit_code = 11


class VaultExists(VaultError):
    """A vault already exists at {url}."""

    exit_code = 12


class UnsupportedFormat(VaultError):
    """Vault at {url} {reason}; upgrade strongroom to use it."""

    exit_code = 13


class VaultNotEmpty(VaultError):
    """The vault is not deleted: {reason}."""

    exit_code = 14


# --- keys ------------------------------------------------------------------------------


class VaultKeyError(StrongroomError):
    """{message}"""

    exit_code = 30


class KeyNotAvailable(VaultKeyError):
    """No usable key for vault {vault_id}: {reason}"""

    exit_code = 31


class WrongPassphrase(VaultKeyError):
    """Wrong passphrase for vault {vault_id}."""

    exit_code = 32


class WrongKitPassphrase(WrongPassphrase):
    """Wrong passphrase for the recovery kit of vault {vault_id}."""

    exit_code = 32


class KeySlotError(VaultKeyError):
    """{message}"""

    exit_code = 33


class ForeignKeySlot(KeySlotError):
    """{message}"""

    exit_code = 33


class KitNotWritten(VaultKeyError):
    """Recovery kit not written: {reason}"""

    exit_code = 34


class RotateRefused(VaultKeyError):
    """Cannot rotate the data key of {url}: {reason}"""

    exit_code = 37


# --- secrets ---------------------------------------------------------------------------


class InvalidSecretReference(UsageError):
    """Bad secret reference: {reason}"""

    exit_code = 35


class SecretNotAvailable(StrongroomError):
    """Secret {ref} is not available: {reason}"""

    exit_code = 36


# --- items, points, paths --------------------------------------------------------------


class NotFound(StrongroomError):
    """{message}"""

    exit_code = 40


class ItemNotFound(NotFound):
    """Protected item '{item}' not found in this vault."""

    exit_code = 41


class ItemExists(StrongroomError):
    """Protected item '{item}' already exists."""

    exit_code = 42


class PointNotFound(NotFound):
    """Recovery point '{point}' not found for item '{item}'."""

    exit_code = 43


class AmbiguousPoint(NotFound):
    """Recovery point prefix '{point}' matches {count} points of item '{item}'; give more digits."""

    exit_code = 44


class PathNotInPoint(NotFound):
    """Path '{path}' not found in recovery point {point}."""

    exit_code = 45


class SourceError(StrongroomError):
    """{message}"""

    exit_code = 46


class InvalidSource(SourceError):
    """Invalid source for {workload} item: {reason}"""

    exit_code = 47


# --- integrity -------------------------------------------------------------------------


class IntegrityError(StrongroomError):
    """Integrity error: {what} is damaged ({reason})."""

    exit_code = 50


class DamagedFolder(IntegrityError):
    """Integrity error: folder '{path}' of recovery point {point} is damaged ({reason})."""

    exit_code = 50


class VerifyFailed(IntegrityError):
    """Verify found {count} problem(s) in the vault."""

    exit_code = 51


class UnsafePath(IntegrityError):
    """Refusing to restore '{path}': {reason}."""

    exit_code = 52


class DataLost(IntegrityError):
    """{count} recovery point(s) lost data that no intact copy holds: {points}."""

    exit_code = 53


class RollbackDetected(IntegrityError):
    """The vault's storage went back to an older state: {what}; {advice}."""

    exit_code = 54


# --- restore ---------------------------------------------------------------------------


class RestoreError(StrongroomError):
    """Restore failed: {message}"""

    exit_code = 60


class BackupError(StrongroomError):
    """Backup failed: {message}"""

    exit_code = 61


# --- the restore target ----------------------------------------------------------------


class TargetError(RestoreError):
    """Cannot write '{path}' in the restore target: {reason}"""

    exit_code = 62


class TargetFull(TargetError):
    """The restore target is full: {reason} writing '{path}'; the restore stopped{removed}"""

    exit_code = 63


class PathInTheWay(TargetError):
    """Kept '{path}' in the restore target: {reason}"""

    exit_code = 64


# --- policies, lifecycle, prune ------------------------------------------------------


class PolicyError(StrongroomError):
    """{message}"""

    exit_code = 70


class PolicyNotFound(PolicyError):
    """Policy '{policy}' not found in this vault."""

    exit_code = 71


class PolicyExists(PolicyError):
    """Policy '{policy}' already exists; change it with 'strongroom policy update'."""

    exit_code = 72


class PolicyInUse(PolicyError):
    """Policy '{policy}' is used by {items}; give them another policy or delete their data first."""

    exit_code = 73


class InvalidPolicy(PolicyError):
    """Invalid policy: {reason}"""

    exit_code = 74


class InvalidRetention(PolicyError):
    """Invalid retention: {reason}"""

    exit_code = 74


class ItemStateError(StrongroomError):
    """Item '{item}' is {state}: {reason}"""

    exit_code = 75


class LeaseHeld(StrongroomError):
    """{operation} is already running: lease {lease} held by {holder} until {until}."""

    exit_code = 76


class LeaseLost(StrongroomError):
    """The {operation} lease was lost ({reason}); nothing unsafe was done, run it again."""

    exit_code = 77


class PruneConflict(StrongroomError):
    """Backup of '{item}' not committed: {reason}; run the backup again."""

    exit_code = 78


class DueWorkFailed(StrongroomError):
    """{count} of {total} due job(s) failed: {failed}"""

    exit_code = 79


# --- security: soft delete, immutability, guard, journal ---------------------------------


class SecurityError(StrongroomError):
    """{message}"""

    exit_code = 65


class IrreversibleSetting(SecurityError):
    """Refused: {reason}."""

    exit_code = 65


class ObjectLockUnavailable(SecurityError):
    """Refused: {reason}."""

    exit_code = 65


class TicketRequired(SecurityError):
    """Refused: {operation} needs a guard ticket ({what}); ask the guard's holder for one: strongroom guard sign --operation {operation}{params} ..., then pass --ticket FILE."""

    exit_code = 66


class TicketInvalid(SecurityError):
    """Refused: the guard ticket for {operation} is not valid: {reason}."""

    exit_code = 67


class ImmutabilityViolation(SecurityError):
    """Refused by immutability: {reason}."""

    exit_code = 68


class PointSoftDeleted(SecurityError):
    """{what} is soft-deleted (purge at {purge_at}); undelete it first: {hint}"""

    exit_code = 69


class JournalTampered(IntegrityError):
    """The audit journal was changed: {reason}"""

    exit_code = 55
