"""The storage benchmark: remote vaults on loopback against a local folder (run.py)."""
