#!/usr/bin/env bash
# Prepares the local AWS-protocol server the AWS integration tests run against.
#
#   scripts/moto.sh install   create .venv-moto/ (git-ignored) with moto[server] if missing
#   scripts/moto.sh start     install, then start moto_server on 127.0.0.1:$MOTO_PORT
#                             (default 5077) in the background; prints the endpoint
#   scripts/moto.sh stop      stop the server started by `start`
#
# The server is moto's, started through scripts/moto_server.py, which makes DynamoDB's
# conditional writes atomic as they are on AWS. The tests start their own (one per test
# binary, on a free port); `make test` runs `install` first. Idempotent.
#
# Environment:
#   PYTHON          interpreter used to create the venv (default: python3)
#   MOTO_PIP_SPEC   pip requirement (default: the pin below)
#   MOTO_PORT       port for `start` (default 5077)
#   MOTO_HOST       address for `start` (default 127.0.0.1; 0.0.0.0 lets containers reach
#                   it at host.containers.internal, as `make local-aws` needs)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
venv="$root/.venv-moto"
python=${PYTHON:-python3}
spec=${MOTO_PIP_SPEC:-"moto[server]==5.2.5"}
port=${MOTO_PORT:-5077}
host=${MOTO_HOST:-127.0.0.1}
pidfile="$venv/moto_server.pid"

say() { echo "moto.sh: $*"; }
die() { echo "moto.sh: ERROR: $*" >&2; exit 1; }

install() {
    if [ ! -x "$venv/bin/python" ]; then
        command -v "$python" >/dev/null || die "'$python' not found; set PYTHON to a Python 3.9+ interpreter"
        say "creating venv $venv"
        "$python" -m venv "$venv" || die "could not create the venv (on Debian: apt-get install python3-venv)"
    fi
    want=${spec#*==}
    have=$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("moto"))' 2>/dev/null || true)
    if [ "$have" != "$want" ] || [ ! -x "$venv/bin/moto_server" ]; then
        say "installing $spec"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec" \
            || die "pip could not install $spec (is PyPI reachable?)"
    fi
    say "moto $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("moto"))') ready: $venv/bin/moto_server"
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
