#!/usr/bin/env bash
# Fuzzes every parser of outside input with cargo-fuzz (libFuzzer), each target for a
# bounded time (`make fuzz`; not part of `make test`, whose tests/fuzz_regressions.rs
# replays the saved inputs instead).
#
#   scripts/fuzz.sh [TARGET...]     default: every target in fuzz/Cargo.toml
#
# Environment: FUZZ_SECONDS (per target, default 60).
#
# cargo-fuzz needs nightly compiler flags; the machine has only the stable toolchain, so
# RUSTC_BOOTSTRAP=1 unlocks them. No sanitizer (`-s none`): the code under test is safe
# Rust, and a panic is what we look for. A crash is copied to fuzz/regressions/TARGET/
# (replayed by `make test` from then on) and the script fails naming it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
seconds=${FUZZ_SECONDS:-60}
work="$root/.cache/fuzz"
export CARGO_TARGET_DIR="$work/target"
export RUSTC_BOOTSTRAP=1

say() { echo "fuzz.sh: $*" >&2; }
die() { echo "fuzz.sh: ERROR: $*" >&2; exit 1; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz from crates.io (once)"
    cargo install cargo-fuzz --locked >/dev/null 2>&1 || cargo install cargo-fuzz || die "could not install cargo-fuzz"
fi

mapfile -t all < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^stratus-fuzz$')
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

say "building ${#targets[@]} targets (instrumented release build; the first one takes a while)"
if [ $# -eq 0 ]; then
    (cd fuzz && cargo fuzz build -s none) || die "cargo fuzz build failed"
else
    for t in "${targets[@]}"; do (cd fuzz && cargo fuzz build -s none "$t") || die "cargo fuzz build $t failed"; done
fi
bin_dir="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

failed=()
for t in "${targets[@]}"; do
    [ -x "$bin_dir/$t" ] || die "no fuzz target '$t' (targets: ${all[*]})"
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t/"
    mkdir -p "$corpus" "$artifacts" "fuzz/regressions/$t"
    log="$work/$t.log"
    say "$t: ${seconds}s"
    # The working corpus grows in .cache; the committed seeds and regressions are read too.
    if "$bin_dir/$t" "$corpus" "fuzz/corpus/$t" "fuzz/regressions/$t" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
        -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        say "$t: no crash in ${runs:-?} runs"
    else
        crash=$(ls -t "$artifacts" 2>/dev/null | head -1 || true)
        if [ -n "$crash" ]; then
            cp "$artifacts$crash" "fuzz/regressions/$t/$crash"
            say "$t: CRASH, input saved as fuzz/regressions/$t/$crash (log: $log)"
        else
            say "$t: the fuzzer failed without a crash input (log: $log)"
        fi
        failed+=("$t")
    fi
done
[ ${#failed[@]} -eq 0 ] || die "crashes in: ${failed[*]}; fix them, then keep the inputs in fuzz/regressions/ as regression tests"
say "every target ran ${seconds}s without a crash"
