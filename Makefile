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

## Install everything the tests need, start Mosquitto and InfluxDB on free ports, run
## ruff, mypy and pytest.
test: $(STAMP)
	scripts/ensure-system-packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo-data test-artifacts
