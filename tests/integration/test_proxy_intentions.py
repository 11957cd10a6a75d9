"""weft-proxy --config: intentions enforced on the inbound, with real
processes and certificates from lib/ca (tests/tools/ca-tool).

L4 (Protocol tcp): an allowed caller (web, through an outbound listener
built from its own snapshot) reaches the app; a denied caller (db) is
closed right after the handshake and the app never sees a connection.
L7 (Protocol http): GET /v1/x passes, DELETE /v1/x gets the proxy's 403
with X-Weft-Denied-By naming the intention, and the app never sees it
(also after a pipelined allowed request, whose response comes first); a
caller no intention matches gets the default action. --check validates. A reload (SIGHUP, or
a changed file with --reload-interval) flips allow to deny for new
connections without a restart; a bad snapshot is refused with one log
line naming the field and the old policy holds. Every denial is one log
line with source, destination, intention and reason."""
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILDDIR, free_port  # noqa: E402
from test_proxy_mtls import CA_TOOL, EchoApp, Proxy  # noqa: E402

TD = "weft-test.example"


def spiffe(svc):
    return "spiffe://%s/ns/default/dc/dc1/svc/%s" % (TD, svc)


class App(http.server.BaseHTTPRequestHandler):
    """Records "METHOD path" and answers 200 "app"."""
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def answer(self):
        App.seen.append("%s %s" % (self.command, self.path))
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"app")

    do_GET = do_DELETE = do_POST = answer


class IntentionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="weft-ixn-")
        subprocess.run([CA_TOOL, cls.tmp], check=True, capture_output=True, timeout=30)
        for leaf, chain, out in [("api-old", "api-old-chain", "api.crt"),
                                 ("client", "client-chain", "web.crt"),
                                 ("inter-leaf", "inter-leaf-chain", "db.crt")]:
            with open(cls.f(out), "w") as o:
                o.write(cls.read(leaf + ".pem") + cls.read(chain + ".pem"))
        cls.app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
        threading.Thread(target=cls.app.serve_forever, daemon=True).start()
        cls.echo = EchoApp()
        cls.echo.start()

    @classmethod
    def tearDownClass(cls):
        cls.app.shutdown()
        cls.app.server_close()
        cls.echo.stop = True
        cls.echo.join(5)
        cls.echo.sock.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def f(cls, name):
        return os.path.join(cls.tmp, name)

    @classmethod
    def read(cls, name):
        with open(cls.f(name)) as f:
            return f.read()

    def setUp(self):
        self.procs = []
        App.seen.clear()

    def tearDown(self):
        for p in self.procs:
            self.assertEqual(p.stop(), 0, "weft-proxy exit status, log:\n" + p.text())

    # ---- snapshots and processes ----

    def snapshot(self, svc, cert, key, index, protocol="tcp", default="deny", items=(),
                 port=0, app_port=0, upstreams=()):
        return {
            "Version": 1, "Index": index,
            "Proxy": {"Service": svc, "SpiffeID": spiffe(svc), "Mesh": "default", "Zone": "dc1"},
            "Inbound": {"BindAddress": "127.0.0.1", "BindPort": port or free_port(),
                        "AppAddress": "127.0.0.1", "AppPort": app_port or 1,
                        "Protocol": protocol},
            "Upstreams": list(upstreams),
            "Intentions": {"DefaultAction": default, "Items": list(items)},
            "TLS": {"Certificate": {"File": self.f(cert)}, "PrivateKey": {"File": self.f(key)},
                    "TrustBundle": {"File": self.f("old-root.pem")}},
            "Admin": {"BindPort": 0},
        }

    def write(self, path, snap):
        tmp = path + ".tmp"
        with open(tmp, "w") as o:
            o.write(snap if isinstance(snap, str) else json.dumps(snap))
        os.replace(tmp, path)

    def api_proxy(self, extra=(), **kw):
        """The inbound of service api; returns (proxy, port, snapshot path, snapshot)."""
        snap = self.snapshot("api", "api.crt", "api-old.key", **kw)
        path = self.f("api-%d.json" % snap["Inbound"]["BindPort"])
        self.write(path, snap)
        p = Proxy(self.tmp, "api-%d" % snap["Inbound"]["BindPort"],
                  ["--config", path] + list(extra))
        self.procs.append(p)
        p.wait_for(r"listening: listener=inbound")
        return p, snap["Inbound"]["BindPort"], path, snap

    def web_outbound(self, in_port, protocol="tcp"):
        """web's sidecar, from its own snapshot: an outbound to api at in_port."""
        out_port = free_port()
        up = {"Name": "api", "Service": "api", "BindAddress": "127.0.0.1", "BindPort": out_port,
              "Protocol": protocol,
              "Endpoints": [{"Address": "127.0.0.1", "Port": in_port, "SpiffeID": spiffe("api")}]}
        snap = self.snapshot("web", "web.crt", "client.key", 1, upstreams=[up])
        path = self.f("web-%d.json" % out_port)
        self.write(path, snap)
        p = Proxy(self.tmp, "web-%d" % out_port, ["--config", path])
        self.procs.append(p)
        p.wait_for(r"listening: listener=outbound:api")
        return out_port

    def tls(self, port, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(self.f("old-root.pem"))
        ctx.load_cert_chain(self.f(cert), self.f(key))
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        return ctx.wrap_socket(raw)

    def closed_after_handshake(self, port, cert, key):
        """True when the proxy closes the connection without a byte."""
        s = self.tls(port, cert, key)
        try:
            s.sendall(b"hello")
            return s.recv(100) == b""
        except (ssl.SSLError, OSError):
            return True
        finally:
            s.close()

    def echo_call(self, port):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            s.sendall(b"ping")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                b = s.recv(100)
                if not b:
                    return data
                data += b
        except OSError:
            return data
        finally:
            s.close()

    def http(self, port, cert, key, method, path):
        """One request on a new mTLS connection: (status, headers, body,
        closed after)."""
        s = self.tls(port, cert, key)
        try:
            s.sendall(("%s %s HTTP/1.1\r\nHost: api\r\n\r\n" % (method, path)).encode())
            f = s.makefile("rb")
            status = int(f.readline().split()[1])
            headers = {}
            while True:
                h = f.readline()
                if h in (b"\r\n", b""):
                    break
                k, v = h.decode().split(":", 1)
                headers[k.strip().lower()] = v.strip()
            body = f.read(int(headers.get("content-length", "0")))
            if headers.get("connection", "").lower() == "close":
                closed = f.read(1) == b""
            else:
                closed = False
            return status, headers, body, closed
        finally:
            s.close()

    def denials(self, p, src, intention, reason, layer):
        return p.lines(r'denied: source="%s" destination="api" intention="%s" reason="%s" layer=%d'
                       % (re.escape(spiffe(src)), re.escape(intention), reason, layer))

    # ---- tests ----

    def test_l4_allow_deny_and_default(self):
        allow_web = {"ID": "ixn-web-api", "SourceName": "web", "DestinationName": "api",
                     "Action": "allow"}
        admin_port = free_port()
        p, port, _, _ = self.api_proxy(["--admin", "127.0.0.1:%d" % admin_port], index=1,
                                       items=[allow_web], app_port=self.echo.port)
        out_port = self.web_outbound(port)
        before = self.echo.accepted
        self.assertEqual(self.echo_call(out_port), b"PING")
        self.assertEqual(self.echo.accepted, before + 1)
        # db matches no intention: the default (deny) closes it after the handshake
        self.assertTrue(self.closed_after_handshake(port, "db.crt", "inter-leaf.key"))
        p.wait_for(r'denied: source=')
        self.assertEqual(len(self.denials(p, "db", "default", "default", 4)), 1, p.text())
        self.assertEqual(len(p.lines(r"denied: ")), 1)
        time.sleep(0.2)
        self.assertEqual(self.echo.accepted, before + 1, "the app saw the denied caller")
        # The admin /stats counts the denial too (the mesh default decided: no intention).
        with urllib.request.urlopen("http://127.0.0.1:%d/stats" % admin_port, timeout=5) as r:
            stats = r.read().decode()
        rows = [l for l in stats.splitlines()
                if l.startswith("weft_proxy_intention_denials_total{") and "/svc/db" in l]
        self.assertEqual(len(rows), 1, stats)
        self.assertIn('destination="api"', rows[0])
        self.assertIn('intention=""', rows[0])
        self.assertTrue(rows[0].endswith(" 1"), rows[0])

        # default allow: a caller no intention matches gets through; an
        # intention without an ID is named by its pair
        deny_web = {"SourceName": "web", "DestinationName": "api", "Action": "deny"}
        p2, port2, _, _ = self.api_proxy(index=1, default="allow", items=[deny_web],
                                         app_port=self.echo.port)
        before = self.echo.accepted
        s = self.tls(port2, "db.crt", "inter-leaf.key")
        deadline = time.monotonic() + 5
        while self.echo.accepted == before and time.monotonic() < deadline:
            time.sleep(0.05)
        s.close()
        self.assertEqual(self.echo.accepted, before + 1, "default allow: db did not get through")
        self.assertTrue(self.closed_after_handshake(port2, "web.crt", "client.key"))
        p2.wait_for(r"denied: ")
        self.assertEqual(len(self.denials(p2, "web", "default/web > default/api", "action", 4)),
                         1, p2.text())

    def test_l7_allow_get_deny_delete(self):
        l7 = {"ID": "ixn-web-api-l7", "SourceName": "web", "DestinationName": "api",
              "Permissions": [
                  {"Action": "allow", "HTTP": {"PathPrefix": "/v1/", "Methods": ["GET"]}},
                  {"Action": "deny", "HTTP": {"PathPrefix": "/"}}]}
        p, port, _, _ = self.api_proxy(index=1, protocol="http", items=[l7],
                                       app_port=self.app.server_address[1])
        status, headers, body, _ = self.http(port, "web.crt", "client.key", "GET", "/v1/x")
        self.assertEqual((status, body), (200, b"app"))
        self.assertNotIn("x-weft-denied-by", headers)
        status, headers, body, closed = self.http(port, "web.crt", "client.key", "DELETE", "/v1/x")
        self.assertEqual(status, 403)
        self.assertEqual(headers.get("x-weft-denied-by"), "ixn-web-api-l7")
        self.assertEqual(body, b"denied by weft-proxy: ixn-web-api-l7\n")
        self.assertTrue(closed, "the connection stays open after the proxy's 403")
        # nothing matches db: the default action (deny) decides
        status, headers, _, _ = self.http(port, "db.crt", "inter-leaf.key", "GET", "/v1/x")
        self.assertEqual((status, headers.get("x-weft-denied-by")), (403, "default"))
        # pipelined: the allowed request's response first, then the 403
        s = self.tls(port, "web.crt", "client.key")
        s.sendall(b"GET /v1/a HTTP/1.1\r\nHost: api\r\n\r\n"
                  b"DELETE /v1/a HTTP/1.1\r\nHost: api\r\n\r\n"
                  b"GET /v1/b HTTP/1.1\r\nHost: api\r\n\r\n")
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        s.close()
        self.assertRegex(got, rb"^HTTP/1.1 200 OK\r\n.*\r\n\r\napp"
                              rb"HTTP/1.1 403 Forbidden\r\n.*X-Weft-Denied-By: ixn-web-api-l7\r\n"
                              rb".*\r\n\r\ndenied by weft-proxy: ixn-web-api-l7\n$"
                         .replace(rb".*", rb"(?s:.*?)"))
        self.assertEqual(App.seen, ["GET /v1/x", "GET /v1/a"])
        p.wait_for(r"denied: ", count=3)
        line = self.denials(p, "web", "ixn-web-api-l7", "permission", 7)
        self.assertEqual(len(line), 2, p.text())
        self.assertIn('method=DELETE path="/v1/x"', line[0])
        self.assertIn('method=DELETE path="/v1/a"', line[1])
        self.assertEqual(len(self.denials(p, "db", "default", "default", 7)), 1)
        self.assertEqual(len(p.lines(r"denied: ")), 3)

    def test_reload_flips_allow_to_deny_and_refuses_a_bad_snapshot(self):
        allow = {"ID": "ixn-1", "SourceName": "web", "DestinationName": "api", "Action": "allow"}
        deny = dict(allow, Action="deny")
        p, port, path, snap = self.api_proxy(index=1, items=[allow], app_port=self.echo.port)
        out_port = self.web_outbound(port)
        self.assertEqual(self.echo_call(out_port), b"PING")
        snap["Index"] = 2
        snap["Intentions"]["Items"] = [deny]
        self.write(path, snap)
        p.proc.send_signal(signal.SIGHUP)
        p.wait_for(r"config reloaded: file=.* index=2")
        before = self.echo.accepted
        self.assertEqual(self.echo_call(out_port), b"")
        p.wait_for(r'denied: source="%s" destination="api" intention="ixn-1" reason="action"'
                   % re.escape(spiffe("web")))
        # a bad snapshot that would allow web again: refused, deny still holds
        bad = json.loads(json.dumps(snap))
        bad["Index"] = 3
        bad["Intentions"]["Items"] = [dict(allow, Action="permit")]
        self.write(path, bad)
        p.proc.send_signal(signal.SIGHUP)
        line = p.wait_for(r"config reload refused")
        self.assertRegex(line[0], r'error="Intentions\.Items\[0\]\.Action: .*".*previous snapshot '
                                  r'stays in force')
        self.assertEqual(self.echo_call(out_port), b"")
        p.wait_for(r'denied: source=.* intention="ixn-1"', count=2)
        time.sleep(0.2)
        self.assertEqual(self.echo.accepted, before, "the app saw a denied caller")
        self.assertEqual(p.lines(r"listeners changed"), [])
        # a listener change is reported: it needs a restart
        snap["Index"] = 4
        snap["Inbound"]["AppPort"] = self.app.server_address[1]
        self.write(path, snap)
        p.proc.send_signal(signal.SIGHUP)
        p.wait_for(r"config reloaded: file=.* index=4")
        p.wait_for(r"Inbound or Upstreams listeners changed: they take effect on restart")

    def test_check_mode(self):
        snap = self.snapshot("api", "api.crt", "api-old.key", 1)
        path = self.f("check.json")
        self.write(path, snap)
        bin_ = os.path.join(BUILDDIR, "dataplane", "weft-proxy")
        r = subprocess.run([bin_, "--config", path, "--check"], capture_output=True, timeout=10)
        self.assertEqual((r.returncode, r.stdout.decode()), (0, path + ": ok\n"))
        snap["Inbound"]["BindPort"] = 70000
        self.write(path, snap)
        r = subprocess.run([bin_, "--config", path, "--check"], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr.decode(), r"^%s: Inbound\.BindPort: .*70000" % re.escape(path))

    def test_reload_on_file_change(self):
        allow = {"ID": "ixn-1", "SourceName": "web", "DestinationName": "api", "Action": "allow"}
        p, port, path, snap = self.api_proxy(index=1, items=[allow], app_port=self.echo.port,
                                             extra=["--reload-interval", "1"])
        out_port = self.web_outbound(port)
        self.assertEqual(self.echo_call(out_port), b"PING")
        snap["Index"] = 2
        snap["Intentions"]["DefaultAction"] = "deny"
        snap["Intentions"]["Items"] = []
        self.write(path, snap)
        p.wait_for(r"config reloaded: file=.* index=2", timeout=10)
        before = self.echo.accepted
        self.assertEqual(self.echo_call(out_port), b"")
        p.wait_for(r'denied: source="%s" destination="api" intention="default"'
                   % re.escape(spiffe("web")))
        time.sleep(0.2)
        self.assertEqual(self.echo.accepted, before)


if __name__ == "__main__":
    unittest.main()
