# The two commands a newcomer needs: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-slow lint bench bench-handshake clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Start the whole stack on embedded defaults (Temporal dev server, SQLite, runner, worker, API).
run: $(STAMP)
	$(VENV)/bin/tether dev

## Run the test suite (starts its own Temporal server, runners, workers and APIs on free ports).
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

## The slow cases `make test` leaves out (the scenario bench end to end, with tiny numbers).
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy tether clients workflows activities api store runner worker.py

## Tether next to bare Temporal on one scenario (docs/operations.md); e.g. BENCH_ARGS=--profile.
bench: $(STAMP)
	$(PY) -m bench.scenario $(BENCH_ARGS)

bench-handshake: $(STAMP)
	$(PY) -m bench.handshake

clean:
	rm -rf $(VENV) .tether .pytest_cache
