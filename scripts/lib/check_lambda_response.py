"""Exits non-zero when a Lambda response (argv[1], JSON) is a function error or reports
failed SQS records; argv[2] names the caller in the message. Used by scripts/invoke.sh
and scripts/sam-invoke.sh."""

import json
import sys

who = sys.argv[2] if len(sys.argv) > 2 else "invoke"
body = json.loads(sys.argv[1]) if sys.argv[1].strip() else None
if isinstance(body, dict) and body.get("errorType"):
    sys.exit(f"{who}: the function failed: {body.get('errorType')}: {body.get('errorMessage')}")
if isinstance(body, dict) and body.get("batchItemFailures"):
    sys.exit(f"{who}: {len(body['batchItemFailures'])} record(s) reported as failed (see the log above)")
