"""Checks the functions' IAM policies (infra/modules/stratus/iam.tf and the container
worker's) against what each function really calls.

For every function, the actions its policy grants must equal the expected set below, and
every expected action must be justified: either by an AWS SDK call found in
shared/aws/src (the only code that talks to AWS), or by a named Lambda feature that uses
the function's role (an SQS event source mapping receives and deletes for it; an
asynchronous-invocation dead-letter queue is sent to with it). No action may be a
wildcard. Run by scripts/infra-check.sh (so by `make test`) with the checkov venv's
python, which carries an HCL parser.
"""

import pathlib
import re
import sys

import hcl2

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODULE = ROOT / "infra/modules/stratus"

# Why a role holds an action besides the code calling it.
LAMBDA_ESM = "the Lambda SQS event source mapping polls and deletes with the function's role"
ASYNC_DLQ = "Lambda sends failed asynchronous invocations to the planner's dead-letter queue with its role"

LEDGER_READ = {"dynamodb:GetItem", "dynamodb:Query"}
LEDGER_WRITE = {"dynamodb:UpdateItem", "dynamodb:TransactWriteItems"}
QUEUE_OPEN = {"sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
CONSUME = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}

EXPECTED = {
    "planner": {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "dynamodb:PutItem", "dynamodb:BatchWriteItem",
                "sqs:SendMessage"} | LEDGER_READ | QUEUE_OPEN,
    "dispatcher": LEDGER_READ | LEDGER_WRITE | CONSUME | QUEUE_OPEN | {"sqs:SendMessage"},
    "worker": {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
               "sqs:SendMessage", "sqs:GetQueueUrl"} | LEDGER_READ | LEDGER_WRITE | CONSUME | QUEUE_OPEN,
    # UpdateItem: the mosaic records which completion it handled (a duplicate does nothing).
    "mosaic": {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "dynamodb:UpdateItem"} | LEDGER_READ | CONSUME,
}
EXPECTED["container_worker"] = EXPECTED["worker"]

# Action -> SDK methods (any one of them) that need it, where the name differs from the
# action's snake_case.
METHODS = {
    "s3:GetObject": ["get_object", "head_object"],
    "s3:ListBucket": ["list_objects_v2"],
    "s3:PutObject": ["put_object", "create_multipart_upload", "upload_part", "complete_multipart_upload"],
    "sqs:SendMessage": ["send_message", "send_message_batch"],
    "sqs:DeleteMessage": ["delete_message", "delete_message_batch"],
    "sqs:ChangeMessageVisibility": ["change_message_visibility", "change_message_visibility_batch"],
}
FEATURES = {
    "sqs:ReceiveMessage": LAMBDA_ESM,
    "sqs:DeleteMessage": LAMBDA_ESM,
    "sqs:GetQueueAttributes": LAMBDA_ESM,
    "sqs:SendMessage": ASYNC_DLQ,
}


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def resolve(value, local):
    """The action strings an HCL value holds, following local.X references."""
    if isinstance(value, list):
        return set().union(*(resolve(v, local) for v in value)) if value else set()
    if not isinstance(value, str):
        return set()
    found = set(re.findall(r"['\"]?([a-z0-9]+:[A-Za-z*]+)['\"]?", value.replace("${", " ")))
    for ref in re.findall(r"local\.([a-z_]+)", value):
        found |= resolve(local[ref], local)
    return {a for a in found if re.fullmatch(r"(s3|sqs|dynamodb|sts|logs|ecr|kms):[A-Za-z*]+", a)}


def main():
    local = {}
    for tf in ("iam.tf", "container_worker.tf"):
        for block in hcl2.load(open(MODULE / tf)).get("locals", []):
            local.update({k: v for k, v in block.items() if not k.startswith("__")})
    permissions = local["permissions"][0] if isinstance(local["permissions"], list) else local["permissions"]
    granted = {fn: set().union(*(resolve(p["actions"], local) for p in stmts)) for fn, stmts in permissions.items()}
    # The container worker: the worker's statements (less its queue) plus its own queue's.
    granted["container_worker"] = granted["worker"] | resolve(local["container_worker_permissions"], local)

    code = "\n".join(p.read_text() for p in (ROOT / "shared/aws/src").glob("*.rs"))
    calls = lambda m: re.search(r"\.\s*" + m + r"\(\)", code) is not None  # noqa: E731

    problems = []
    for fn, expected in sorted(EXPECTED.items()):
        got = granted.get(fn)
        if got is None:
            problems.append(f"{fn}: no permissions found in the Terraform module")
            continue
        for a in sorted(got):
            if "*" in a:
                problems.append(f"{fn}: wildcard action {a}")
        for a in sorted(got - expected):
            problems.append(f"{fn}: grants {a}, which it does not use (remove it, or add it to EXPECTED with its reason)")
        for a in sorted(expected - got):
            problems.append(f"{fn}: lacks {a}, which it needs")
        for a in sorted(expected):
            methods = METHODS.get(a, [snake(a.split(":")[1])])
            if not any(calls(m) for m in methods) and a not in FEATURES:
                problems.append(f"{fn}: {a} is expected but no code calls {' or '.join(methods)} and no Lambda feature needs it")
        print(f"check_iam: {fn}: {len(got)} actions: {', '.join(sorted(got))}")
    if problems:
        print("check_iam: FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)
    print("check_iam: every function's policy lists exactly the actions its code and Lambda wiring need")


if __name__ == "__main__":
    main()
