"""The secret-provider contract as an abstract test class.

Subclass :class:`SecretProviderContract` in a secret provider's test module and give it
a ``secret_case`` fixture returning a :class:`SecretCase` (it may ask for any fixture: a
token, a secrets server)::

    from strongroom.testing import SecretCase, SecretProviderContract

    class TestMyProviderContract(SecretProviderContract):
        @pytest.fixture
        def secret_case(self, tmp_path):
            store = make_store(tmp_path, {"db": b"s3cret"})
            return SecretCase(plugin=my_plugin_module, scheme="mine", present="db",
                              expected=b"s3cret", missing="nope", change=store.change)

Each test builds its own plugin host with the case's plugin (and the essential ``keys``
plugin, nothing else installed) and checks that: the plugin registers the scheme through
``strongroom_register_secret_providers``; ``SCHEME:PRESENT`` resolves to a
:class:`~strongroom.Secret` holding exactly the expected bytes, whose repr hides them; the
reference to store for it (``check``) is stable and resolves the same; a missing secret
is a :class:`~strongroom.SecretNotAvailable` of one line that names the reference and
holds no secret; and, where the case can change the secret, the next resolve returns the
new value (secrets are read at run time, never cached).

The contract writes nothing itself.
"""

from __future__ import annotations

from typing import Callable

import attrs
import pytest

from ..errors import SecretNotAvailable
from ..secrets import Secret

__all__ = ["SecretCase", "SecretProviderContract"]


@attrs.frozen
class SecretCase:
    """What a provider's test module tells the contract about one secret it can resolve.

    - ``plugin``: the plugin object (a module) implementing ``strongroom_register_secret_providers``.
    - ``scheme``: the scheme it registers.
    - ``present`` / ``expected``: a ``REST`` that resolves, and the exact bytes it gives.
    - ``missing``: a ``REST`` that names no secret (None: the case cannot make one).
    - ``change(new)``: make ``SCHEME:PRESENT`` hold the bytes ``new`` (None: it cannot).
    """

    plugin: object
    scheme: str
    present: str
    expected: bytes = attrs.field(repr=False)
    missing: str | None = None
    change: Callable[[bytes], None] | None = None


class SecretProviderContract:
    """Abstract: subclass it and give a ``secret_case`` fixture (see the module docstring)."""

    @pytest.fixture
    def secret_case(self) -> SecretCase:  # pragma: no cover - the subclass gives it
        raise NotImplementedError("give the contract a secret_case fixture")

    @pytest.fixture
    def host(self, secret_case: SecretCase):
        from ..plugins import PluginHost
        from ..repository import keyproviders

        plugins = [("keys", keyproviders)]
        if secret_case.plugin is not keyproviders:
            plugins.append(("secret-case", secret_case.plugin))
        return PluginHost.create(extra_plugins=plugins, load_entry_points=False)

    def test_the_scheme_is_registered_through_the_hook(self, host, secret_case):
        """The plugin registers its scheme in the secret-provider registry."""
        assert secret_case.scheme in host.secret_providers.names()

    def test_a_present_secret_resolves_to_its_exact_bytes(self, host, secret_case):
        """SCHEME:PRESENT gives a Secret of exactly the expected bytes; its repr hides them."""
        secret = host.secrets.resolve(f"{secret_case.scheme}:{secret_case.present}")
        assert isinstance(secret, Secret)
        assert secret.value == secret_case.expected
        assert secret_case.expected.decode(errors="replace") not in repr(secret) + str(secret)

    def test_the_stored_reference_is_stable_and_resolves_the_same(self, host, secret_case):
        """check() returns the reference to store; checking it again changes nothing; it resolves."""
        stored = host.secrets.check(f"{secret_case.scheme}:{secret_case.present}")
        assert stored.startswith(f"{secret_case.scheme}:")
        assert host.secrets.check(stored) == stored
        assert host.secrets.resolve(stored).value == secret_case.expected

    def test_a_missing_secret_is_one_line_naming_the_reference(self, host, secret_case):
        """A REST that names no secret is SecretNotAvailable: one line, the reference, no secret."""
        if secret_case.missing is None:
            pytest.skip("the case cannot name a missing secret")
        ref = f"{secret_case.scheme}:{secret_case.missing}"
        with pytest.raises(SecretNotAvailable) as excinfo:
            host.secrets.resolve(ref)
        message = str(excinfo.value)
        assert "\n" not in message and ref in message
        assert secret_case.expected.decode(errors="replace") not in message

    def test_a_changed_secret_is_read_anew(self, host, secret_case):
        """After the secret changes, the next resolve returns the new value (nothing is cached)."""
        if secret_case.change is None:
            pytest.skip("the case cannot change its secret")
        ref = f"{secret_case.scheme}:{secret_case.present}"
        assert host.secrets.resolve(ref).value == secret_case.expected
        new = secret_case.expected + b"-changed"
        secret_case.change(new)
        assert host.secrets.resolve(ref).value == new
