# mcp-gateway: `make run` builds and starts the gateway on config/default.json; `make test` runs every
# test, installing what the interop tests need (the official Python MCP SDK) under target/ first.

CARGO ?= cargo
PYTHON ?= python3
INTEROP := target/interop
VENV := $(INTEROP)/venv
# Pinned so a new release cannot change what the interop tests mean.
PY_MCP_VERSION := 2.3.0
EVERYTHING_VERSION := 2026.8.31
PEERS := target/bench-peers
SUPERGATEWAY_VERSION := 4.0.0
FASTMCP_VERSION := 4.1.2

.PHONY: all build run test lint interop-deps bench bench-peers peer-deps clean fuzz fuzz-deps

all: build

build:
	$(CARGO) build --bins

run: build
	$(CARGO) run --bin mcp-gateway -- --config config/default.json

test: build interop-deps
	$(CARGO) test

# Latency, throughput, reuse and footprint against baselines (release build); results in target/bench/.
bench:
	$(CARGO) bench --bench gateway

# The same, plus supergateway (npm) and a FastMCP proxy (PyPI) in front of the same demo server.
bench-peers: peer-deps
	$(CARGO) bench --bench gateway -- --peers

peer-deps: $(PEERS)/.supergateway-$(SUPERGATEWAY_VERSION) $(PEERS)/.fastmcp-$(FASTMCP_VERSION)

$(PEERS)/.supergateway-$(SUPERGATEWAY_VERSION):
	mkdir -p $(PEERS)
	npm install --silent --no-audit --no-fund --prefix $(PEERS) "supergateway@$(SUPERGATEWAY_VERSION)"
	touch $@

$(PEERS)/.fastmcp-$(FASTMCP_VERSION):
	rm -rf $(PEERS)/venv
	$(PYTHON) -m venv $(PEERS)/venv
	$(PEERS)/venv/bin/pip install --quiet --disable-pip-version-check "fastmcp==$(FASTMCP_VERSION)"
	touch $@

# Fuzz the parsers (HTTP requests, chunked bodies, SSE, JSON-RPC, stdio lines, config), each for
# FUZZ_SECONDS. Not part of `make test`. Nightly where installed, else stable with RUSTC_BOOTSTRAP.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := http_request chunked sse jsonrpc lines config
FUZZ_TOOLCHAIN := $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo +nightly)

fuzz: fuzz-deps
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 $(CARGO) $(FUZZ_TOOLCHAIN) fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

fuzz-deps:
	command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

interop-deps: $(VENV)/.mcp-$(PY_MCP_VERSION) $(INTEROP)/.everything-$(EVERYTHING_VERSION)

$(VENV)/.mcp-$(PY_MCP_VERSION):
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "mcp==$(PY_MCP_VERSION)"
	touch $@

$(INTEROP)/.everything-$(EVERYTHING_VERSION):
	mkdir -p $(INTEROP)
	npm install --silent --no-audit --no-fund --prefix $(INTEROP) \
		"@modelcontextprotocol/server-everything@$(EVERYTHING_VERSION)"
	touch $@

clean:
	$(CARGO) clean
