"""weft-proxy's admin listener, stats and access log (docs/proxy-admin.md):
/ready, /stats (counts after real requests, checked by promtool), /config
(paths, no key material), /drain (in-flight request completes, new
connections refused, /ready 503, exit 0; and the deadline), 404/405,
JSON access log lines, and the admin bound to 127.0.0.1 only."""
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILDDIR, free_port  # noqa: E402
from proxyharness import ProxyProcess, PROXY_BIN, WRAPPER  # noqa: E402

CA_TOOL = os.path.join(BUILDDIR, "tests", "tools", "ca-tool")
PROMTOOL = "/usr/bin/promtool"
TD = "weft-test.example"


def spiffe(svc):
    return "spiffe://%s/ns/default/dc/dc1/svc/%s" % (TD, svc)


class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    started = threading.Event()

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/slow":
            App.started.set()
            time.sleep(1.0)
            self.answer(200, b"slow done")
        elif self.path == "/missing":
            self.answer(404, b"no")
        else:
            self.answer(200, b"hello")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer(201, body.upper())


def request(port, method, path, body=b"", timeout=10):
    """One request on a new connection: (status, headers dict, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                  % (method.encode(), path.encode(), len(body), body))
        return read_response(s.makefile("rb"))


def read_response(f):
    line = f.readline()
    if not line:
        return None, {}, b""
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, v = h.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return status, headers, f.read(int(headers.get("content-length", "0")))


class Proxy(ProxyProcess):
    def __init__(self, tmp, args, admin=True):
        self.tmp = tmp
        self.admin_port = free_port() if admin else None
        extra = ["--admin", "127.0.0.1:%d" % self.admin_port] if admin else []
        super().__init__(os.path.join(tmp, "proxy-%d.log" % free_port()), args + extra,
                         r"admin listening", log_level=None)

    def admin(self, method, path, body=b""):
        return request(self.admin_port, method, path, body)

    def stats(self):
        status, headers, body = self.admin("GET", "/stats")
        assert status == 200, status
        assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
        return body.decode()


def sample(text, name):
    """The value of the sample whose name and labels are exactly name."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no sample %s in:\n%s" % (name, text))


class AdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="weft-pxadmin-")
        cls.app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
        cls.app.daemon_threads = True
        threading.Thread(target=cls.app.serve_forever, daemon=True).start()
        cls.app_addr = "127.0.0.1:%d" % cls.app.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.app.shutdown()
        cls.app.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.procs = []
        App.started.clear()

    def tearDown(self):
        for p in self.procs:
            self.assertEqual(p.stop(), 0, "weft-proxy exit status, log:\n" + p.text())

    def plain(self, extra=()):
        port = free_port()
        p = Proxy(self.tmp, ["--listen", "127.0.0.1:%d" % port, "--upstream", self.app_addr]
                  + list(extra))
        self.procs.append(p)
        return p, port

    def test_ready_stats_and_access_log(self):
        log_path = os.path.join(self.tmp, "access.log")
        p, port = self.plain(["--access-log", log_path])
        self.assertEqual(p.admin("GET", "/ready")[:1], (200,))
        for _ in range(3):
            self.assertEqual(request(port, "GET", "/hello")[0], 200)
        self.assertEqual(request(port, "GET", "/missing")[0], 404)
        status, _, body = request(port, "POST", "/echo", b"abcde")
        self.assertEqual((status, body), (201, b"ABCDE"))
        text = p.stats()
        L = '{listener="listen"'
        self.assertEqual(sample(text, "weft_proxy_requests_total%s,code=\"2xx\"}" % L), 4)
        self.assertEqual(sample(text, "weft_proxy_requests_total%s,code=\"4xx\"}" % L), 1)
        self.assertEqual(sample(text, "weft_proxy_requests_total%s,code=\"5xx\"}" % L), 0)
        self.assertEqual(sample(text, "weft_proxy_connections_opened_total%s}" % L), 5)
        self.assertEqual(sample(text, "weft_proxy_request_duration_seconds_count%s}" % L), 5)
        self.assertEqual(sample(text, "weft_proxy_request_duration_seconds_bucket%s,le=\"+Inf\"}" % L), 5)
        self.assertGreater(sample(text, "weft_proxy_received_bytes_total%s}" % L), 5 * 40)
        self.assertGreater(sample(text, "weft_proxy_sent_bytes_total%s}" % L), 5 * 30)
        self.assertEqual(sample(text, "weft_proxy_access_log_dropped_total"), 0)
        self.assertEqual(sample(text, "weft_proxy_draining"), 0)
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        # the access log: one JSON line per request, flushed by a timer
        deadline = time.monotonic() + 5
        lines = []
        while time.monotonic() < deadline and len(lines) < 5:
            with open(log_path) as f:
                lines = f.read().splitlines()
            time.sleep(0.05)
        self.assertEqual(len(lines), 5, lines)
        recs = [json.loads(l) for l in lines]
        for r in recs:
            self.assertEqual(set(r), {"time", "listener", "source", "method", "path", "status",
                                      "bytes_in", "bytes_out", "duration_ms", "upstream"})
            self.assertRegex(r["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertEqual(r["source"], "127.0.0.1")
            self.assertEqual(r["upstream"], self.app_addr)
            self.assertGreaterEqual(r["duration_ms"], 0)
        # each worker flushes its own lines: across workers, not in request order
        self.assertEqual(sorted((r["method"], r["path"], r["status"]) for r in recs),
                         [("GET", "/hello", 200)] * 3 + [("GET", "/missing", 404),
                                                         ("POST", "/echo", 201)])
        post = [r for r in recs if r["method"] == "POST"][0]
        self.assertEqual((post["bytes_in"], post["bytes_out"]), (5, 5))
        self.assertEqual([r for r in recs if r["path"] == "/hello"][0]["bytes_out"], 5)

    def test_access_log_source_is_the_callers_identity(self):
        peer = spiffe("web")
        port = free_port()
        proc = subprocess.Popen(WRAPPER + [PROXY_BIN, "--listen", "127.0.0.1:%d" % port,
                                           "--upstream", self.app_addr, "--access-log", "-",
                                           "--peer-id", peer], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    self.assertEqual(request(port, "GET", "/hello")[0], 200)
                    break
                except ConnectionRefusedError:
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.05)
            rec = json.loads(proc.stdout.readline())
            self.assertEqual((rec["source"], rec["path"], rec["status"]), (peer, "/hello", 200))
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(10), 0)
            proc.stdout.close()

    def test_upstream_connect_failure(self):
        port = free_port()
        p = Proxy(self.tmp, ["--listen", "127.0.0.1:%d" % port,
                             "--upstream", "127.0.0.1:%d" % free_port(), "--access-log",
                             os.path.join(self.tmp, "down.log")])
        self.procs.append(p)
        self.assertEqual(request(port, "GET", "/x")[0], 502)
        text = p.stats()
        self.assertEqual(sample(text, 'weft_proxy_upstream_connect_failures_total{listener="listen"}'), 1)
        self.assertEqual(sample(text, 'weft_proxy_requests_total{listener="listen",code="5xx"}'), 1)
        deadline = time.monotonic() + 5   # the connection is freed right after its close
        while sample(p.stats(), 'weft_proxy_connections_active{listener="listen"}') != 0:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)

    def test_not_found_and_method_not_allowed(self):
        p, _ = self.plain()
        self.assertEqual(p.admin("GET", "/nope")[0], 404)
        self.assertEqual(p.admin("POST", "/stats")[0], 405)
        self.assertEqual(p.admin("DELETE", "/ready")[0], 405)
        status, headers, _ = p.admin("GET", "/drain")
        self.assertEqual((status, headers.get("allow")), (405, "POST"))
        self.assertEqual(p.admin("POST", "/drain", b"x" * 5000)[0], 413)
        # a request head over the admin's limit
        with socket.create_connection(("127.0.0.1", p.admin_port), timeout=10) as s:
            s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
            self.assertIn(read_response(s.makefile("rb"))[0], (400, 431))
        self.assertEqual(p.admin("GET", "/ready")[0], 200)  # still serving, still ready
        # HEAD: the status and length of GET, no body
        with socket.create_connection(("127.0.0.1", p.admin_port), timeout=10) as s:
            s.sendall(b"HEAD /ready HTTP/1.1\r\nHost: x\r\n\r\n")
            got = s.makefile("rb").read()
        self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got)
        self.assertIn(b"Content-Length: 6\r\n", got)
        self.assertTrue(got.endswith(b"\r\n\r\n"), got)

    def test_drain(self):
        p, port = self.plain(["--drain-timeout", "10000"])
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        idle.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        idle_f = idle.makefile("rb")
        self.assertEqual(read_response(idle_f)[0], 200)   # kept alive, now idle
        busy = socket.create_connection(("127.0.0.1", port), timeout=10)
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(App.started.wait(5))
        status, _, body = p.admin("POST", "/drain")
        self.assertEqual((status, body), (202, b"draining\n"))
        self.assertEqual(p.admin("GET", "/ready")[0], 503)
        self.assertEqual(sample(p.stats(), "weft_proxy_draining"), 1)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        self.assertEqual(idle_f.read(), b"")              # the idle one is closed
        status, headers, body = read_response(busy.makefile("rb"))
        self.assertEqual((status, body), (200, b"slow done"))
        self.assertEqual(headers.get("connection"), "close")
        self.assertEqual(p.proc.wait(10), 0)
        self.assertIn("drained: no connection left", p.text())
        idle.close()
        busy.close()

    def test_drain_finishes_pipelined_requests(self):
        p, port = self.plain()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(App.started.wait(5))
        self.assertEqual(p.admin("POST", "/drain")[0], 202)
        f = s.makefile("rb")
        status, headers, body = read_response(f)
        self.assertEqual((status, body), (200, b"slow done"))
        self.assertNotEqual(headers.get("connection"), "close")
        status, headers, body = read_response(f)
        self.assertEqual((status, body, headers.get("connection")), (200, b"hello", "close"))
        self.assertEqual(f.read(), b"")
        self.assertEqual(p.proc.wait(10), 0)
        s.close()

    def test_drain_deadline(self):
        p, port = self.plain(["--drain-timeout", "300"])
        stuck = socket.create_connection(("127.0.0.1", port), timeout=10)
        stuck.sendall(b"GET /hello HTTP/1.1\r\nHost")     # a head that never ends
        time.sleep(0.1)
        t0 = time.monotonic()
        self.assertEqual(p.admin("POST", "/drain")[0], 202)
        self.assertEqual(p.proc.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("drain deadline (300 ms) passed with 1 connections open", p.text())
        stuck.close()

    def test_admin_is_loopback_only(self):
        for addr in ("0.0.0.0:%d" % free_port(), "127.0.0.2:%d" % free_port(), "localhost:1"):
            r = subprocess.run([PROXY_BIN, "--listen", "127.0.0.1:%d" % free_port(), "--upstream",
                                self.app_addr, "--admin", addr], capture_output=True, timeout=10)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(b"--admin: want 127.0.0.1:PORT", r.stderr)


class AdminMTLSTest(unittest.TestCase):
    """The inbound mTLS listener: TLS handshake counters by reason and
    /config with key paths but no key material."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="weft-pxadmin-tls-")
        subprocess.run([CA_TOOL, cls.tmp], check=True, capture_output=True, timeout=30)
        for leaf, chain, out in [("api-old", "api-old-chain", "api.crt"),
                                 ("client", "client-chain", "web.crt")]:
            with open(os.path.join(cls.tmp, out), "w") as o:
                for part in (leaf, chain):
                    with open(os.path.join(cls.tmp, part + ".pem")) as i:
                        o.write(i.read())
        cls.app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
        cls.app.daemon_threads = True
        threading.Thread(target=cls.app.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.app.shutdown()
        cls.app.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def f(self, name):
        return os.path.join(self.tmp, name)

    def tls_get(self, port, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(self.f("old-root.pem"))
        ctx.load_cert_chain(self.f(cert), self.f(key))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            try:
                with ctx.wrap_socket(raw) as s:
                    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return read_response(s.makefile("rb"))[0]
            except (ssl.SSLError, OSError):
                return None

    def test_tls_counters_and_config(self):
        port = free_port()
        p = Proxy(self.tmp, ["--inbound", "127.0.0.1:%d" % port,
                             "--app", "127.0.0.1:%d" % self.app.server_address[1],
                             "--cert", self.f("api.crt"), "--key", self.f("api-old.key"),
                             "--trust-bundle", self.f("old-root.pem")])
        try:
            self.assertEqual(self.tls_get(port, "web.crt", "client.key"), 200)
            self.assertIsNone(self.tls_get(port, "foreign.pem", "foreign.key"))
            p.wait_for(r"tls refused: .*reason=foreign-ca")
            text = p.stats()
            L = '{listener="inbound"'
            self.assertEqual(sample(text, 'weft_proxy_tls_handshakes_total%s,side="client"}' % L), 1)
            self.assertEqual(sample(text, 'weft_proxy_tls_handshake_failures_total%s,side="client",'
                                    'reason="foreign-ca"}' % L), 1)
            self.assertEqual(sample(text, 'weft_proxy_tls_handshake_failures_total%s,side="client",'
                                    'reason="expired"}' % L), 0)
            self.assertEqual(sample(text, 'weft_proxy_requests_total%s,code="2xx"}' % L), 1)
            check = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                                   capture_output=True, timeout=30)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
            status, headers, body = p.admin("GET", "/config")
            self.assertEqual((status, headers["content-type"]), (200, "application/json"))
            self.assertNotIn(b"PRIVATE KEY", body)
            with open(self.f("api-old.key"), "rb") as k:
                key_lines = [l for l in k.read().splitlines() if l and not l.startswith(b"-----")]
            for l in key_lines:
                self.assertNotIn(l, body)
            cfg = json.loads(body)
            self.assertEqual(cfg["TLS"]["KeyFile"], self.f("api-old.key"))
            self.assertEqual(cfg["TLS"]["CertFile"], self.f("api.crt"))
            self.assertEqual(cfg["Listeners"][0]["Name"], "inbound")
            self.assertEqual(cfg["Listeners"][0]["MTLS"], "in")
            self.assertEqual(cfg["Listeners"][0]["SelfID"], spiffe("api"))
            self.assertEqual(cfg["Admin"], "127.0.0.1:%d" % p.admin_port)
        finally:
            self.assertEqual(p.stop(), 0, p.text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
