#!/usr/bin/env bash
# A local stand-in for a Stratus deployment, for `make invoke` and `make sam-invoke`:
#
#   scripts/local-aws.sh up     start moto on 0.0.0.0:$MOTO_PORT (default 5077, reachable from
#                               containers as host.containers.internal), `terraform apply`
#                               infra/examples/local to it (bucket, ledger table, queues and
#                               DLQs of the stratus-data module, plus an inputs bucket), upload
#                               synthetic Sentinel-2 inputs and the run file
#                               runs/local-pq.yaml, and write .cache/local-aws/env
#   scripts/local-aws.sh event QUEUE [COUNT]
#                               print a Lambda SQS event made of the next COUNT real messages
#                               of QUEUE (dispatch, tasks, container_tasks or completion), left in the queue
#   scripts/local-aws.sh down   `terraform destroy`, then stop moto
#
# The sample events in events/local/ address this stack: invoke the planner on the run file's
# S3 notification, then the dispatcher, a worker and the mosaic on the messages that follow.
# Needs terraform (with the AWS provider mirror at /opt/tf-plugins when offline).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
state="$root/.cache/local-aws"
port=${MOTO_PORT:-5077}
endpoint="http://127.0.0.1:$port"
stratus=${STRATUS_BIN:-$root/target/release/stratus}

say() { echo "local-aws: $*"; }
die() { echo "local-aws: ERROR: $*" >&2; exit 1; }

source scripts/lib/terraform.sh
[ -n "$tf" ] || die "terraform is not installed: the local stack is made by applying infra/examples/local (install terraform, or set TERRAFORM)"
export TF_DATA_DIR="$state/.terraform"
tf_args=(-chdir=infra/examples/local)
tf_vars=(-state="$state/terraform.tfstate" -var "endpoint=$endpoint" -input=false -no-color)

up() {
    mkdir -p "$state"
    MOTO_HOST=0.0.0.0 MOTO_PORT=$port scripts/moto.sh start
    "$tf" "${tf_args[@]}" init -input=false -no-color >/dev/null
    say "terraform apply infra/examples/local -> $endpoint (about 2 minutes: the provider waits for SQS attributes to settle)"
    "$tf" "${tf_args[@]}" apply -auto-approve "${tf_vars[@]}" >"$state/apply.log" || die "terraform apply failed: see $state/apply.log"
    local out
    out=$("$tf" "${tf_args[@]}" output -state="$state/terraform.tfstate" -json)
    python3 - "$out" "$endpoint" >"$state/env" <<'PY'
import json, sys
out, endpoint = json.loads(sys.argv[1]), sys.argv[2]
v = {k: o["value"] for k, o in out.items()}
print(f"""# Written by scripts/local-aws.sh from `terraform output`.
export STRATUS_AWS_ENDPOINT={endpoint}
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export STRATUS_TABLE={v['table']}
export STRATUS_TASK_QUEUE_URL={v['queue_urls']['tasks']}
export STRATUS_CONTAINER_QUEUE_URL={v['queue_urls']['container_tasks']}
export STRATUS_DISPATCH_QUEUE_URL={v['queue_urls']['dispatch']}
export STRATUS_COMPLETION_QUEUE_URL={v['queue_urls']['completion']}
export STRATUS_OUTPUT_BUCKET={v['bucket']}
export STRATUS_INPUT_BUCKET={v['inputs_bucket']}""")
PY
    # shellcheck disable=SC1091
    source "$state/env"
    if [ ! -f "$state/inputs/catalog.json" ]; then
        [ -x "$stratus" ] || die "$stratus is missing: run 'make build' (or set STRATUS_BIN)"
        say "synthetic inputs (6 dates x 2 granules, 240 m)"
        "$stratus" synth --out "$state/inputs" --dates 6 --resolution 240 --granule-km 40 --no-truth >/dev/null
    fi
    cat >"$state/local-pq.yaml" <<RUN
# The local stack's run: pixel quality over 24 km tiles of synthetic Sentinel-2 (2021).
run_id: local_pq-2021--P1Y
inputs: ["s3://$STRATUS_INPUT_BUCKET/synth/catalog.json"]
grid: "epsg:6933;240;100"
temporal_range: 2021--P1Y
frequency: annual
plugin: pq
product: {name: local_pq, version: 1.0.0}
location: s3://$STRATUS_OUTPUT_BUCKET/products
chunk_size: 64
RUN
    say "uploading inputs to s3://$STRATUS_INPUT_BUCKET/synth/ and the run file to s3://$STRATUS_OUTPUT_BUCKET/runs/local-pq.yaml"
    .venv-moto/bin/python - "$state" <<'PY'
import os, sys, boto3
state = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=os.environ["STRATUS_AWS_ENDPOINT"])
inputs = os.path.join(state, "inputs")
for folder, _, files in os.walk(inputs):
    for name in files:
        path = os.path.join(folder, name)
        s3.upload_file(path, os.environ["STRATUS_INPUT_BUCKET"], "synth/" + os.path.relpath(path, inputs))
s3.upload_file(os.path.join(state, "local-pq.yaml"), os.environ["STRATUS_OUTPUT_BUCKET"], "runs/local-pq.yaml")
PY
    say "ready: source $state/env (then e.g. make invoke FUNCTION=planner EVENT=events/local/s3-run-file-created.json)"
}

down() {
    if [ -f "$state/terraform.tfstate" ]; then
        "$tf" "${tf_args[@]}" destroy -auto-approve "${tf_vars[@]}" >"$state/destroy.log" || die "terraform destroy failed: see $state/destroy.log"
        say "destroyed the local stack"
    fi
    rm -f "$state/env"
    scripts/moto.sh stop
}

event() {
    [ -f "$state/env" ] || die "the local stack is not up: run scripts/local-aws.sh up"
    # shellcheck disable=SC1091
    source "$state/env"
    local var
    case "${1:-}" in
        dispatch) var=$STRATUS_DISPATCH_QUEUE_URL ;;
        tasks) var=$STRATUS_TASK_QUEUE_URL ;;
        container_tasks) var=$STRATUS_CONTAINER_QUEUE_URL ;;
        completion) var=$STRATUS_COMPLETION_QUEUE_URL ;;
        *) die "usage: scripts/local-aws.sh event dispatch|tasks|completion [COUNT]" ;;
    esac
    .venv-moto/bin/python scripts/sqs_event.py "$var" "${2:-1}"
}

case "${1:-}" in
    up) up ;;
    event) shift; event "$@" ;;
    down) down ;;
    *) die "usage: scripts/local-aws.sh up|event|down" ;;
esac
