"""Make the shared test tools (``vaultkit``, ``pgshop``, ``vmkit``...) importable from every test folder."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Low scrypt cost for passphrase slots and kits made by tests (the cost is stored per slot).
# Below the production floor it is refused unless the test-only, insecure setting is given too.
os.environ.setdefault("STRONGROOM_SCRYPT_N", "1024")
os.environ.setdefault("STRONGROOM_INSECURE_TEST_KDF", "1")

pytest_plugins = ["vaultkit"]


@pytest.fixture(autouse=True)
def _guard_ticket_scope():
    """Each test starts without a guard ticket and leaves none behind: a ticket a test's own
    library call accepted (``SecurityService.authorize``) is context state, as it is for one
    command of the CLI (``storage.ticket.ticket_scope``)."""
    from strongroom.storage.ticket import ticket_scope

    with ticket_scope():
        yield
