"""Make the shared test tools (``vaultkit``, ``pgshop``, ``vmkit``...) importable from every test folder."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Low scrypt cost for passphrase slots made by tests (the cost is stored per slot).
os.environ.setdefault("STRONGROOM_SCRYPT_N", "1024")

pytest_plugins = ["vaultkit"]
