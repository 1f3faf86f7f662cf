# Sourced by the scripts that run a throwaway PostgreSQL cluster for tests
# (scripts/stac-api.sh, scripts/odc-index.sh): Debian's server, a cluster per test in a
# directory of its own, listening on 127.0.0.1 and that directory's socket only.
# Callers define say() and die().

# The newest installed server's bin directory.
pg_bin() {
    local v
    v=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
    [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/postgres" ] || return 1
    echo "/usr/lib/postgresql/$v/bin"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else
        command -v sudo >/dev/null || die "need root or sudo to run: $*"
        sudo "$@"
    fi
}

# Install Debian's PostgreSQL (and, with `postgis`, PostGIS for its version) when missing.
pg_install() {
    local need=() bin v
    dpkg -s postgresql >/dev/null 2>&1 || need+=(postgresql)
    if [ "${1:-}" = postgis ] && bin=$(pg_bin); then
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
        if [ "${1:-}" = postgis ] && [ ! -f "/usr/share/postgresql/$v/extension/postgis.control" ]; then
            DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "postgresql-$v-postgis-3" >/dev/null
        fi
    fi
    pg_bin >/dev/null || die "no PostgreSQL server under /usr/lib/postgresql"
}

# PostgreSQL refuses to run as root: the cluster belongs to the `postgres` user when we are root.
pg_user() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    "${python:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The DSN of database $2 in the cluster of directory $1.
pg_dsn() { echo "postgresql://$(pg_user)@127.0.0.1:$(cat "$1/pg.port")/$2"; }

# A fresh cluster in directory $1 with an empty database $2 (trust authentication).
pg_start() {
    local dir=$1 db=$2 bin pg_port
    bin=$(pg_bin)
    mkdir -p "$dir/socket"
    [ "$(id -u)" -eq 0 ] && chown -R postgres "$dir"
    # The socket directory's parents must be reachable by the cluster's user.
    [ "$(id -u)" -eq 0 ] && chmod o+x "$dir" "$(dirname "$dir")" 2>/dev/null || true
    pg_port=$(free_port)
    echo "$pg_port" >"$dir/pg.port"
    as_pg "$bin/initdb" -D "$dir/pg" -A trust -U "$(pg_user)" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed in $dir/pg"; }
    as_pg "$bin/pg_ctl" -D "$dir/pg" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir/socket -c fsync=off -c full_page_writes=off" start >/dev/null \
        || { cat "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U "$(pg_user)" "$db" || die "createdb failed"
}

pg_stop() {
    local dir=$1 bin
    bin=$(pg_bin) || return 0
    [ -d "$dir/pg" ] && as_pg "$bin/pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null 2>&1 || true
}
