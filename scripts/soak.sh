#!/usr/bin/env bash
# `make soak`: the long chaos soak on the embedded store (SOAK_KILLS kills, default 60, of
# SOAK_WORKERS worker processes, default 4) and the soak on moto through the fault proxy;
# their figures (kills, duplicates, faults survived) are appended to BENCHMARKS.md with the
# machine, date and command. `make test` runs the short versions.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh --test
scripts/moto.sh install
log=$(mktemp)
cargo test -p stratus-cli --test soak -- --include-ignored --nocapture --test-threads 1 2>&1 | tee "$log"
grep -q '^test result: ok' "$log" || { echo "soak: FAILED (see above)"; exit 1; }
{
    echo
    echo "### Chaos soak, $(date -u +%Y-%m-%d) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    echo
    echo "Command: \`make soak\` (SOAK_KILLS=${SOAK_KILLS:-60} SOAK_WORKERS=${SOAK_WORKERS:-4} SOAK_SEED=${SOAK_SEED:-20261127})."
    echo "Every run ended with every healthy tile done once and byte-identical to a calm run,"
    echo "every poisoned tile failed once naming its input, one completion per arm, nothing left behind."
    echo
    echo '```'
    grep -o '{"soak".*}' "$log"
    echo '```'
} >> BENCHMARKS.md
echo "soak: figures appended to BENCHMARKS.md"
