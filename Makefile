# mcp-gateway: `make run` builds and starts the gateway on config/default.json; `make test` runs every
# test, installing what the interop tests need (the official Python MCP SDK) under target/ first.

CARGO ?= cargo
PYTHON ?= python3
INTEROP := target/interop
VENV := $(INTEROP)/venv
# Pinned so a new SDK release cannot change what the interop tests mean.
PY_MCP_VERSION := 2.3.0

.PHONY: all build run test lint interop-deps clean

all: build

build:
	$(CARGO) build --bins

run: build
	$(CARGO) run --bin mcp-gateway -- --config config/default.json

test: build interop-deps
	MCP_GATEWAY_TEST_PYTHON=$(CURDIR)/$(VENV)/bin/python $(CARGO) test

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

interop-deps: $(VENV)/.mcp-$(PY_MCP_VERSION)

$(VENV)/.mcp-$(PY_MCP_VERSION):
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "mcp==$(PY_MCP_VERSION)"
	touch $@

clean:
	$(CARGO) clean
