#!/usr/bin/env python3
"""A recording webhook receiver for Relay's end-to-end tests.

Listens on --host:--port (http.server) and verifies every POST with the PyPI `standardwebhooks` package
against each secret in --secrets-file (one `whsec_…` per line, re-read on every request so a test can add
the rotated secret). Each request is appended to --record as one JSON line:
  {"path", "headers": {lower-case name: value}, "body": "...",
   "verified": {"<secret>": true|false, ...}, "status": <answered status>, "received_at": <unix time>}
--delay SECONDS waits that long before answering (after recording); --fail-first N answers 500 to the first N requests; --status CODE answers CODE to every request (e.g. 410).
Otherwise it answers 204. A 3xx answer carries Location: /elsewhere. Prints "READY" once listening.
"""
import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--secrets-file", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--status", type=int, default=204)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    lock = threading.Lock()
    counter = {"requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with open(args.secrets_file) as f:
                secrets = [line.strip() for line in f if line.strip()]
            verified = {}
            for secret in secrets:
                try:
                    Webhook(secret).verify(body, headers)
                    verified[secret] = True
                except Exception:
                    verified[secret] = False
            with lock:
                counter["requests"] += 1
                number = counter["requests"]
                status = 500 if number <= args.fail_first else args.status
                with open(args.record, "a") as f:
                    f.write(json.dumps({"path": self.path, "headers": headers, "body": body.decode("utf-8", "replace"),
                                        "verified": verified, "status": status, "received_at": time.time()}) + "\n")
            if args.delay:
                time.sleep(args.delay)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print("READY", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
