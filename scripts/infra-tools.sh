#!/usr/bin/env bash
# Installs the Python-packaged tools the infrastructure checks and `make package` use, each
# in its own git-ignored venv (their dependencies conflict), if missing or at another version:
#
#   .venv-sam/      aws-sam-cli: `sam validate --lint`, `sam local invoke`, and the Lambda
#                   runtime interface emulator (samcli/local/rapid/aws-lambda-rie-x86_64)
#   .venv-checkov/  checkov: static security checks of infra/
#   .venv-moto/     moto[server] (+ boto3): the local AWS-protocol server (scripts/moto.sh)
#
#   scripts/infra-tools.sh install [sam|checkov|moto ...]   (default: all)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python3}

declare -A specs=(
    [sam]="aws-sam-cli==1.170.0"
    [checkov]="checkov==3.3.30"
    [moto]="moto[server]==5.2.5"
)

install() {
    local name=$1 venv=".venv-$1" spec=${specs[$1]} stamp
    stamp="$venv/.stratus-spec"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$spec" ]; then
        echo "infra-tools: $spec ready in $venv"
        return
    fi
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv" \
        || { echo "infra-tools: could not create $venv (on Debian: apt-get install python3-venv)" >&2; exit 1; }
    echo "infra-tools: installing $spec in $venv"
    # shellcheck disable=SC2086 # the spec is a list of requirements
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $spec \
        || { echo "infra-tools: pip could not install $spec (is PyPI reachable?)" >&2; exit 1; }
    echo "$spec" >"$stamp"
}

[ "${1:-install}" = install ] || { echo "usage: scripts/infra-tools.sh install [sam|checkov|moto ...]" >&2; exit 1; }
shift || true
for name in "${@:-sam checkov moto}"; do
    for n in $name; do
        [ -n "${specs[$n]:-}" ] || { echo "infra-tools: unknown tool '$n' (sam, checkov, moto)" >&2; exit 1; }
        install "$n"
    done
done
