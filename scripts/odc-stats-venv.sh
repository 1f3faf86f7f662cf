#!/usr/bin/env bash
# The reference odc-stats, for the tests that compare with it (tests/odc_stats_periods.rs),
# and the independent validators of our products (tests/product_metadata.rs): eodatasets3's
# eo3-validate (an odc-stats dependency), pystac, rio-cogeo.
#
#   scripts/odc-stats-venv.sh install
#       .venv-odc-stats/ (git-ignored) with the pinned odc-stats and datacube, and GDAL's
#       Python bindings built against the system's libgdal (the bindings must match it:
#       PyPI's newest GDAL refuses an older libgdal). Needs libgdal-dev, which
#       scripts/setup.sh installs for the Rust build. Idempotent; fails loudly.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="$(pwd)/.venv-odc-stats"
python=${PYTHON:-python3}

say() { echo "odc-stats-venv.sh: $*" >&2; }
die() { echo "odc-stats-venv.sh: ERROR: $*" >&2; exit 1; }

install() {
    command -v gdal-config >/dev/null || die "gdal-config is missing: install libgdal-dev (scripts/setup.sh does)"
    local gdal spec stamp="$venv/.stratus-spec"
    gdal=$(gdal-config --version)
    spec="odc-stats==1.9.7 datacube[postgres]==1.9.20 rio-cogeo==5.4.2 GDAL==$gdal"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$spec" ]; then
        return
    fi
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv" \
        || die "could not create $venv (on Debian: apt-get install python3-venv)"
    say "installing $spec in $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check numpy setuptools wheel \
        || die "pip could not install numpy (is PyPI reachable?)"
    # Built here, without isolation, so that it compiles against the numpy above.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation "GDAL==$gdal" \
        || die "pip could not build GDAL==$gdal's bindings (libgdal-dev and a C++ compiler installed?)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "odc-stats==1.9.7" "datacube[postgres]==1.9.20" \
        "rio-cogeo==5.4.2" || die "pip could not install odc-stats and rio-cogeo (is PyPI reachable?)"
    "$venv/bin/python" -c "import odc.stats.utils" || die "odc-stats does not import in $venv"
    echo "$spec" >"$stamp"
}

case "${1:-}" in
    install) install ;;
    *) die "usage: $0 install" ;;
esac
