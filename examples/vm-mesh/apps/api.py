#!/usr/bin/env python3
"""The demo's api: answers JSON naming the caller, as its sidecar saw it
(the URI of X-Forwarded-Client-Cert, set by weft-proxy from the caller's
certificate). usage: api.py PORT"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def answer(self):
        if self.path == "/health":
            body = b"ok\n"
        else:
            xfcc = self.headers.get("X-Forwarded-Client-Cert", "")
            caller = [p[4:] for p in xfcc.split(";") if p.startswith("URI=")]
            body = (json.dumps({"service": "api", "method": self.command, "path": self.path,
                                "caller": caller[0] if caller else None}) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_DELETE = do_POST = do_PUT = answer

    def log_message(self, fmt, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
