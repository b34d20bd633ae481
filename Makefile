# Shortcuts for the README's two commands.
.PHONY: demo test clean
demo:
	sh scripts/demo.sh
test:
	sh scripts/test.sh $(PYTEST_ARGS)
clean:
	rm -rf .venv demo .pytest_cache
