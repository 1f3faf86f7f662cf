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

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else
        command -v sudo >/dev/null || die "need root or sudo to run: $*"
        sudo "$@"
    fi
}

pg_bin() {
    local v
    v=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
    [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/postgres" ] || return 1
    echo "/usr/lib/postgresql/$v/bin"
}

install() {
    local need=()
    dpkg -s postgresql >/dev/null 2>&1 || need+=(postgresql)
    if bin=$(pg_bin); then
        local v
        v=$(basename "$(dirname "$bin")")
        [ -f "/usr/share/postgresql/$v/extension/postgis.control" ] || need+=("postgresql-$v-postgis-3")
    fi
    if ((${#need[@]})); then
        say "installing ${need[*]}"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
        # The PostGIS package is named after the server's version, known only now.
        bin=$(pg_bin) || die "PostgreSQL did not install"
        v=$(basename "$(dirname "$bin")")
        if [ ! -f "/usr/share/postgresql/$v/extension/postgis.control" ]; then
            DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "postgresql-$v-postgis-3" >/dev/null
        fi
    fi
    pg_bin >/dev/null || die "no PostgreSQL server under /usr/lib/postgresql"
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

# PostgreSQL refuses to run as root: the cluster belongs to the `postgres` user when we are root.
pg_user() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dsn() { echo "postgresql://$(pg_user)@127.0.0.1:$(cat "$1/pg.port")/stac"; }

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local dir=$1 port=$2 bin
    install
    bin=$(pg_bin)
    mkdir -p "$dir/socket"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" -eq 0 ] && chown -R postgres "$dir"
    # The socket directory's parents must be reachable by the cluster's user.
    [ "$(id -u)" -eq 0 ] && chmod o+x "$dir" "$(dirname "$dir")" 2>/dev/null || true
    local pg_port
    pg_port=$(free_port)
    echo "$pg_port" >"$dir/pg.port"
    as_pg "$bin/initdb" -D "$dir/pg" -A trust -U "$(pg_user)" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed in $dir/pg"; }
    as_pg "$bin/pg_ctl" -D "$dir/pg" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir/socket -c fsync=off -c full_page_writes=off" start >/dev/null \
        || { cat "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U "$(pg_user)" stac || die "createdb failed"
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
    local dir=$1 bin
    bin=$(pg_bin) || true
    [ -f "$dir/api.pid" ] && kill "$(cat "$dir/api.pid")" 2>/dev/null || true
    [ -d "$dir/pg" ] && as_pg "$bin/pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null 2>&1 || true
}

case "${1:-install}" in
    install) install ;;
    start) [ $# -eq 3 ] || die "usage: start DIR PORT"; start "$2" "$3" ;;
    load) [ $# -ge 3 ] || die "usage: load DIR FILE..."; shift; load "$@" ;;
    stop) [ $# -eq 2 ] || die "usage: stop DIR"; stop "$2" ;;
    *) die "usage: scripts/stac-api.sh install | start DIR PORT | load DIR FILE... | stop DIR" ;;
esac
