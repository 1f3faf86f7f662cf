#!/usr/bin/env bash
# Regenerates the geomedian / MADs / percentile parity fixtures in tests/data/parity/.
#
# Creates .venv-parity/ (git-ignored) if missing, installs the Python reference
# (odc-algo, geomad, numpy; pinned so the fixtures are reproducible) if it is not
# already there at those versions, then runs scripts/parity/make_fixtures.py.
# Idempotent: a second run reuses the venv and rewrites identical fixtures.
#
# With --venv-only it only prepares the venv.
#
# Environment:
#   PYTHON             interpreter used to create the venv (default: python3)
#   PARITY_PIP_SPECS   pip requirement specs (default: the pins below)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
venv="$root/.venv-parity"
python=${PYTHON:-python3}
specs=${PARITY_PIP_SPECS:-"odc-algo==1.2.2 geomad==1.0.0 numpy==2.4.6"}

say() { echo "make_fixtures.sh: $*"; }
die() { echo "make_fixtures.sh: ERROR: $*" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null || die "'$python' not found; set PYTHON to a Python 3.10+ interpreter"
    say "creating venv $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv" || die "could not create the venv (on Debian: apt-get install python3-venv)"
else
    say "reusing venv $venv ($("$venv/bin/python" --version 2>&1))"
fi

# Installed already at the requested versions?
satisfied() {
    # shellcheck disable=SC2086
    "$venv/bin/python" - $specs <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, _, want = spec.partition("==")
    have = version(name)
    if want and have != want:
        sys.exit(1)
import odc.algo, geomad, numpy  # noqa: F401  (importable, compiled parts load)
EOF
}

if satisfied; then
    say "reference already installed: $specs"
else
    say "installing the reference into the venv: pip install $specs"
    # shellcheck disable=SC2086
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q $specs; then
        die "pip install of '$specs' failed (PyPI reachable? compatible Python?); fixtures NOT regenerated"
    fi
    satisfied || die "installed '$specs' but cannot import odc.algo / geomad / numpy; fixtures NOT regenerated"
fi

say "$("$venv/bin/python" -m pip show odc-algo geomad numpy 2>/dev/null | grep -E '^(Name|Version):' | paste -sd' ')"
# `--venv-only`: stop here (the benchmarks use the same reference venv).
if [ "${1:-}" = "--venv-only" ]; then
    exit 0
fi

say "running scripts/parity/make_fixtures.py"
"$venv/bin/python" scripts/parity/make_fixtures.py
say "fixtures in tests/data/parity/ ($(du -sh tests/data/parity | cut -f1))"
