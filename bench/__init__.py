"""Benchmarks: the seeded corpus (bench.corpus), the comparison with restic and BorgBackup
(``python -m bench``, see bench/__main__.py) and the storage, postgres and vm benchmarks."""
