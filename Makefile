# Every routine task has a target. The virtual environment is created on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint fmt bench chaos clean install

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start NATS (embedded), the streams, the four services and the demo directory; Ctrl-C stops all.
run: $(STAMP)
	$(VENV)/bin/osso up

## The test suite (unit, integration against a real nats-server and databases, end to end).
## The kill/cluster tests are `make chaos`: minutes long and sensitive to a loaded machine.
test: $(STAMP)
	$(PY) -m pytest -q -m "not chaos" $(PYTEST_ARGS)

## End-to-end benchmark against the raw nats-py client on the same server (table + bench/results/*.json).
bench: $(STAMP)
	$(PY) bench/platform_bench.py $(BENCH_ARGS)

## Kill tests: services and nats-server killed with -9 under load; 3-node cluster losing a node.
chaos: $(STAMP)
	$(PY) -m pytest -q -s -m chaos tests/chaos $(PYTEST_ARGS)

## Regenerate docs/asyncapi.json and docs/event-schemas.json after a (compatible) contract change.
contracts: $(STAMP)
	$(VENV)/bin/osso contracts --out docs

lint: $(STAMP)
	$(VENV)/bin/ruff check shared services deploy tests bench
	$(VENV)/bin/mypy shared services deploy

fmt: $(STAMP)
	$(VENV)/bin/ruff format shared services deploy tests

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
