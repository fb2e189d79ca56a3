# mcp-gateway: `make run` builds and starts the gateway on config/default.json; `make test` runs every
# test, installing what the interop tests need (the official Python MCP SDK) under target/ first;
# `make install` (PREFIX, default /usr/local; DESTDIR honoured) installs the release build.

CARGO ?= cargo
PYTHON ?= python3
INTEROP := target/interop
VENV := $(INTEROP)/venv
# Pinned so a new release cannot change what the interop tests mean.
PY_MCP_VERSION := 2.3.0
# The official Prometheus client: tests/metrics.rs parses /metrics with its text parser.
PROMETHEUS_CLIENT_VERSION := 0.26.0
# tests/oauth_guard.rs: the test authorization server makes its keys and tokens with PyJWT (and
# cryptography), which the SDK depends on; pinned here because the tests use them directly.
PYJWT_VERSION := 2.15.1
EVERYTHING_VERSION := 2026.8.31
# Real third-party servers behind the gateway in tests/multiplex.rs and `make bench` (npm ones beside
# server-everything; PyPI ones in their own venv, so their `mcp` pin cannot clash with the SDK's).
MEMORY_VERSION := 2026.8.31
FILESYSTEM_VERSION := 2026.8.31
THINKING_VERSION := 2026.8.31
NPM_SERVERS := @modelcontextprotocol/server-memory@$(MEMORY_VERSION) \
	@modelcontextprotocol/server-filesystem@$(FILESYSTEM_VERSION) \
	@modelcontextprotocol/server-sequential-thinking@$(THINKING_VERSION)
SERVERS_VENV := $(INTEROP)/servers-venv
TIME_VERSION := 2026.10.19
FETCH_VERSION := 2026.10.24
GIT_VERSION := 2026.10.19
PY_SERVERS := mcp-server-time==$(TIME_VERSION) mcp-server-fetch==$(FETCH_VERSION) \
	mcp-server-git==$(GIT_VERSION)
PEERS := target/bench-peers
SUPERGATEWAY_VERSION := 4.0.0
FASTMCP_VERSION := 4.1.2
# The Rust `mcp-proxy` crate (tower/tokio), built from crates.io with its own lock file.
MCP_PROXY_VERSION := 0.6.0

# `make install`: the binary and its bridge link in $(BINDIR), the example config in $(DATADIR),
# the READMEs and LICENSE in $(DOCDIR), the systemd unit in $(UNITDIR) (ExecStart rewritten for PREFIX).
# BINARY=path installs an already built binary instead of running `cargo build --release`.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/mcp-gateway
DOCDIR ?= $(PREFIX)/share/doc/mcp-gateway
UNITDIR ?= $(PREFIX)/lib/systemd/system
BINARY ?=
INSTALL ?= install
INSTALLED_BINARY := $(or $(BINARY),target/release/mcp-gateway)

.PHONY: all build release install uninstall run test lint interop-deps haproxy-dep bench bench-search bench-peers peer-deps clean fuzz fuzz-deps

all: build

build:
	$(CARGO) build --bins

release:
	$(CARGO) build --release --bin mcp-gateway

install: $(if $(BINARY),,release)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 755 $(INSTALLED_BINARY) $(DESTDIR)$(BINDIR)/mcp-gateway
	ln -sf mcp-gateway $(DESTDIR)$(BINDIR)/mcp-gateway-bridge
	$(INSTALL) -m 644 config/servers.example.json $(DESTDIR)$(DATADIR)/servers.example.json
	$(INSTALL) -m 644 README.md README.zh-CN.md LICENSE $(DESTDIR)$(DOCDIR)/
	sed 's#/usr/local/#$(PREFIX)/#g' contrib/mcp-gateway.service > $(DESTDIR)$(UNITDIR)/mcp-gateway.service
	chmod 644 $(DESTDIR)$(UNITDIR)/mcp-gateway.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mcp-gateway $(DESTDIR)$(BINDIR)/mcp-gateway-bridge
	rm -f $(DESTDIR)$(DATADIR)/servers.example.json $(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(DOCDIR)/README.zh-CN.md \
		$(DESTDIR)$(DOCDIR)/LICENSE $(DESTDIR)$(UNITDIR)/mcp-gateway.service
	-rmdir $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR) 2>/dev/null

run: build
	$(CARGO) run --bin mcp-gateway -- --config config/default.json

test: build interop-deps
	$(CARGO) test

# Latency, throughput, reuse and footprint against baselines (release build); results in target/bench/.
# The "8 sessions × real servers" scenario needs the real servers that interop-deps installs.
bench: interop-deps
	$(CARGO) bench --bench gateway

# The same, plus supergateway (npm), a FastMCP proxy (PyPI) and the Rust mcp-proxy crate in front of
# the same demo server.
# Tool search over a catalog of 1,000 tools (BM25 + the answer's JSON), and the cost of building the
# profile views and index with each snapshot; results in target/bench/search.json.
bench-search:
	$(CARGO) bench --bench search

bench-peers: interop-deps peer-deps
	$(CARGO) bench --bench gateway -- --peers

peer-deps: $(PEERS)/.supergateway-$(SUPERGATEWAY_VERSION) $(PEERS)/.fastmcp-$(FASTMCP_VERSION) \
	$(PEERS)/.mcp-proxy-$(MCP_PROXY_VERSION)

$(PEERS)/.supergateway-$(SUPERGATEWAY_VERSION):
	mkdir -p $(PEERS)
	npm install --silent --no-audit --no-fund --prefix $(PEERS) "supergateway@$(SUPERGATEWAY_VERSION)"
	touch $@

$(PEERS)/.fastmcp-$(FASTMCP_VERSION):
	rm -rf $(PEERS)/venv
	$(PYTHON) -m venv $(PEERS)/venv
	$(PEERS)/venv/bin/pip install --quiet --disable-pip-version-check "fastmcp==$(FASTMCP_VERSION)"
	touch $@

# A long build (tokio, axum, otel…): at the lowest priority, the machine is shared.
$(PEERS)/.mcp-proxy-$(MCP_PROXY_VERSION):
	mkdir -p $(PEERS)
	nice -n 19 $(CARGO) install --locked --quiet mcp-proxy --version $(MCP_PROXY_VERSION) --root $(PEERS)
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

interop-deps: $(VENV)/.mcp-$(PY_MCP_VERSION) $(VENV)/.prometheus-client-$(PROMETHEUS_CLIENT_VERSION) \
	$(VENV)/.pyjwt-$(PYJWT_VERSION) \
	$(INTEROP)/.everything-$(EVERYTHING_VERSION) \
	$(INTEROP)/.npm-servers-$(MEMORY_VERSION)-$(FILESYSTEM_VERSION)-$(THINKING_VERSION) \
	$(SERVERS_VENV)/.servers-$(TIME_VERSION)-$(FETCH_VERSION)-$(GIT_VERSION) haproxy-dep

# tests/scale.rs puts two gateways behind haproxy: the Debian package, installed when missing
# (as root, or through sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
haproxy-dep:
	@command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || \
		$(SUDO) apt-get install -y -q haproxy || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q haproxy; }

$(VENV)/.mcp-$(PY_MCP_VERSION):
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "mcp==$(PY_MCP_VERSION)"
	touch $@

# Into the SDK's venv (after it: that rule starts the venv afresh).
$(VENV)/.prometheus-client-$(PROMETHEUS_CLIENT_VERSION): $(VENV)/.mcp-$(PY_MCP_VERSION)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		"prometheus-client==$(PROMETHEUS_CLIENT_VERSION)"
	touch $@

$(VENV)/.pyjwt-$(PYJWT_VERSION): $(VENV)/.mcp-$(PY_MCP_VERSION)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "pyjwt[crypto]==$(PYJWT_VERSION)"
	touch $@

$(INTEROP)/.everything-$(EVERYTHING_VERSION):
	mkdir -p $(INTEROP)
	npm install --silent --no-audit --no-fund --prefix $(INTEROP) \
		"@modelcontextprotocol/server-everything@$(EVERYTHING_VERSION)"
	touch $@

# After server-everything: npm would otherwise reinstall into the same prefix concurrently under -j.
$(INTEROP)/.npm-servers-$(MEMORY_VERSION)-$(FILESYSTEM_VERSION)-$(THINKING_VERSION): \
		$(INTEROP)/.everything-$(EVERYTHING_VERSION)
	npm install --silent --no-audit --no-fund --prefix $(INTEROP) $(NPM_SERVERS)
	touch $@

$(SERVERS_VENV)/.servers-$(TIME_VERSION)-$(FETCH_VERSION)-$(GIT_VERSION):
	rm -rf $(SERVERS_VENV)
	$(PYTHON) -m venv $(SERVERS_VENV)
	$(SERVERS_VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_SERVERS)
	touch $@

clean:
	$(CARGO) clean
