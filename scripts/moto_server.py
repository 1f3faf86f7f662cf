"""moto_server with DynamoDB writes made atomic, as DynamoDB's are.

moto's threaded server evaluates a conditional write's condition and applies it without
a lock, so two concurrent conditional updates of one item can both succeed, which real
DynamoDB never allows. The ledger's exactly-once tests depend on that guarantee, so this
launcher serialises moto's DynamoDB write operations, then starts the normal server.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
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

if __name__ == "__main__":
    main(sys.argv[1:])
