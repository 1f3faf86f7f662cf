"""A fault-injecting HTTP/1.1 reverse proxy for the retry tests.

Our pipeline talks to S3, SQS and DynamoDB through the Rust AWS SDK, and reads rasters
through GDAL's /vsis3/ (libcurl). In the integration tests they talk to a moto server
(scripts/moto_server.py), which never fails. This proxy sits between the two and fails a
chosen share of requests in the ways real AWS and real networks do, so the tests can show
that retries work and that whatever is retried is safe to do twice. Standard library
only, so any python3 runs it (the .venv-moto interpreter included).

Usage:
    python3 scripts/fault_proxy.py --upstream http://127.0.0.1:5077 --port 0 \\
        --rate 0.05 --seed 7 [--kinds 500,503,timeout,drop,truncate] [--hold-s 3] \\
        [--target SUBSTRING --target-rate 1.0 [--target-kinds 500,503]] \\
        [--log FILE] [--port-file FILE] [--host 127.0.0.1]

Flags:
    --upstream URL      the server requests are forwarded to (http only)
    --host ADDR         address to listen on (default 127.0.0.1)
    --port N            port to listen on; 0 picks a free one. The first line on stdout is
                        `listening HOST:PORT`
    --port-file FILE    also write the port there (atomically: temp file, then rename),
                        so a test can wait for the file instead of reading stdout
    --rate P            probability that a request is faulted (default 0)
    --seed N            seed of the random.Random that draws the faults (default 0); one
                        draw per request, so a given order of requests gives the same
                        faults (concurrent requests have no fixed order, of course)
    --kinds LIST        fault kinds drawn from, uniformly (default all five, below)
    --hold-s S          how long `timeout` holds a connection silent (default 3)
    --target SUBSTRING  requests whose path (with query) contains it are faulted at
    --target-rate P       --target-rate instead of --rate (default 1.0),
    --target-kinds LIST   with kinds from --target-kinds (default --kinds). The X-Amz-Target
                          header is matched too, since every DynamoDB and SQS (JSON
                          protocol) request has the path "/": --target PutItem works.
    --log FILE          one JSON line per fault, appended (default stderr):
                        {"fault": kind, "method": ..., "path": ..., "target": bool,
                         "operation": X-Amz-Target if any, "time": unix seconds}

Fault kinds:
    before forwarding: the upstream never sees the request, so a retry is always safe
        500       500 InternalError (AWS XML error body; for JSON-protocol requests, those
                  with an X-Amz-Target header (DynamoDB, SQS), a JSON InternalServerError)
        503       503 SlowDown (XML); JSON requests get 503 with a ThrottlingException
                  body, which the SDKs retry both for the status and for the code
        timeout   the request is read, then nothing is sent for --hold-s seconds and the
                  connection is closed: the client's own timeout should fire first
    after forwarding: the request took effect upstream, the client cannot tell, so what
    it retries must be idempotent (or conditional, like the ledger's writes)
        drop      the upstream's response is read, then the client connection is closed
                  with nothing sent (curl: "Empty reply from server", error 52)
        truncate  status line and headers are sent with the full Content-Length but only
                  the first half of the body, then the connection is closed (curl: error
                  18). A response with no body (HEAD, an empty PUT reply) cannot be cut
                  that way, so only the first half of its status line is sent (cutting
                  inside the headers would not do: Python's http.client takes EOF there
                  for the end of the headers and returns a response missing some).
    Every fault that ends a connection shuts the socket down, so the client notices at
    once rather than waiting on a half-open connection.

Everything else is forwarded faithfully: method, path and query, every header as sent
(Host included: SigV4 signs it; the upstream is reached by address anyway) and the body
byte for byte, chunked or aws-chunked included. The upstream's response is read in full
and sent on with a Content-Length. Client connections are kept alive as HTTP/1.1 asks;
`Expect: 100-continue` is answered with `100 Continue`. Each forwarded request uses a new
upstream connection, so a stale upstream connection can never make the proxy itself
retry a request.

Control endpoints (not forwarded, never faulted, not counted):
    GET  /__fault_proxy__/stats
         {"requests": n, "faults": {kind: n}, "by_path_faults": n, "rate": p, ...}
         by_path_faults counts the faults given to --target requests.
    POST /__fault_proxy__/rate?value=0.0[&target=0.0]
         sets --rate (and --target-rate when `target` is given) at run time, so a test
         can set up its fixtures with faults off, then turn them on.

How tests use it: start moto, start this proxy with --upstream pointing at it, --port 0
and --port-file, wait for the file, point the SDK clients (endpoint URL) and GDAL
(AWS_S3_ENDPOINT=127.0.0.1:PORT AWS_HTTPS=NO AWS_VIRTUAL_HOSTING=FALSE) at the proxy,
run the pipeline, then read the stats to check faults were really injected and assert
that the outcome is the same as without them. SIGTERM or SIGINT stops it cleanly.
"""

import argparse
import http.client
import http.server
import json
import os
import random
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
import uuid

KINDS = ("500", "503", "timeout", "drop", "truncate")
CONTROL = "/__fault_proxy__/"

# Response headers that describe the upstream connection, not the response: the body is
# re-sent with its own Content-Length on a connection managed here.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}

XML_500 = b"<Error><Code>InternalError</Code><Message>injected fault</Message></Error>"
XML_503 = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
JSON_500 = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected fault"}'
JSON_503 = b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}'


class State:
    """What every handler thread shares: settings, the random source and the counts."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)
        self.rate = args.rate
        self.target_rate = args.target_rate
        self.requests = 0
        self.forwarded = 0
        self.faults = {k: 0 for k in dict.fromkeys(args.kinds + args.target_kinds)}
        self.target_faults = 0
        self.log = open(args.log, "a", buffering=1) if args.log else sys.stderr

    def draw(self, path, operation):
        """Count a request and decide its fault (None for none)."""
        with self.lock:
            self.requests += 1
            target = bool(self.args.target) and (self.args.target in path or self.args.target in operation)
            rate, kinds = (self.target_rate, self.args.target_kinds) if target else (self.rate, self.args.kinds)
            # Always one draw per request, so the fault sequence depends only on request order.
            kind = self.rng.choice(kinds) if self.rng.random() < rate else None
            if kind:
                self.faults[kind] += 1
                self.target_faults += target
            return kind, target

    def log_fault(self, kind, method, path, operation, target):
        entry = {"fault": kind, "method": method, "path": path, "target": target}
        if operation:
            entry["operation"] = operation
        entry["time"] = round(time.time(), 3)
        line = json.dumps(entry)
        with self.lock:
            self.log.write(line + "\n")
            self.log.flush()

    def stats(self):
        with self.lock:
            return {"requests": self.requests, "forwarded": self.forwarded,
                    "faults": dict(self.faults), "by_path_faults": self.target_faults,
                    "rate": self.rate, "target_rate": self.target_rate}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and `100 Continue` for Expect
    timeout = 300  # an idle client connection is closed after this long
    state: State  # set on the subclass made in main()

    def log_message(self, format, *args):  # quiet: one line per fault is the log
        pass

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, TimeoutError, socket.timeout):
            pass  # the client went away; nothing to answer

    def handle_one_request(self):
        # BaseHTTPRequestHandler's, with one entry point for every method instead of do_X.
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():  # answers `100 Continue` when asked to
                return
            self.serve()
        except TimeoutError:
            self.close_connection = True
        except ValueError:  # a bad Content-Length or chunk size: the stream is lost
            self.close_connection = True
            self.send_error(400, "malformed request body framing")

    # -- reading the request ------------------------------------------------------------

    def read_body(self):
        """The request body exactly as sent, framing included, to forward byte for byte."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raw = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("request body ended early")
                raw += line
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        line = self.rfile.readline(65537)
                        if not line:
                            raise ConnectionError("request body ended early")
                        raw += line
                        if line in (b"\r\n", b"\n"):
                            return bytes(raw)
                data = self.rfile.read(size + 2)  # chunk and its CRLF
                if len(data) < size + 2:
                    raise ConnectionError("request body ended early")
                raw += data
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise ConnectionError("request body ended early")
        return body

    # -- answering ----------------------------------------------------------------------

    def serve(self):
        body = self.read_body()  # always, so a kept-alive connection stays in step
        if self.path.startswith(CONTROL):
            return self.control()
        state = self.state
        # JSON-protocol requests all go to "/"; their operation is in X-Amz-Target.
        operation = self.headers.get("X-Amz-Target", "")
        kind, target = state.draw(self.path, operation)
        if kind:
            state.log_fault(kind, self.command, self.path, operation, target)
        if kind in ("500", "503"):
            return self.injected_error(kind)
        if kind == "timeout":
            time.sleep(state.args.hold_s)
            return self.hard_close()
        response = self.forward(body)
        if response is None:
            return  # upstream unreachable: 502 already sent
        status, reason, headers, payload = response
        if kind == "drop":
            return self.hard_close()
        raw = self.encode(status, reason, headers, payload)
        if kind == "truncate":
            if payload:
                cut = len(raw) - len(payload) + len(payload) // 2
            else:
                # No body to cut. A cut header block can pass for a whole one (Python's
                # http.client takes EOF as its end), so cut the status line instead.
                cut = raw.index(b"\r\n") // 2
            self.wfile.write(raw[:cut])
            return self.hard_close()
        self.wfile.write(raw)

    def forward(self, body):
        """Send the request upstream on a new connection; the whole response, or None."""
        args = self.state.args
        conn = http.client.HTTPConnection(args.upstream_host, args.upstream_port, timeout=120)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                conn.putheader(name, value)
            conn.endheaders(body or None)
            resp = conn.getresponse()  # skips the upstream's own `100 Continue`
            payload = resp.read()  # de-chunks; knows HEAD, 204 and 304 have no body
            headers = [(k, v) for k, v in resp.getheaders()]
            status, reason = resp.status, resp.reason
        except (OSError, http.client.HTTPException) as exc:
            print(f"fault_proxy: upstream {self.command} {self.path}: {exc!r}", file=sys.stderr, flush=True)
            msg = f"fault_proxy: upstream unreachable: {exc!r}".encode()
            self.wfile.write(self.encode(502, "Bad Gateway", [("Content-Type", "text/plain")], msg))
            return None
        finally:
            conn.close()
        with self.state.lock:
            self.state.forwarded += 1
        return status, reason, headers, payload

    def encode(self, status, reason, headers, payload):
        """Status line, headers and body, framed for this client connection."""
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        lines = [f"HTTP/1.1 {status} {reason}"]
        for name, value in headers:
            lname = name.lower()
            if lname in HOP_BY_HOP:
                continue
            if lname == "content-length" and not no_body:
                continue  # replaced below by the length actually sent
            lines.append(f"{name}: {value}")
        if not no_body:
            lines.append(f"Content-Length: {len(payload)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if no_body else head + payload

    def injected_error(self, kind):
        if "X-Amz-Target" in self.headers:  # JSON protocol (DynamoDB, SQS)
            body, ctype = (JSON_500 if kind == "500" else JSON_503), "application/x-amz-json-1.0"
            rid_header = "x-amzn-RequestId"
        else:
            body, ctype = (XML_500 if kind == "500" else XML_503), "application/xml"
            rid_header = "x-amz-request-id"
        status, reason = (500, "Internal Server Error") if kind == "500" else (503, "Service Unavailable")
        headers = [("Content-Type", ctype), (rid_header, str(uuid.uuid4())), ("Content-Length", str(len(body)))]
        self.wfile.write(self.encode(status, reason, headers, body))

    def hard_close(self):
        """A real close: FIN now, so the client sees EOF instead of waiting."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def control(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        state = self.state
        status, result = 200, None
        if self.command == "GET" and url.path == CONTROL + "stats":
            result = state.stats()
        elif self.command == "POST" and url.path == CONTROL + "rate":
            try:
                rate = float(query["value"][0])
                target = float(query["target"][0]) if "target" in query else None
                if not 0 <= rate <= 1 or not (target is None or 0 <= target <= 1):
                    raise ValueError("rate outside [0, 1]")
            except (KeyError, ValueError) as exc:
                status, result = 400, {"error": f"bad rate: {exc}"}
            else:
                with state.lock:
                    state.rate = rate
                    if target is not None:
                        state.target_rate = target
                result = state.stats()
        else:
            status, result = 404, {"error": "unknown control endpoint"}
        body = json.dumps(result).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
        self.wfile.write(self.encode(status, reason, [("Content-Type", "application/json")], body))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a held `timeout` connection must not delay exit
    request_queue_size = 128  # clients open many connections at once

    def server_bind(self):
        # HTTPServer's looks up the host's FQDN, which can stall without DNS; not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def kinds_list(text):
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"kinds must be from {','.join(KINDS)}; got {text!r}")
    return kinds


def probability(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a rate is in [0, 1]; got {text}")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description="Fault-injecting HTTP/1.1 reverse proxy (see the module docstring).")
    p.add_argument("--upstream", required=True, help="http://HOST:PORT of the real server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--rate", type=probability, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", type=kinds_list, default=list(KINDS))
    p.add_argument("--hold-s", type=float, default=3.0)
    p.add_argument("--target")
    p.add_argument("--target-rate", type=probability, default=1.0)
    p.add_argument("--target-kinds", type=kinds_list)
    p.add_argument("--log")
    args = p.parse_args(argv)
    up = urllib.parse.urlsplit(args.upstream)
    if up.scheme != "http" or not up.hostname:
        p.error(f"--upstream must be http://HOST:PORT; got {args.upstream!r}")
    args.upstream_host, args.upstream_port = up.hostname, up.port or 80
    if args.target_kinds is None:
        args.target_kinds = args.kinds
    return args


def main(argv):
    args = parse_args(argv)

    def stop(signum, frame):
        raise SystemExit(0)

    # Before the port is announced, so a test that saw it can always stop us cleanly.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    handler = type("BoundHandler", (Handler,), {"state": State(args)})
    server = Server((args.host, args.port), handler)
    host, port = server.server_address[:2]
    print(f"listening {host}:{port}", flush=True)
    if args.port_file:
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)  # readers never see a half-written file
    try:
        server.serve_forever()
    except SystemExit:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
