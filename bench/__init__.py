"""Benchmarks: the seeded corpus (bench.corpus) and the storage benchmark (bench/storage)."""
