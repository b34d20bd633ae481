"""Fuzzing every parser of data that comes from storage.

Real objects made by a real vault (:mod:`.corpus`) are mutated by hypothesis
(:mod:`.mutations`: bit flips, truncations, extensions, byte substitutions, and for JSON
documents valid JSON with wrong types, missing or unknown keys, huge numbers, re-sealed
with the vault's own key so that they pass authentication) and handed to the parser
that reads them from storage (:mod:`.targets`).  Every mutation must give that parser's
clean error (one line, a documented class) or a well-formed result, never another
exception.

``test_fuzz_parsers.py`` runs a few examples of each target on every test run;
``python -m tests.fuzz.run --examples 100000`` is the big run, with counts per parser.
"""
