# kadm: the two commands an operator needs are `make up` and `make test`.
# Both work on a fresh Debian 12 machine as root: they install what is missing first.

SHELL := /bin/bash
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
RELEASE_DIR := $(TARGET_DIR)/release
DEBUG_DIR := $(TARGET_DIR)/debug

# Debian packages the finished product runs on (installed by `make up`).
RUNTIME_PACKAGES := etcd-server etcd-client containerd runc containernetworking-plugins \
	nftables conntrack openssh-server busybox-static docker-registry iproute2 ca-certificates
# Extra packages to build kadm (etcd-client's build script needs protoc).
BUILD_PACKAGES := protobuf-compiler build-essential pkg-config
# Packages the tests need (openssl is used to cross-check certificates).
TEST_PACKAGES := openssl curl

.PHONY: up test deps test-deps build build-debug lint unit down clean help bench-api bench-scheduler bench-proxy fuzz fuzz-long

help:
	@echo "make up     install what is missing, build, and start a local control plane (kadm init)"
	@echo "make test   install what tests need and run every test (lint, unit, integration)"
	@echo "make down   kadm reset --yes"
	@echo "make bench-api  the API benchmark (docs/benchmarks.md)"
	@echo "make bench-scheduler  the scheduler benchmark on hollow nodes (docs/benchmarks.md)"
	@echo "make bench-proxy  the kadm-proxy full-sync benchmark (docs/benchmarks.md)"
	@echo "make fuzz   every fuzz target for FUZZ_SECONDS (12) each; make fuzz-long: 10 min each"

## deps: install missing Debian packages without letting distro services start
deps:
	@bash scripts/install-packages.sh $(RUNTIME_PACKAGES) $(BUILD_PACKAGES)

test-deps:
	@bash scripts/install-packages.sh $(RUNTIME_PACKAGES) $(BUILD_PACKAGES) $(TEST_PACKAGES)

build: deps
	$(CARGO) build --release --workspace --bins

build-debug:
	$(CARGO) build --workspace --bins

up: build
	$(RELEASE_DIR)/kadm init

down:
	@if [ -x /usr/local/bin/kadm ]; then /usr/local/bin/kadm reset --yes; \
	elif [ -x $(RELEASE_DIR)/kadm ]; then $(RELEASE_DIR)/kadm reset --yes; \
	else echo "kadm is not built; nothing to reset"; fi

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## unit + integration tests; integration tests start real etcd and kadm-apiserver
## processes on free loopback ports, so the workspace binaries are built first.
unit: build-debug
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

test: test-deps lint unit fuzz

## fuzz targets (fuzz/, docs/security.md): FUZZ_SECONDS per target, FUZZ_TARGETS to pick some
FUZZ_SECONDS ?= 12
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

fuzz-long:
	FUZZ_SECONDS=600 bash scripts/fuzz.sh

## the API benchmark (docs/benchmarks.md): release apiserver + kadm-bench on loopback;
## BENCH_ARGS=--quick for a small run
bench-api: test-deps
	$(CARGO) build --release -p kadm-apiserver -p kadm-e2e --bins
	$(RELEASE_DIR)/kadm-bench $(BENCH_ARGS)

bench-scheduler: test-deps
	$(CARGO) build --release -p kadm-apiserver -p kadm-scheduler -p kadm-e2e --bins
	$(RELEASE_DIR)/kadm-bench-scheduler $(BENCH_ARGS)

## the kadm-proxy full-sync benchmark (docs/benchmarks.md): real nftables in a throw-away netns
bench-proxy: test-deps
	$(CARGO) build --release -p kadm-proxy --bin kadm-proxy-bench
	$(RELEASE_DIR)/kadm-proxy-bench $(or $(BENCH_ARGS),1000 10)

clean:
	$(CARGO) clean
