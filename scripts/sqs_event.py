"""Prints a Lambda SQS event built from real messages waiting in a queue.

    .venv-moto/bin/python scripts/sqs_event.py QUEUE_URL [COUNT]

The messages are received and at once made visible again (a peek), so the queue is left as
it was; the event carries their real bodies, ids, receipt handles and attributes, shaped as
Lambda's SQS event source mapping delivers them. Used by `scripts/local-aws.sh event` and
the local deployment test. Endpoint and credentials from the environment
(STRATUS_AWS_ENDPOINT, AWS_*).
"""

import json
import os
import sys

import boto3


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    url, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 1
    sqs = boto3.client("sqs", endpoint_url=os.environ.get("STRATUS_AWS_ENDPOINT"))
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = []
    while len(messages) < count:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, count - len(messages)),
            AttributeNames=["All"],
            WaitTimeSeconds=1,
        ).get("Messages", [])
        if not got:
            break
        messages += got
    for m in messages:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    if len(messages) < count:
        sys.exit(f"sqs_event: only {len(messages)} of {count} messages waiting in {url}")
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": arn.split(":")[3],
        }
        for m in messages
    ]
    print(json.dumps({"Records": records}, indent=4))


if __name__ == "__main__":
    main()
