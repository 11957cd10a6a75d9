#!/usr/bin/env python3
"""The demo's web: every request is passed to api through web's sidecar
(its upstream listener), and api's answer, or the mesh's refusal, is
returned with what web saw. usage: web.py PORT UPSTREAM_PORT"""
import json
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = "http://127.0.0.1:%d" % int(sys.argv[2])


class Handler(BaseHTTPRequestHandler):
    def answer(self):
        if self.path == "/health":
            status, body = 200, b"ok\n"
        else:
            req = urllib.request.Request(UPSTREAM + self.path, method=self.command)
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    status, said = r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                status = e.code
                said = {"status": e.code, "denied_by": e.headers.get("X-Weft-Denied-By"),
                        "body": e.read().decode(errors="replace").strip()}
            except OSError as e:
                status, said = 502, {"error": str(e)}
            body = (json.dumps({"service": "web", "api_said": said}) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_DELETE = do_POST = answer

    def log_message(self, fmt, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
