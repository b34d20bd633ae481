"""Make the shared test tools (``vaultkit``, ``pgshop``, ``vmkit``...) importable from every test folder."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Low scrypt cost for passphrase slots and kits made by tests (the cost is stored per slot).
# Below the production floor it is refused unless the test-only, insecure setting is given too.
os.environ.setdefault("STRONGROOM_SCRYPT_N", "1024")
os.environ.setdefault("STRONGROOM_INSECURE_TEST_KDF", "1")

pytest_plugins = ["vaultkit"]
