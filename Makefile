# The two commands the README opens with: `make demo` and `make test`.
VENV := .venv
HOSIG := $(VENV)/bin/hosig
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: setup demo test test-fast bench clean

setup:
	@bash tools/setup.sh

demo: setup
	$(HOSIG) demo --out out/demo

test: setup
	$(PYTEST) -q -p no:cacheprovider tests

bench: setup
	$(HOSIG) bench

clean:
	rm -rf out build dist
