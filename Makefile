# The two commands the README opens with: `make demo` and `make test`.
VENV := .venv
HOSIG := $(VENV)/bin/hosig
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: setup demo test bench eval clean

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

# Quality on the project's evaluation scenes (hosig scene demo variants) -> out/eval/
EVAL_KINDS := kitchen office living_room corridor enclosed large
eval: setup
	@mkdir -p out/eval/scenes
	@for k in $(EVAL_KINDS); do $(HOSIG) scene demo --kind $$k --out out/eval/scenes/$$k.glb --json >/dev/null; done
	$(HOSIG) eval --cases eval/cases.json --scenes out/eval/scenes --out out/eval/report.json --md out/eval/report.md --plots out/eval/plots
