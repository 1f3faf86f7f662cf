"""moto_server with two gaps closed where our tests depend on AWS's behaviour.

1. DynamoDB writes made atomic, as DynamoDB's are. moto's threaded server evaluates a
   conditional write's condition and applies it without a lock, so two concurrent
   conditional updates of one item can both succeed, which real DynamoDB never allows.
   The ledger's exactly-once tests depend on that guarantee.
2. SQS's RedriveAllowPolicy returned by GetQueueAttributes. moto stores it but never
   returns it, so Terraform's aws_sqs_queue_redrive_allow_policy waits forever for the
   attribute to appear, and its destroy waits forever for it to go (infra/examples/local
   is applied to and destroyed on this server in the tests).
3. Every client here uses path-style S3 addressing, so moto must not read a bucket name
   from the host name (containers reach it as host.containers.internal, "bucket host").

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT
"""

import functools
import os
import sys
import threading

os.environ.setdefault("S3_IGNORE_SUBDOMAIN_BUCKETNAME", "true")  # before moto reads its settings

from moto.dynamodb.models import DynamoDBBackend
from moto.sqs.models import Queue
from moto.server import main

_lock = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return wrapper


for _name in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item"):
    setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))

_attributes = Queue.attributes.fget


def _without_unset_redrive_allow_policy(queue):
    result = _attributes(queue)
    if not result.get("RedriveAllowPolicy"):  # never set, or removed by setting ""
        result.pop("RedriveAllowPolicy", None)
    return result


Queue.redrive_allow_policy = None  # a queue that never had one set
Queue.BASE_ATTRIBUTES = Queue.BASE_ATTRIBUTES + ["RedriveAllowPolicy"]
Queue.attributes = property(_without_unset_redrive_allow_policy)

if __name__ == "__main__":
    main(sys.argv[1:])
