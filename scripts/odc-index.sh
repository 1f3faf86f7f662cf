#!/usr/bin/env bash
# An Open Data Cube index for the test that indexes our outputs (tests/product_metadata.rs):
# datacube (the pinned one in .venv-odc-stats) on a throwaway PostgreSQL cluster.
#
#   scripts/odc-index.sh start DIR
#       install what is missing (Debian's PostgreSQL; the venv, scripts/odc-stats-venv.sh),
#       then a fresh cluster in DIR with an empty `odc` database, initialised by
#       `datacube system init`. Prints the database's URL (ODC_DEFAULT_DB_URL).
#   scripts/odc-index.sh stop DIR
#
# Fails loudly when anything is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
venv="$root/.venv-odc-stats"
python=${PYTHON:-python3}

say() { echo "odc-index.sh: $*" >&2; }
die() { echo "odc-index.sh: ERROR: $*" >&2; exit 1; }

# shellcheck source=scripts/lib/postgres.sh
. "$root/scripts/lib/postgres.sh"

start() {
    local dir=$1 url
    pg_install
    "$root/scripts/odc-stats-venv.sh" install
    dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
    pg_start "$dir" odc
    # SQLAlchemy 2.1 takes postgresql:// as psycopg 3; datacube[postgres] brings psycopg2.
    url=$(pg_dsn "$dir" odc | sed 's#^postgresql://#postgresql+psycopg2://#')
    ODC_DEFAULT_DB_URL=$url ODC_DEFAULT_INDEX_DRIVER=postgres "$venv/bin/datacube" system init \
        >"$dir/init.log" 2>&1 || { cat "$dir/init.log" >&2; die "datacube system init failed"; }
    echo "$url"
}

case "${1:-}" in
    start) [ $# -eq 2 ] || die "usage: start DIR"; start "$2" ;;
    stop) [ $# -eq 2 ] || die "usage: stop DIR"; pg_stop "$2" ;;
    *) die "usage: scripts/odc-index.sh start DIR | stop DIR" ;;
esac
