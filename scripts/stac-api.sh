#!/usr/bin/env bash
# A real STAC API server for the STAC API input tests: stac-fastapi-pgstac (the stack
# Planetary Computer runs) on PostgreSQL + PostGIS + pgstac, on 127.0.0.1.
#
#   scripts/stac-api.sh install
#       Debian's PostgreSQL and PostGIS if missing (as root or with sudo), and
#       .venv-stac-api/ (git-ignored) with the pinned stac-fastapi-pgstac, pypgstac, uvicorn.
#   scripts/stac-api.sh start DIR PORT
#       install, then a fresh database cluster in DIR (PostgreSQL listens on DIR's socket
#       only), pgstac migrated into it, and the API on http://127.0.0.1:PORT in the
#       background. Prints the API's URL when it answers.
#   scripts/stac-api.sh load DIR FILE...
#       load STAC Collections (*.collection.json) and items (.json, .ndjson, item
#       collections) into DIR's database; collections first. Items of a collection that
#       is not loaded get a minimal one made for them.
#   scripts/stac-api.sh stop DIR
#
# The tests (stratus_testkit::stac_api) start one server per test binary in a temporary
# DIR, so nothing here is shared between runs. Fails loudly when anything is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
venv="$root/.venv-stac-api"
spec="stac-fastapi-pgstac==7.2.0 pypgstac[psycopg]==0.10.0 uvicorn==0.54.0"
python=${PYTHON:-python3}

say() { echo "stac-api.sh: $*" >&2; }
die() { echo "stac-api.sh: ERROR: $*" >&2; exit 1; }

# shellcheck source=scripts/lib/postgres.sh
. "$root/scripts/lib/postgres.sh"

install() {
    pg_install postgis
    local stamp="$venv/.stratus-spec"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$spec" ]; then
        return
    fi
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv" \
        || die "could not create $venv (on Debian: apt-get install python3-venv)"
    say "installing $spec in $venv"
    # shellcheck disable=SC2086 # the spec is a list of requirements
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $spec \
        || die "pip could not install $spec (is PyPI reachable?)"
    echo "$spec" >"$stamp"
}

dsn() { pg_dsn "$1" stac; }

start() {
    local dir=$1 port=$2
    install
    dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
    pg_start "$dir" stac
    local pg_port
    pg_port=$(cat "$dir/pg.port")
    "$venv/bin/pypgstac" migrate --dsn "$(dsn "$dir")" >"$dir/migrate.log" 2>&1 \
        || { cat "$dir/migrate.log" >&2; die "pypgstac migrate failed"; }
    # stac-fastapi-pgstac reads its connection from PG* variables (trust authentication:
    # the password is not checked).
    (
        export PGHOST=127.0.0.1 PGPORT="$pg_port" PGUSER="$(pg_user)" PGPASSWORD=unused PGDATABASE=stac
        export ENABLED_EXTENSIONS="query,sort,fields,filter,pagination,collection_search,free_text"
        nohup "$venv/bin/uvicorn" stac_fastapi.pgstac.app:create_app --factory --host 127.0.0.1 --port "$port" \
            >"$dir/api.log" 2>&1 &
        echo $! >"$dir/api.pid"
    )
    local url="http://127.0.0.1:$port"
    for _ in $(seq 1 120); do
        if "$venv/bin/python" - "$url" <<'EOF' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/", timeout=2).read()
EOF
            echo "$url"
            return
        fi
        kill -0 "$(cat "$dir/api.pid")" 2>/dev/null || { cat "$dir/api.log" >&2; die "the API exited"; }
        sleep 0.5
    done
    cat "$dir/api.log" >&2
    die "the API did not answer on $url within 60 s"
}

load() {
    local dir=$1
    shift
    dir=$(cd "$dir" && pwd)
    "$venv/bin/python" "$root/scripts/stac_api_load.py" "$(dsn "$dir")" "$@"
}

stop() {
    local dir=$1
    [ -f "$dir/api.pid" ] && kill "$(cat "$dir/api.pid")" 2>/dev/null || true
    pg_stop "$dir"
}

case "${1:-install}" in
    install) install ;;
    start) [ $# -eq 3 ] || die "usage: start DIR PORT"; start "$2" "$3" ;;
    load) [ $# -ge 3 ] || die "usage: load DIR FILE..."; shift; load "$@" ;;
    stop) [ $# -eq 2 ] || die "usage: stop DIR"; stop "$2" ;;
    *) die "usage: scripts/stac-api.sh install | start DIR PORT | load DIR FILE... | stop DIR" ;;
esac
