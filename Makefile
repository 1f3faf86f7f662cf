# The commands a user types. `make demo` and `make test` install what they need first.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup build demo test lint fmt clean bench

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release --bin stratus

## Synthetic inputs -> plan -> run -> outputs, on the embedded store (a few minutes).
demo: build
	@scripts/demo.sh

## Format and lint checks, then every test.
test:
	@scripts/setup.sh --test
	@scripts/moto.sh install
	@scripts/infra-check.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --no-fail-fast

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf demo-out

## Benchmarks (not part of `make test`): results are appended to BENCHMARKS.md.
bench: build
	@scripts/parity/make_fixtures.sh --venv-only
	.venv-parity/bin/python scripts/bench/kernels.py
	$(CARGO) build --release --example bench_mosaic
	python3 scripts/bench/mosaic.py
