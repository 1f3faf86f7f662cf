#!/usr/bin/env bash
# `sam local invoke` of a function in template.yaml, through podman's Docker-compatible
# socket, against the local stack of `make local-aws`:
#
#   scripts/sam-invoke.sh [FUNCTION] [EVENT.json]
#       FUNCTION: PlannerFunction, DispatcherFunction, WorkerFunction (default), MosaicFunction
#       EVENT:    default events/local/sqs-task-batch-1.json
#
# SAM finds the image stratus-lambda:latest (make package) in podman's store, adds its
# runtime interface emulator and runs it; the function reaches moto at
# host.containers.internal. Exits non-zero when the invocation failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
fn=${1:-WorkerFunction}
event=${2:-events/local/sqs-task-batch-1.json}

die() { echo "sam-invoke: ERROR: $*" >&2; exit 1; }
[ -f "$root/.cache/local-aws/env" ] || die "the local stack is not up: run 'make local-aws' first"
# shellcheck disable=SC1091
source "$root/.cache/local-aws/env"
[ -x .venv-sam/bin/sam ] || die "sam is missing: run scripts/infra-tools.sh install sam"
scripts/container.sh podman image exists localhost/stratus-lambda:latest || die "image stratus-lambda:latest not found: run 'make package'"

sock="$root/.cache/container/podman.sock"
rm -f "$sock"
scripts/container.sh podman system service --time=0 "unix://$sock" >"$root/.cache/container/podman-service.log" 2>&1 &
service=$!
trap 'kill $service 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || die "podman's API service did not start (see .cache/container/podman-service.log)"

port=${STRATUS_AWS_ENDPOINT##*:}
out=$(mktemp)
# SAM lets the shell's variables override the template's: keep the host's view out.
unset_stratus=()
for var in $(compgen -e | grep '^STRATUS_'); do unset_stratus+=(-u "$var"); done
env "${unset_stratus[@]}" DOCKER_HOST="unix://$sock" SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam local invoke "$fn" -t template.yaml -e "$event" \
    --region "$AWS_REGION" \
    --parameter-overrides \
    "AwsEndpoint=http://host.containers.internal:$port" \
    "OutputBucket=$STRATUS_OUTPUT_BUCKET" "InputBucket=$STRATUS_INPUT_BUCKET" "LedgerTable=$STRATUS_TABLE" \
    "TaskQueueName=${STRATUS_TASK_QUEUE_URL##*/}" "DispatchQueueName=${STRATUS_DISPATCH_QUEUE_URL##*/}" \
    "CompletionQueueName=${STRATUS_COMPLETION_QUEUE_URL##*/}" | tee "$out"
echo # SAM prints the response without a final newline
response=$(tail -1 "$out")
rm -f "$out"
python3 scripts/lib/check_lambda_response.py "$response" sam-invoke
echo "sam-invoke: ok"
