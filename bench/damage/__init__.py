"""The damage matrix: one object of a real vault damaged at a time, measured through the CLI.

``python -m bench.damage`` (see :mod:`bench.damage.__main__`) writes ``bench/damage/RESULTS.md``.
"""
