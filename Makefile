# threadctl: `make demo` runs the demo, `make test` the tests.
# PYTHON picks the interpreter, VENV the environment (CI runs one per CPython);
# PIP_EXTRA adds pins, e.g. the lowest supported grpcio/protobuf; EDITABLE=
# (empty) installs a built copy instead of an editable one, as CI does.
PYTHON ?= python3
VENV ?= .venv
PIP_EXTRA ?=
EDITABLE ?= -e
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Node.js client of the reflection test (skipped where npm is missing).
NODE_CLIENT := tests/reflection_client/node_modules/.package-lock.json

.PHONY: all install demo test lint clean node-client

all: test

$(STAMP): pyproject.toml setup.py _build/threadctl_build.py _build/threadctl_stubs.py proto/threadctl/v1/threadctl.proto
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(EDITABLE) '.[test]' $(PIP_EXTRA)
	$(BIN)/python -c "import grpc, google.protobuf, sys; print('threadctl env:', sys.version.split()[0], 'grpcio', grpc.__version__, 'protobuf', google.protobuf.__version__)"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python tests/demo.py

test: $(STAMP) node-client
	$(BIN)/python -m pytest

node-client:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(NODE_CLIENT); \
	else echo "npm not found: the Node.js reflection test will be skipped"; fi

$(NODE_CLIENT): tests/reflection_client/package.json tests/reflection_client/package-lock.json
	cd tests/reflection_client && npm ci --no-audit --no-fund --silent

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf .venv .venv-* build *.egg-info tests/reflection_client/node_modules proto/threadctl/v1/*_pb2*.py proto/threadctl/v1/*_pb2*.pyi

# `make bench`: threadctl beside its baselines (tests/bench); prints a table and
# writes bench-results.json. Not part of `make test` (which runs a smoke of it).
# py-spy is one baseline; without it that row says why it was skipped.
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: bench bench-smoke

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet py-spy || echo "py-spy not installed: its baseline will be skipped"
	touch $@

bench: $(BENCH_STAMP)
	PYTHONPATH=tests $(BIN)/python -m bench

bench-smoke: $(STAMP)
	PYTHONPATH=tests $(BIN)/python -m bench --smoke
