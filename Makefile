# IngressoJa. The two commands a newcomer needs:
#   make run    builds and serves the sale on http://127.0.0.1:8080, with a
#               demo event, data in ./data
#   make cluster  the same sale on three nodes behind HAProxy, on loopback
#               (http://127.0.0.1:8080), data in ./data/cluster
#   make test   format check, clippy with warnings as errors, every test
# Both install the Debian packages they need when they are missing.

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

# One profile (release) for tests, binaries and clippy: RocksDB (the log's
# store) builds from source in about 13 minutes per profile on a 2-core
# machine, so building twice is not an option. The target directory lives
# outside the clone so every clone on this machine, CI's fresh one included,
# reuses one build. Override by setting CARGO_TARGET_DIR.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/ingressoja/target
CARGO_FLAGS := --release --locked

# Debian packages: a C/C++ toolchain and libclang for RocksDB's bindings;
# OpenSSL's headers for the SMTP client's TLS (lettre through native-tls).
APT_PACKAGES := build-essential pkg-config libclang-dev clang libssl-dev
# What the tests need besides, as command:package: oathtool (codes from
# another TOTP implementation, for the two-factor interoperability test),
# chromium and node/npm for the browser tests (playwright-core drives
# Debian's chromium). Checked by command, not by package: a machine may have
# node and npm from elsewhere (NodeSource's nodejs bundles npm, and Debian's
# npm package would conflict with it). fuse3 for the power-loss tests'
# disk (mounted through /dev/fuse directly as root, with fusermount3 for
# anyone else). haproxy and nginx-light: the cluster's load balancer
# (`make cluster`, the cluster tests) and the nginx configuration's check.
TEST_TOOLS := oathtool:oathtool chromium:chromium node:nodejs npm:npm curl:curl fusermount3:fuse3 /usr/sbin/haproxy:haproxy /usr/sbin/nginx:nginx-light
# schemathesis (from PyPI, pinned) fuzzes the API against docs/openapi.yaml,
# from a virtual environment kept beside the cargo target directory.
VENV := $(HOME)/.cache/ingressoja/venv
SCHEMATHESIS := schemathesis==4.32.5
FUZZ_SECONDS ?= 30
BROWSER_TESTS := server/tests/browser
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help deps test-deps run cluster demo test fmt lint unit browser fuzz-api bench bench-http clean

help:
	@echo "make run    serve the sale on http://127.0.0.1:8080 with a demo event"
	@echo "make cluster  three nodes and HAProxy on http://127.0.0.1:8080 (Ctrl-C stops all)"
	@echo "make demo   play a narrated demo drop through the engine"
	@echo "make test   fmt check + clippy -D warnings + every test"
	@echo "make bench  criterion benches (figures go to docs/BENCHMARKS.md)"
	@echo "make bench-http  wrk against nginx and against the server"
	@echo "make deps   install missing Debian packages"

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup"; exit 1; }

test-deps:
	@missing=""; \
	for tool in $(TEST_TOOLS); do command -v $${tool%%:*} >/dev/null 2>&1 || missing="$$missing $${tool##*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the tests:$$missing"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# `make run` and `make demo` build exactly what `make test` builds (the
# whole workspace with its tests' features): a `cargo run -p` resolves
# dependency features differently and rebuilt the server after every test
# run. The first `make run` on a fresh clone also compiles the tests; every
# later one after `make test` starts at once.
BINARIES := $(CARGO) test $(CARGO_FLAGS) --workspace --no-run --quiet
INGRESSOJA := $(CARGO_TARGET_DIR)/release/ingressoja

run: deps
	$(BINARIES)
	$(INGRESSOJA) serve --demo --data ./data

# Three nodes (each a replica of the sale's log, accounts included) and
# HAProxy in front, all on loopback; scripts/cluster.sh says what runs where.
cluster: deps
	@[ -x /usr/sbin/haproxy ] || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy; }
	$(BINARIES)
	scripts/cluster.sh $(INGRESSOJA) ./data/cluster

demo: deps
	$(BINARIES)
	$(INGRESSOJA) demo

# The last line is the cargo tests' total again: the fuzzer's own closing
# line reads like a test runner's that ran nothing.
test: deps test-deps fmt lint unit browser fuzz-api
	@awk '/^test result:/ { passed += $$4; failed += $$6 } \
		END { printf "tests: %d passed, %d failed\n", passed, failed }' $(CARGO_TARGET_DIR)/test-output.txt

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

# cargo prints one "test result" line per test binary, the last of which is
# often an empty doc-test run; the closing line sums them all.
unit:
	@mkdir -p $(CARGO_TARGET_DIR)
	set -o pipefail; $(CARGO) test $(CARGO_FLAGS) --workspace 2>&1 | tee $(CARGO_TARGET_DIR)/test-output.txt
	@awk '/^test result:/ { passed += $$4; failed += $$6 } \
		END { printf "tests: %d passed, %d failed\n", passed, failed; exit (passed == 0 || failed > 0) }' \
		$(CARGO_TARGET_DIR)/test-output.txt

# The pages in a real browser, against the binary `unit` just built. npm
# installs playwright-core and axe-core (pinned by package-lock.json) when
# missing or older than the lock file; the tests fail, never skip, when
# chromium cannot start. Screenshots of every page (390x844 and 1280x800)
# go to $(CARGO_TARGET_DIR)/screenshots, of failed pages to
# $(CARGO_TARGET_DIR)/browser-failures.
browser:
	@[ $(BROWSER_TESTS)/node_modules/.package-lock.json -nt $(BROWSER_TESTS)/package-lock.json ] || (cd $(BROWSER_TESTS) && npm ci --no-audit --no-fund)
	cd $(BROWSER_TESTS) && node --test --test-concurrency=1

# The API against its OpenAPI document: schemathesis with every check, as an
# anonymous client, a fan and an administrator, FUZZ_SECONDS each, against
# the binary `unit` just built (exclusions and their reasons are in
# server/tests/api_fuzz/schemathesis.toml).
fuzz-api: $(VENV)/.installed
	server/tests/api_fuzz/run.sh $(INGRESSOJA) $(VENV)/bin/st $(FUZZ_SECONDS)

$(VENV)/.installed:
	@python3 -c 'import ensurepip' 2>/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q '$(SCHEMATHESIS)'
	touch $@

bench: deps
	$(CARGO) bench --locked --profile release -p ingressoja-benches

# wrk against nginx and against the server, same run (installs both if missing).
bench-http: deps
	@for p in nginx-light wrk; do dpkg -s $$p >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light wrk; break; }; done
	$(BINARIES)
	benches/http/compare.sh

clean:
	$(CARGO) clean
