# Two commands set everything up on a fresh machine:
#   make demo   - runs a workflow end to end on the embedded SQLite world
#   make test   - lint (ruff), types (mypy), the whole test suite (pytest) and the examples
# Each creates .venv and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint chromium bench bench-quick chaos chaos-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/durably demo

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench
	$(BIN)/mypy

# The dashboard's browser tests drive Debian's Chromium (never a downloaded browser);
# install it when it is missing (CI runs as root). Without it they skip, except under CI.
CHROMIUM ?= /usr/bin/chromium

chromium:
	@test -x $(CHROMIUM) || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "warning: could not install chromium; the browser tests will be skipped"

test: lint chromium
	$(BIN)/pytest -q

# The benchmarks run in a venv of their own, bench/.venv: durably (editable) and the peers
# it is measured against (bench/requirements.txt), which are no dependency of durably.
# BENCH_ARGS passes options through, e.g. make bench BENCH_ARGS="--only durably,dbos".
BENCH_VENV ?= bench/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py --quick $(BENCH_ARGS)

# The chaos suite (tests/chaos/README.md): worker processes SIGKILLed and restarted at random
# points, and database faults, while runs of every shape flow; then an invariant check of
# every run. Both worlds run even when the first fails. CHAOS_ARGS passes options through,
# e.g. make chaos CHAOS_ARGS="--seed 42 --strict-disk-full". chaos-quick (~2 min) is what
# tests/chaos/test_chaos_quick.py runs under make test.
CHAOS_ARGS ?=

chaos: $(STAMP)
	@rc=0; for w in sqlite postgres; do \
		$(BIN)/python -m tests.chaos --world $$w --kills 200 --db-faults 6 $(CHAOS_ARGS) || rc=1; \
	done; exit $$rc

chaos-quick: $(STAMP)
	@rc=0; for w in sqlite postgres; do \
		$(BIN)/python -m tests.chaos --world $$w --kills 20 --db-faults 2 $(CHAOS_ARGS) || rc=1; \
	done; exit $$rc

clean:
	rm -rf $(VENV) .durably .mypy_cache .ruff_cache .pytest_cache
