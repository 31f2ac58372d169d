# The two set-up commands: `make demo` and `make test`. Both work on a fresh Debian machine
# with Python 3.11; they install what they need (as root, or with sudo) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap
	PYTHON=$(PYTHON) scripts/bootstrap $(VENV)
	touch $(STAMP)

## Run the example town on one machine: embedded broker and store, simulated factories, alerts.
demo: $(STAMP)
	$(BIN)/eit demo $(ARGS)

# pytest-xdist workers for the parallel pass. Most tests wait (for brokers, databases, `eit`
# processes), so more workers than cores pays: 4 was the fastest on the 2-core test machine
# (README, Tests).
WORKERS ?= 4

## Install everything the tests need, run ruff and mypy, then pytest: every test not marked
## `serial` in parallel (each worker starts its own Mosquitto, InfluxDB and PostgreSQL on free
## ports; a file's tests stay on one worker), then the `serial` ones (kills, outages, timings) alone.
test: $(STAMP)
	scripts/ensure-system-packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n $(WORKERS) --dist loadfile -m "not serial" $(PYTEST_ARGS)
	$(BIN)/pytest -m serial $(PYTEST_ARGS)

## The tests that need no service (no Mosquitto, InfluxDB, PostgreSQL, Chromium or `eit serve`
## process): the inner loop. A test that starts a service here fails.
unit: $(STAMP)
	$(BIN)/pytest --unit -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo-data test-artifacts
