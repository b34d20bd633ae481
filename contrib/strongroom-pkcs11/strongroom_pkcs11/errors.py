"""The errors of the pkcs11 key provider: one line each, a stable exit code each (100-106).

Every one is a :class:`strongroom.KeyNotAvailable`: the slot it comes from cannot be
opened, and strongroom tries the vault's next slot (a passphrase recovery slot still
opens a vault whose token is gone).  Raised by ``vault create`` and ``vault key add`` or
``rewrap`` as they are; on opening, the vault's only slot failing raises it as it is, and
otherwise its reason is one of those listed.  A wrong option (missing, two PIN sources)
is a :class:`strongroom.UsageError` (exit code 3).
"""

from __future__ import annotations

from strongroom import KeyNotAvailable


class Pkcs11ModuleError(KeyNotAvailable):
    """No usable key for vault {vault_id}: {reason}"""

    exit_code = 100


class TokenNotFound(KeyNotAvailable):
    """No usable key for vault {vault_id}: {reason}"""

    exit_code = 101


class PinNotGiven(KeyNotAvailable):
    """No usable key for vault {vault_id}: {reason}"""

    exit_code = 102


class WrongPin(KeyNotAvailable):
    """No usable key for vault {vault_id}: {reason}"""

    exit_code = 103


class TokenKeyNotFound(KeyNotAvailable):
    """No usable key for vault {vault_id}: {reason}"""

    exit_code = 104


class AmbiguousTokenKey(KeyNotAvailable):
    """No usable key for vault {vault_id}: {reason}"""

    exit_code = 105


class TokenError(KeyNotAvailable):
    """No usable key for vault {vault_id}: {reason}"""

    exit_code = 106
