"""A local HTTP file server for read benchmarks, with the network of a cloud bucket
simulated: every request waits LATENCY_MS before it is answered, and all responses share
a bandwidth cap (token bucket). Serves byte ranges (single and multipart/byteranges) as
S3 and web servers do, so GDAL's /vsicurl/ reads only the blocks it needs.

Usage: http_latency.py ROOT PORT [--latency-ms 30] [--mb-per-s 200]
Binds 127.0.0.1 only. Prints 'ready' once listening; stops on SIGTERM. On exit prints
one JSON line: requests served, bytes sent.
"""

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PIECE = 256 * 1024


class Bucket:
    """Token bucket: `rate` bytes per second shared by every response."""

    def __init__(self, rate):
        self.rate = rate
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def take(self, n):
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + n / self.rate
            wait = self.next_free - now
        if wait > 0:
            time.sleep(wait)


def make_handler(root, latency, bucket, stats):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _path(self):
            rel = self.path.split("?", 1)[0].lstrip("/")
            full = os.path.realpath(os.path.join(root, rel))
            if not full.startswith(root + os.sep) or not os.path.isfile(full):
                return None
            return full

        def _send(self, data):
            for i in range(0, len(data), PIECE):
                piece = data[i : i + PIECE]
                bucket.take(len(piece))
                self.wfile.write(piece)
            with stats["lock"]:
                stats["bytes"] += len(data)

        def _send_file(self, f, start, n):
            # sendfile: the kernel copies page cache to socket, so the stand-in for a
            # bucket spends as little as it can of the cores the reader is measured on.
            self.wfile.flush()
            total = n
            while n > 0:
                piece = min(n, PIECE)
                bucket.take(piece)
                sent = os.sendfile(self.connection.fileno(), f.fileno(), start, piece)
                if sent == 0:
                    raise ConnectionError("client closed the connection")
                start, n = start + sent, n - sent
            with stats["lock"]:
                stats["bytes"] += total

        def do_HEAD(self):
            self._serve(head=True)

        def do_GET(self):
            self._serve(head=False)

        def _serve(self, head):
            time.sleep(latency)
            with stats["lock"]:
                stats["requests"] += 1
            path = self._path()
            if path is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = os.path.getsize(path)
            rng = self.headers.get("Range")
            ranges = []
            if rng:
                m = re.fullmatch(r"bytes=(.+)", rng.strip())
                for part in (m.group(1).split(",") if m else []):
                    a, _, b = part.strip().partition("-")
                    if a == "":
                        start, end = max(0, size - int(b)), size - 1
                    else:
                        start, end = int(a), min(size - 1, int(b) if b else size - 1)
                    if start <= end:
                        ranges.append((start, end))
                if not ranges:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            with open(path, "rb") as f:
                if not ranges:
                    self.send_response(200)
                    self.send_header("Content-Length", str(size))
                    self.send_header("Accept-Ranges", "bytes")
                    self.end_headers()
                    if not head:
                        self._send_file(f, 0, size)
                    return
                if len(ranges) == 1:
                    start, end = ranges[0]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                    self.send_header("Content-Length", str(end - start + 1))
                    self.send_header("Accept-Ranges", "bytes")
                    self.end_headers()
                    if not head:
                        self._send_file(f, start, end - start + 1)
                    return
                boundary = "stratusbench"
                body = b""
                for start, end in ranges:
                    f.seek(start)
                    body += (
                        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                        f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n"
                    ).encode() + f.read(end - start + 1) + b"\r\n"
                body += f"--{boundary}--\r\n".encode()
                self.send_response(206)
                self.send_header("Content-Type", f"multipart/byteranges; boundary={boundary}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self._send(body)

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("port", type=int)
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--mb-per-s", type=float, default=200.0)
    a = ap.parse_args()
    stats = {"lock": threading.Lock(), "requests": 0, "bytes": 0}
    handler = make_handler(os.path.realpath(a.root), a.latency_ms / 1000.0, Bucket(a.mb_per_s * 1e6), stats)
    # A bucket accepts every connection a client opens. Python's default listen backlog
    # (5) drops the SYNs of a burst of parallel range requests, and each dropped SYN costs
    # the client a 1 s retransmit: a stall no real object store adds.
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer(("127.0.0.1", a.port), handler)
    server.daemon_threads = True

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    server.serve_forever()
    print(json.dumps({"requests": stats["requests"], "bytes": stats["bytes"]}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
