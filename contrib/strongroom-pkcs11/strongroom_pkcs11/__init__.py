"""strongroom-pkcs11: customer-managed keys in a PKCS#11 token (an HSM) for strongroom.

A third-party plugin written only against strongroom's public API: it imports
``strongroom`` (the names in ``strongroom.__all__``), ``python-pkcs11`` and nothing else of
strongroom.  It is found through its entry point in the ``strongroom`` group
(``pyproject.toml``) and registers the key provider ``pkcs11``
(:class:`~.provider.Pkcs11KeyProvider`): a slot's master key is wrapped by an AES key
that never leaves the token; and the secret provider ``pkcs11:``
(:class:`~.secretprovider.Pkcs11SecretProvider`): a data object's value, read at run time.  The README says how to use it.
"""

from strongroom import hookimpl

from .provider import Pkcs11KeyProvider, TokenKey
from .secretprovider import Pkcs11SecretProvider

__all__ = ["Pkcs11KeyProvider", "Pkcs11SecretProvider", "TokenKey"]


@hookimpl
def strongroom_register_key_providers(registry) -> None:
    registry.add("pkcs11", Pkcs11KeyProvider())


@hookimpl
def strongroom_register_secret_providers(registry) -> None:
    registry.add(Pkcs11SecretProvider.scheme, Pkcs11SecretProvider())
