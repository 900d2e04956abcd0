# Two commands set everything up on a fresh machine:
#   make demo   - installs durably alone (no extras) and runs a workflow end to end on the
#                 embedded SQLite world
#   make test   - installs the dev extras; lint (ruff), types (mypy), the whole test suite
#                 (pytest) and the examples
# Both use .venv: `make demo` installs the core only (.venv/.installed-core), `make test` adds
# every extra and the tools (.venv/.installed). Afterwards: .venv/bin/durably, or
# `source .venv/bin/activate`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE_STAMP := $(VENV)/.installed-core

.PHONY: demo test lint chromium screenshots dist bench bench-quick chaos chaos-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(CORE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(CORE_STAMP)

demo: $(CORE_STAMP)
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

# Tests write their screenshots to a temporary folder, so a test run leaves the clone
# clean; this refreshes the ones docs/ and the README show.
screenshots: $(STAMP) chromium
	DURABLY_SCREENSHOTS=$(CURDIR)/docs $(BIN)/pytest -q tests/web/test_browser.py tests/ai/test_chat_browser.py

# A wheel and an sdist in dist/ (tests/test_install.py builds them too, installs the wheel
# in a fresh venv and runs the demo).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist
	@ls -l dist

# The benchmarks run in a venv of their own, bench/.venv: durably (editable) and the peers
# it is measured against (bench/requirements.txt), which are no dependency of durably.
# BENCH_ARGS passes options through, e.g. make bench BENCH_ARGS="--only durably,dbos".
BENCH_VENV ?= bench/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[postgres]' -r bench/requirements.txt
	touch $(BENCH_STAMP)

# The peers' table alternates the systems (two rounds, A..Z then Z..A; medians). After
# it: a step against the commit floor of its database (and Postgres behind a delay
# proxy), cold replay against DBOS recovery, latency as the tables fill (10k/100k/1M
# runs), and Postgres throughput with 1, 2 and 4 worker processes.
bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py --rounds 2 $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python bench/step_cost.py --world postgres --rtt-ms 0,2,5
	$(BENCH_VENV)/bin/python bench/step_cost.py --world sqlite
	$(BENCH_VENV)/bin/python bench/step_cost.py --world sqlite-fsync
	$(BENCH_VENV)/bin/python bench/cold_replay.py --dbos
	$(BENCH_VENV)/bin/python bench/scale.py
	$(BENCH_VENV)/bin/python bench/pg_workers.py

bench-quick: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py --quick $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python bench/step_cost.py --world postgres --steps 100 --rounds 1
	$(BENCH_VENV)/bin/python bench/step_cost.py --world sqlite --steps 100 --rounds 1
	$(BENCH_VENV)/bin/python bench/cold_replay.py --steps 1000 --rounds 1 --dbos
	$(BENCH_VENV)/bin/python bench/scale.py --sizes 1000,10000 --repeat 5

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
	rm -rf $(VENV) .durably .mypy_cache .ruff_cache .pytest_cache build dist
