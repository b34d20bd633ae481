"""The ``pkcs11`` key provider: a slot's master key wrapped by an AES key inside a PKCS#11 token.

Options (``--key-option``): ``module=PATH`` (the PKCS#11 module), ``token=LABEL``,
``key=LABEL`` (the AES key; generated in the token when missing on ``vault create`` or
``vault key add``), ``pin-env=VAR`` or ``pin-file=PATH`` (where the user PIN is read).
They are kept in the slot's params - never the PIN - and used again on every open.

What it promises: the key never leaves the token.  :class:`TokenKey` is a
:class:`strongroom.WrappingKey`: the AES-256-GCM that wraps and unwraps the master key
(the slot's nonce, the slot's authenticated header as associated data) is done by the
token (``CKM_AES_GCM``), so the slot looks as any other.  :meth:`Pkcs11KeyProvider.unlock`
logs in and finds the key before it answers, so a token gone, a wrong PIN or a missing
key fails that slot with one line (:mod:`.errors`) and strongroom tries the next slot.
A re-wrap (``vault key rewrap``) needs another key than the old slot's
(``--key-option key=NEWLABEL``); the other options are the old slot's unless given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from strongroom import KeyContext, Secret, UsageError, WrappingKey

from .token import OPTIONS, TokenRef, find_key, read_pin, session

if TYPE_CHECKING:
    from pkcs11.mechanisms import GCMParams


class TokenKey(WrappingKey):
    """The AES key labelled ``ref.key`` in the token, used there (the PIN is held redacted)."""

    def __init__(self, ref: TokenRef, pin: Secret, vault_id: str) -> None:
        self.ref, self._pin, self.vault_id = ref, pin, vault_id

    def __repr__(self) -> str:
        return f"TokenKey({self.ref!r})"

    def _params(self, nonce: bytes, associated_data: bytes) -> GCMParams:
        from pkcs11.mechanisms import GCMParams

        return GCMParams(nonce, associated_data, 128)

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        from pkcs11 import Mechanism
        from pkcs11 import exceptions as px

        with session(self.ref, self._pin, self.vault_id) as s:
            key = find_key(s, self.ref, self.vault_id)
            try:
                return bytes(key.encrypt(data, mechanism=Mechanism.AES_GCM,
                                         mechanism_param=self._params(nonce, associated_data)))
            except px.PKCS11Error as exc:
                from .errors import TokenError

                raise TokenError(vault_id=self.vault_id,
                                 reason=f"{self.ref.where()} cannot encrypt with AES-GCM ({type(exc).__name__})"
                                 ) from None

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes | None:
        from pkcs11 import Mechanism
        from pkcs11 import exceptions as px

        with session(self.ref, self._pin, self.vault_id) as s:
            key = find_key(s, self.ref, self.vault_id)
            try:
                return bytes(key.decrypt(data, mechanism=Mechanism.AES_GCM,
                                         mechanism_param=self._params(nonce, associated_data)))
            except px.PKCS11Error:  # the tag does not match: another key, or a changed slot
                return None


class Pkcs11KeyProvider:
    """Customer-managed key in a PKCS#11 token (see the module docstring)."""

    name: ClassVar[str] = "pkcs11"
    description: ClassVar[str] = "AES key inside a PKCS#11 token (HSM); the key never leaves it"
    options: ClassVar[tuple[str, ...]] = OPTIONS

    def create(self, ctx: KeyContext) -> tuple[TokenKey, dict]:
        ref = TokenRef.from_options(ctx.options)
        if ctx.previous is not None and (ctx.previous.get("token"), ctx.previous.get("key")) == (ref.token, ref.key):
            raise UsageError(message=f"a re-wrap needs another key than '{ref.key}' of token '{ref.token}':"
                                     " pass --key-option key=NEWLABEL")
        pin = read_pin(ref, ctx.vault_id)
        with session(ref, pin, ctx.vault_id, rw=True) as s:
            find_key(s, ref, ctx.vault_id, create=True)
        return TokenKey(ref, pin, ctx.vault_id), ref.params()

    def unlock(self, ctx: KeyContext, params: dict) -> TokenKey:
        try:
            ref = TokenRef.from_options(params)
        except UsageError as exc:
            from .errors import TokenError

            raise TokenError(vault_id=ctx.vault_id, reason=f"the pkcs11 slot is damaged: {exc}") from None
        pin = read_pin(ref, ctx.vault_id)
        with session(ref, pin, ctx.vault_id) as s:  # fails here, one line, when the token or key is not there
            find_key(s, ref, ctx.vault_id)
        return TokenKey(ref, pin, ctx.vault_id)

    def describe(self, params: dict) -> str:
        pin = f"PIN from ${params['pin-env']}" if params.get("pin-env") else f"PIN file {params.get('pin-file')}"
        return (f"PKCS#11 token '{params.get('token', '?')}', key '{params.get('key', '?')}'"
                f" ({params.get('module', '?')}; {pin})")
