#!/usr/bin/env bash
# Audits Cargo.lock against the RustSec advisory database with cargo-audit (`make test`).
#
# The database is a git repository on GitHub. Where it can be fetched, cargo-audit is
# installed from crates.io (once) and run, and any advisory fails the check. Where it
# cannot (a machine that reaches only package registries), a copy at CARGO_AUDIT_DB
# (default ~/.cargo/advisory-db) is used if there is one, saying how old it is; with
# neither, the check says loudly that dependencies were NOT audited, and passes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=https://github.com/rustsec/advisory-db
db=${CARGO_AUDIT_DB:-$HOME/.cargo/advisory-db}

say() { echo "audit.sh: $*"; }

install_audit() {
    cargo audit --version >/dev/null 2>&1 && return
    say "installing cargo-audit from crates.io (once, a few minutes)"
    cargo install cargo-audit --locked --quiet
}

if timeout 20 git ls-remote --heads "$repo" >/dev/null 2>&1; then
    install_audit
    say "advisory database reachable ($repo): auditing Cargo.lock"
    cargo audit --db "$db"
elif [ -d "$db/.git" ]; then
    install_audit
    say "advisory database NOT reachable; using the local copy at $db (last commit $(git -C "$db" log -1 --format=%cs))"
    cargo audit --no-fetch --db "$db"
else
    say "################################################################################"
    say "ADVISORY DATABASE UNREACHABLE ($repo) and no local copy at $db:"
    say "dependencies were NOT audited for known vulnerabilities on this machine."
    say "Run scripts/audit.sh where GitHub is reachable, or put a clone at CARGO_AUDIT_DB."
    say "################################################################################"
fi
