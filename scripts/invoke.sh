#!/usr/bin/env bash
# Invokes one Stratus function on an event, in the function's container image, through the
# Lambda runtime interface emulator (the one the aws-sam-cli wheel ships), as Lambda would:
#
#   scripts/invoke.sh FUNCTION EVENT.json      FUNCTION: planner, dispatcher, worker, mosaic
#
# Prints the function's response on stdout (its logs on stderr) and exits non-zero when the
# invocation failed or reported batch item failures. `make invoke` runs it against the
# local stack of `make local-aws`; the tests run it against their own moto server.
#
# Environment (defaults: the local stack's, from .cache/local-aws/env when present):
#   STRATUS_AWS_ENDPOINT      the AWS-protocol server as this machine sees it
#                             (http://127.0.0.1:PORT); the container reaches it at
#                             host.containers.internal:PORT, so it must listen on 0.0.0.0
#   STRATUS_TABLE, STRATUS_TASK_QUEUE_URL, STRATUS_CONTAINER_QUEUE_URL, STRATUS_DISPATCH_QUEUE_URL,
#   STRATUS_COMPLETION_QUEUE_URL, STRATUS_SCHEDULED_RUN_FILE, STRATUS_PAGE_SIZE
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
#   STRATUS_IMAGE             the image (default localhost/stratus-lambda:latest)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

die() { echo "invoke.sh: ERROR: $*" >&2; exit 1; }

fn=${1:-}
event=${2:-}
case "$fn" in
    planner | dispatcher | worker | mosaic) ;;
    *) die "usage: scripts/invoke.sh planner|dispatcher|worker|mosaic EVENT.json" ;;
esac
[ -f "$event" ] || die "event file '$event' not found (sample events are in events/ and events/local/)"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$event" 2>/dev/null || die "event file '$event' is not valid JSON"

if [ -f "$root/.cache/local-aws/env" ] && [ -z "${STRATUS_TABLE:-}" ]; then
    # shellcheck disable=SC1091
    source "$root/.cache/local-aws/env"
fi
[ -n "${STRATUS_TABLE:-}" ] || die "STRATUS_TABLE is not set: run 'make local-aws' first (or export the deployment's variables)"
image=${STRATUS_IMAGE:-localhost/stratus-lambda:latest}
rie="$root/.venv-sam/lib/python3.11/site-packages/samcli/local/rapid/aws-lambda-rie-x86_64"
[ -x "$rie" ] || rie=$(ls "$root"/.venv-sam/lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-x86_64 2>/dev/null | head -1 || true)
[ -n "$rie" ] && [ -x "$rie" ] || die "the Lambda runtime interface emulator is missing: run scripts/infra-tools.sh install"
scripts/container.sh podman image exists "$image" || die "image $image not found: run 'make package'"

# The container sees this machine as host.containers.internal.
endpoint=${STRATUS_AWS_ENDPOINT:-}
container_endpoint=${endpoint/127.0.0.1/host.containers.internal}
container_endpoint=${container_endpoint/localhost/host.containers.internal}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
name="stratus-invoke-$fn-$$"
env_args=()
for var in STRATUS_TABLE STRATUS_TASK_QUEUE_URL STRATUS_CONTAINER_QUEUE_URL STRATUS_DISPATCH_QUEUE_URL STRATUS_COMPLETION_QUEUE_URL \
    STRATUS_SCHEDULED_RUN_FILE STRATUS_PAGE_SIZE STRATUS_DEADLINE_MARGIN_S RUST_LOG; do
    [ -z "${!var:-}" ] || env_args+=(-e "$var=${!var}")
done
env_args+=(-e "STRATUS_AWS_ENDPOINT=$container_endpoint"
    -e "AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}" -e "AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}"
    -e "AWS_REGION=${AWS_REGION:-us-east-1}" -e "AWS_LAMBDA_FUNCTION_TIMEOUT=${AWS_LAMBDA_FUNCTION_TIMEOUT:-900}")

scripts/container.sh podman run -d --rm --name "$name" -p "127.0.0.1:$port:8080" \
    -v "$rie:/aws-lambda-rie:ro" --entrypoint /aws-lambda-rie "${env_args[@]}" \
    "$image" "/usr/local/bin/stratus-$fn" >/dev/null
trap 'scripts/container.sh podman logs "$name" >&2 2>&1 || true; scripts/container.sh podman stop -t 2 "$name" >/dev/null 2>&1 || true' EXIT

url="http://127.0.0.1:$port/2015-03-31/functions/function/invocations"
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done
echo "invoke.sh: $fn <- $event ($image)" >&2
response=$(curl -sS --max-time "${AWS_LAMBDA_FUNCTION_TIMEOUT:-900}" -XPOST "$url" --data-binary "@$event") \
    || die "the runtime interface emulator did not answer"
echo "$response"
python3 scripts/lib/check_lambda_response.py "$response" invoke.sh
