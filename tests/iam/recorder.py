"""A recording proxy in front of moto, for the IAM check (check.py, docs/least-privilege.md).

Forwards every request to moto unchanged and returns moto's answer unchanged; for each request
signed by one of sumu's roles (an access key id `sumu-role-…`: sumu-local signs each component's
calls with its role's name) it appends one JSON line to the call log: the caller, the call and
what IAM would authorize it as (calls.py). sumu-local appends the management-API calls it answers
to the same file, in the same shape.

    python tests/iam/recorder.py --upstream http://127.0.0.1:5000 --log calls.jsonl --port-file F

listens on 127.0.0.1 at a free port, writes that port to F once it listens, and runs until killed.
"""

import argparse
import http.client
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import calls  # noqa: E402

ROLE_PREFIX = "sumu-role-"
# The Host header is kept: moto builds queue URLs from it.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class CallLog:
    """Appends one line per write to a file opened for appending (sumu-local appends too)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lock = threading.Lock()

    def record(self, caller, call, needs):
        line = json.dumps({"caller": caller, "call": call, "needs": needs}, separators=(",", ":")) + "\n"
        with self.lock:
            os.write(self.fd, line.encode())


def handler_class(upstream, log):
    target = urllib.parse.urlsplit(upstream)
    local = threading.local()

    def connection():
        if getattr(local, "connection", None) is None:
            local.connection = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        return local.connection

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs expect
        # The answer goes out as two writes (headers, then body): with Nagle's algorithm the body
        # waits for the client's delayed ACK of the headers, about 40 ms per call on Linux.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def handle(self):
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):
                pass  # a client gave up on an answer (a long poll at shutdown): nothing to forward

        def read_body(self):
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("content-length") or 0))

        def forward(self):
            body = self.read_body()
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.record(headers, body)
            outgoing = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
            outgoing["Content-Length"] = str(len(body))
            for attempt in range(2):
                try:
                    upstream_connection = connection()
                    upstream_connection.request(self.command, self.path, body=body, headers=outgoing)
                    answer = upstream_connection.getresponse()
                    payload = answer.read()
                    break
                except (http.client.HTTPException, OSError):
                    # A kept-alive connection moto closed meanwhile: one fresh attempt.
                    local.connection = None
                    if attempt == 1:
                        self.send_error(502, "moto did not answer")
                        return
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def record(self, headers, body):
            signed = calls.signer(headers.get("authorization"))
            if signed is None or not signed[0].startswith(ROLE_PREFIX):
                return
            try:
                described = calls.describe(headers, self.path, body)
            except (ValueError, KeyError, TypeError) as error:
                described = (f"unreadable request: {error}", [{"action": "unknown", "resource": "unknown"}])
            if described is not None:
                call, needs = described
                log.record(signed[0], f"{signed[2]}:{call}", needs)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = forward

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # A storm of clients opens many connections at once; the default backlog of 5 drops SYNs,
    # which the kernel retries after 1 s, 3 s, 7 s...
    request_queue_size = 128


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    server = Server(("127.0.0.1", 0), handler_class(args.upstream, CallLog(args.log)))
    with open(args.port_file + ".tmp", "w") as port_file:
        port_file.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
