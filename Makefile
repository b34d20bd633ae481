# Shortcuts for the README's two commands, and the comparison benchmark.
.PHONY: demo test bench clean
demo:
	sh scripts/demo.sh
test:
	sh scripts/test.sh $(PYTEST_ARGS)
# Compare strongroom, restic and BorgBackup; writes bench/RESULTS.md (python -m bench --help).
bench:
	.venv/bin/python -m bench $(BENCH_ARGS)
clean:
	rm -rf .venv demo .pytest_cache
