"""The ``pkcs11`` secret provider: ``pkcs11:module=PATH;token=LABEL;object=LABEL;pin-env=VAR``.

The value of the data object (``CKO_DATA``) labelled ``object`` in the token, read at run
time (a database password kept in the HSM: ``--password-ref pkcs11:...``); ``pin-file=PATH``
may stand for ``pin-env=VAR``.  The reference holds no secret and is what strongroom stores.

What it promises: :meth:`Pkcs11SecretProvider.canonical` refuses, when the reference is
given, one that lacks a part, has an unknown part or both PIN sources
(InvalidSecretReference, exit 35), and writes it in a fixed order; :meth:`resolve` reads
the value now and fails with one line (SecretNotAvailable, exit 36) for a module that is
no PKCS#11 module, a token gone, a PIN unset or wrong, no object or two objects of that
label - the reason never holds the value.
"""

from __future__ import annotations

from typing import ClassVar

from strongroom import InvalidSecretReference, KeyNotAvailable, Secret, SecretNotAvailable, SecretProvider

from .token import TokenRef, read_pin, session

PARTS = ("module", "token", "object", "pin-env", "pin-file")


def parse(rest: str) -> dict[str, str]:
    """The parts of ``module=...;token=...;object=...;pin-env=...``; InvalidSecretReference if malformed."""
    parts: dict[str, str] = {}
    for piece in rest.split(";"):
        name, sep, value = piece.partition("=")
        name = name.strip()
        if not sep or name not in PARTS or not value or name in parts:
            raise InvalidSecretReference(
                reason="pkcs11: takes module=PATH;token=LABEL;object=LABEL;pin-env=VAR (or pin-file=PATH)")
        parts[name] = value
    missing = [p for p in ("module", "token", "object") if p not in parts]
    if missing or ("pin-env" in parts) == ("pin-file" in parts):
        need = f"it lacks {missing[0]}=" if missing else "give one of pin-env=VAR and pin-file=PATH"
        raise InvalidSecretReference(reason=f"pkcs11: {need}")
    return parts


class Pkcs11SecretProvider(SecretProvider):
    """A data object's value in a PKCS#11 token (see the module docstring)."""

    scheme: ClassVar[str] = "pkcs11"
    description: ClassVar[str] = "the value of data object LABEL in a PKCS#11 token (module=;token=;object=;pin-env=)"

    def canonical(self, rest: str) -> str:
        parts = parse(rest)
        return ";".join(f"{name}={parts[name]}" for name in PARTS if name in parts)

    def resolve(self, rest: str) -> Secret:
        from pkcs11 import Attribute, ObjectClass
        from pkcs11 import exceptions as px

        parts = parse(rest)
        ref = TokenRef(parts["module"], parts["token"], parts["object"], parts.get("pin-env"), parts.get("pin-file"))
        try:
            pin = read_pin(ref, "-")
            with session(ref, pin, "-") as s:
                found = list(s.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: ref.key}))
                if len(found) != 1:
                    what = "no data object" if not found else f"{len(found)} data objects"
                    raise SecretNotAvailable(reason=f"{ref.where()} has {what} labelled '{ref.key}'")
                return Secret(bytes(found[0][Attribute.VALUE]))
        except KeyNotAvailable as exc:  # the token's errors, as a secret's
            raise SecretNotAvailable(reason=str(exc.fields.get("reason", type(exc).__name__))) from None
        except px.PKCS11Error as exc:
            raise SecretNotAvailable(reason=f"{ref.where()}: cannot read data object '{ref.key}'"
                                            f" ({type(exc).__name__})") from None
