#!/usr/bin/env bash
# Prepares the local AWS-protocol server the AWS integration tests run against.
#
#   scripts/moto.sh install   create .venv-moto/ (git-ignored) with moto[server] if missing
#                             (scripts/infra-tools.sh install moto, which holds the pin)
#   scripts/moto.sh start     install, then start moto_server on $MOTO_HOST:$MOTO_PORT
#                             (default 5077) in the background; prints the endpoint
#   scripts/moto.sh stop      stop the server started by `start`
#
# The server is moto's, started through scripts/moto_server.py, which makes it behave as
# AWS where our tests depend on it (atomic DynamoDB writes, SQS RedriveAllowPolicy,
# path-style S3 only). The tests start their own (one per test
# binary, on a free port); `make test` runs `install` first. Idempotent.
#
# Environment:
#   PYTHON          interpreter used to create the venv (default: python3; infra-tools.sh)
#   MOTO_PORT       port for `start` (default 5077)
#   MOTO_HOST       address for `start` (default 127.0.0.1; 0.0.0.0 lets containers reach
#                   it at host.containers.internal, as `make local-aws` needs)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
venv="$root/.venv-moto"
port=${MOTO_PORT:-5077}
host=${MOTO_HOST:-127.0.0.1}
pidfile="$venv/moto_server.pid"

say() { echo "moto.sh: $*"; }
die() { echo "moto.sh: ERROR: $*" >&2; exit 1; }

install() {
    scripts/infra-tools.sh install moto
}

case "${1:-install}" in
    install) install ;;
    start)
        install
        if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            say "already running (pid $(cat "$pidfile"))"
        else
            setsid "$venv/bin/python" scripts/moto_server.py -H "$host" -p "$port" >"$venv/moto_server.log" 2>&1 </dev/null &
            echo $! >"$pidfile"
            for _ in $(seq 50); do
                curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break
                sleep 0.2
            done
        fi
        say "endpoint http://127.0.0.1:$port, listening on $host (log: $venv/moto_server.log)"
        ;;
    stop)
        if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
        say "stopped"
        ;;
    *) die "usage: scripts/moto.sh install|start|stop" ;;
esac
