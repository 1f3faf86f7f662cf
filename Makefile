# The commands a user types. `make demo` and `make test` install what they need first.
SHELL := /bin/bash
CARGO ?= cargo
# CI builds once from cold: incremental-compilation caches would only fill its disk.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

.PHONY: setup build demo test fuzz soak lint fmt clean bench bench-peer bench-split bench-continent package local-aws local-aws-down invoke sam-invoke

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release --bin stratus

## Synthetic inputs -> plan -> run -> outputs, on the embedded store (a few minutes).
demo: build
	@scripts/demo.sh

## Format and lint checks, infrastructure checks, the function image (debug build), then every test.
test:
	@scripts/setup.sh --test
	@scripts/moto.sh install
	@scripts/stac-api.sh install
	@scripts/odc-stats-venv.sh install
	@scripts/infra-check.sh
	@scripts/audit.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --bins
	@scripts/container.sh image debug
	$(CARGO) test --workspace --no-fail-fast

## The long chaos soak (workers SIGKILLed, messages duplicated, faults injected, inputs
## poisoned) on the embedded store and on moto; figures appended to BENCHMARKS.md.
soak:
	@scripts/soak.sh

## Fuzz every parser of outside input for FUZZ_SECONDS each (default 60); crashes are
## saved to fuzz/regressions/ and replayed by `make test`.
fuzz: setup
	@scripts/fuzz.sh

## The Lambda container image (all four functions + the CLI), release build, with podman.
package:
	@scripts/setup.sh --test
	$(CARGO) build --release --bin stratus --bin stratus-planner --bin stratus-dispatcher --bin stratus-worker --bin stratus-mosaic
	@scripts/container.sh image release

## A local stand-in deployment: moto + `terraform apply` of infra/examples/local + sample inputs and run file.
local-aws: build
	@scripts/moto.sh install
	@scripts/infra-tools.sh install sam
	@scripts/local-aws.sh up

local-aws-down:
	@scripts/local-aws.sh down

## One function on one event, in the image, through the Lambda runtime interface emulator:
##   make invoke FUNCTION=worker EVENT=events/local/sqs-task-batch-1.json
FUNCTION ?= worker
EVENT ?= events/local/sqs-task-batch-1.json
invoke:
	@scripts/invoke.sh $(FUNCTION) $(EVENT)

## The same through `sam local invoke` and podman's Docker-compatible socket.
SAM_FUNCTION ?= WorkerFunction
sam-invoke:
	@scripts/sam-invoke.sh $(SAM_FUNCTION) $(EVENT)

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf demo-out

## Benchmarks (not part of `make test`): results are appended to BENCHMARKS.md.
bench: build
	@scripts/parity/make_fixtures.sh --venv-only
	.venv-parity/bin/python scripts/bench/kernels.py
	$(CARGO) build --release --example bench_mosaic --example bench_tile
	python3 scripts/bench/mosaic.py
	python3 scripts/bench/planner.py
	@scripts/stac-api.sh install
	python3 scripts/bench/stac_api_planning.py
	python3 scripts/bench/tile.py

## The au-30 bench tile with the Python stack users run today (odc-stac + odc-algo), compared
## with our outputs of the same tile (figures printed as JSON; see BENCHMARKS.md).
bench-peer: build
	$(CARGO) build --release --example bench_tile
	python3 scripts/bench/peer_tile.py --setup
	BENCH_OUT_DIR=$(CURDIR)/.cache/bench/au-tile/ours RAYON_NUM_THREADS=2 target/release/examples/bench_tile .cache/bench/au-tile full
	.venv-parity/bin/python scripts/bench/peer_tile.py --threads 2 --ours .cache/bench/au-tile/ours/bench_gm/1.0.0/x28/y28/2021--P1Y

## Sub-tile parts: the largest split tile's assembly (9600 x 9600, every gm-s2 band) from
## its parts, timed; and the au-30 bench tile whole against 2 x 2 parts (the overhead).
bench-split: build
	$(CARGO) build --release --example bench_assembly --example bench_tile
	python3 scripts/bench/assembly.py
	python3 scripts/bench/split_tile.py

## One year of synthetic Sentinel-2 over Africa planned onto africa-10: tasks, observations,
## tasks beyond Lambda's limits, the cost estimate (summary appended to BENCHMARKS.md).
bench-continent: build
	python3 scripts/bench/continent.py
