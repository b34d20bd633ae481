"""The vault server under load, against direct storage (``python -m bench.server.run``)."""
