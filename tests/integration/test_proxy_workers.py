"""weft-proxy --workers N (docs/proxy-admin.md, "Workers"): one event loop
per worker thread, each with its own instance of every listener on the
same port (SO_REUSEPORT). Many concurrent connections all succeed and
/stats counts every one of them (the sum of the workers), both workers
serve, the access log they share has whole lines only; /drain waits for
the in-flight requests of every worker and the process exits 0; SIGTERM
with connections open on every worker exits 0; an mTLS pair keeps
serving while SIGHUP reloads its certificates under load (px_tls shared by
the workers); --workers 0, 65 and abc are refused; the default is one per
online core."""
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILDDIR, free_port  # noqa: E402
from test_proxy_admin import PROXY_BIN, WRAPPER, Proxy, read_response, request, sample  # noqa: E402

CA_TOOL = os.path.join(BUILDDIR, "tests", "tools", "ca-tool")
TD = "weft-test.example"
CONNS = 200
REQS = 3


def spiffe(svc):
    return "spiffe://%s/ns/default/dc/dc1/svc/%s" % (TD, svc)


class App(http.server.BaseHTTPRequestHandler):
    """Answers with the path (so a mixed-up response shows), /slow after 2 s."""
    protocol_version = "HTTP/1.1"
    slow_started = threading.Semaphore(0)

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/slow":
            App.slow_started.release()
            time.sleep(2.0)
            body = b"slow done"
        else:
            body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class AppServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512    # the proxy opens hundreds of upstream connections at once


def per_worker(text):
    """{worker: connections accepted} from /stats."""
    out = {}
    for line in text.splitlines():
        if line.startswith('weft_proxy_worker_connections_opened_total{worker="'):
            out[int(line.split('"')[1])] = int(float(line.split()[-1]))
    return out


def get(f, s, path):
    s.sendall(b"GET %s HTTP/1.1\r\nHost: app\r\n\r\n" % path.encode())
    return read_response(f)


class WorkersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="weft-pxworkers-")
        cls.app = AppServer(("127.0.0.1", 0), App)
        threading.Thread(target=cls.app.serve_forever, daemon=True).start()
        cls.app_addr = "127.0.0.1:%d" % cls.app.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.app.shutdown()
        cls.app.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.procs = []
        while App.slow_started.acquire(blocking=False):
            pass

    def tearDown(self):
        for p in self.procs:
            self.assertEqual(p.stop(), 0, "weft-proxy exit status, log:\n" + p.text())

    def proxy(self, workers, extra=()):
        port = free_port()
        args = ["--listen", "127.0.0.1:%d" % port, "--upstream", self.app_addr]
        if workers is not None:
            args += ["--workers", str(workers)]
        p = Proxy(self.tmp, args + list(extra))
        self.procs.append(p)
        return p, port

    def connect_on_both(self, p, port, path, limit=40):
        """Connections (socket, file) each with one request sent, opened
        until each of the two workers has accepted at least one of them;
        path "/slow": the requests stay in flight."""
        conns, before = [], per_worker(p.stats())
        while len(conns) < limit:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            f = s.makefile("rb")
            if path == "/slow":
                s.sendall(b"GET /slow HTTP/1.1\r\nHost: app\r\n\r\n")
                self.assertTrue(App.slow_started.acquire(timeout=5))
            else:
                self.assertEqual(get(f, s, path)[0], 200)
            conns.append((s, f))
            now = per_worker(p.stats())
            if all(now[k] > before.get(k, 0) for k in (0, 1)):
                return conns
        self.fail("the connections all went to one worker: %r" % per_worker(p.stats()))

    def test_many_concurrent_connections(self):
        log_path = os.path.join(self.tmp, "access.log")
        p, port = self.proxy(2, ["--access-log", log_path])
        p.wait_for(r"worker 0 started")
        p.wait_for(r"worker 1 started")
        barrier = threading.Barrier(CONNS, timeout=30)
        errors, done = [], []

        def client(i):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                    f = s.makefile("rb")
                    barrier.wait()      # every connection open at once
                    for j in range(REQS):
                        path = "/c%d/r%d" % (i, j)
                        status, _, body = get(f, s, path)
                        if (status, body) != (200, path.encode()):
                            raise AssertionError("%s: %r %r" % (path, status, body))
                done.append(i)
            except Exception as e:      # reported by the main thread
                errors.append("client %d: %r" % (i, e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CONNS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(done), CONNS)
        text = p.stats()
        L = '{listener="listen"'
        self.assertEqual(sample(text, "weft_proxy_workers"), 2)
        self.assertEqual(sample(text, "weft_proxy_connections_opened_total%s}" % L), CONNS)
        self.assertEqual(sample(text, 'weft_proxy_requests_total%s,code="2xx"}' % L), CONNS * REQS)
        self.assertEqual(sample(text, "weft_proxy_request_duration_seconds_count%s}" % L),
                         CONNS * REQS)
        workers = per_worker(text)
        self.assertEqual(sorted(workers), [0, 1])
        self.assertEqual(sum(workers.values()), CONNS)
        self.assertTrue(all(n > 0 for n in workers.values()), workers)   # both served
        deadline = time.monotonic() + 5     # closed on both workers: the gauge is back to 0
        while sample(p.stats(), "weft_proxy_connections_active%s}" % L) != 0:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        # one access log file, both workers appending: whole JSON lines, one per request
        deadline = time.monotonic() + 5
        while True:
            with open(log_path) as f:
                lines = f.read().splitlines()
            if len(lines) >= CONNS * REQS or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        paths = sorted(json.loads(l)["path"] for l in lines)
        self.assertEqual(paths, sorted("/c%d/r%d" % (i, j) for i in range(CONNS) for j in range(REQS)))
        self.assertEqual(p.admin("GET", "/config")[0], 200)
        self.assertEqual(json.loads(p.admin("GET", "/config")[2])["Workers"], 2)

    def test_drain_waits_for_every_worker(self):
        p, port = self.proxy(2, ["--drain-timeout", "10000"])
        idle = self.connect_on_both(p, port, "/idle")
        busy = self.connect_on_both(p, port, "/slow")
        t0 = time.monotonic()
        status, _, body = p.admin("POST", "/drain")
        self.assertEqual((status, body), (202, b"draining\n"))
        self.assertEqual(p.admin("GET", "/ready")[0], 503)
        self.assertEqual(sample(p.stats(), "weft_proxy_draining"), 1)
        # no worker accepts any more (each had its own socket on the port)
        for _ in range(8):
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
        for s, f in idle:
            self.assertEqual(f.read(), b"")             # idle ones closed, on both workers
        for s, f in busy:                               # in-flight ones answered, on both
            status, headers, body = read_response(f)
            self.assertEqual((status, body, headers.get("connection")), (200, b"slow done", "close"))
        self.assertEqual(p.proc.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 8)
        self.assertIn("drained: no connection left", p.text())
        for s, f in idle + busy:
            s.close()

    def test_drain_deadline_counts_every_worker(self):
        p, port = self.proxy(2, ["--drain-timeout", "300"])
        stuck = []
        for s, f in self.connect_on_both(p, port, "/x"):
            s.sendall(b"GET /y HTTP/1.1\r\nHost")        # a head that never ends
            stuck.append(s)
        time.sleep(0.1)
        self.assertEqual(p.admin("POST", "/drain")[0], 202)
        self.assertEqual(p.proc.wait(10), 0)
        self.assertIn("drain deadline (300 ms) passed with %d connections open" % len(stuck),
                      p.text())
        for s in stuck:
            s.close()

    def test_sigterm_with_connections_open(self):
        p, port = self.proxy(2)
        conns = self.connect_on_both(p, port, "/idle")
        p.proc.send_signal(signal.SIGTERM)
        self.assertEqual(p.proc.wait(10), 0, p.text())
        for s, f in conns:
            self.assertEqual(f.read(), b"")
            s.close()

    def test_default_is_one_per_online_core(self):
        p, port = self.proxy(None)
        n = min(os.sysconf("SC_NPROCESSORS_ONLN"), 64)
        self.assertEqual(sample(p.stats(), "weft_proxy_workers"), n)
        for k in range(n):
            p.wait_for(r"worker %d started" % k)
        self.assertEqual(request(port, "GET", "/one")[:1], (200,))

    def test_one_worker(self):
        p, port = self.proxy(1)
        self.assertEqual(request(port, "GET", "/one")[2], b"/one")
        self.assertEqual(per_worker(p.stats()), {0: 1})

    def test_bad_workers_refused(self):
        for bad in ("0", "65", "abc", "", "2x", "-1"):
            r = subprocess.run([PROXY_BIN, "--listen", "127.0.0.1:%d" % free_port(), "--upstream",
                                self.app_addr, "--workers", bad], capture_output=True, timeout=10)
            self.assertEqual(r.returncode, 1, bad)
            self.assertIn(b'--workers: want 1..64 threads, got "%s"' % bad.encode(), r.stderr)


class WorkersMTLSTest(unittest.TestCase):
    """An outbound and an inbound proxy with 3 workers each, their px_tls
    shared by the workers: concurrent connections all get through while
    SIGHUP reloads the certificates of both, again and again."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="weft-pxworkers-tls-")
        subprocess.run([CA_TOOL, cls.tmp], check=True, capture_output=True, timeout=30)
        for leaf, chain, out in [("api-old", "api-old-chain", "api.crt"),
                                 ("client", "client-chain", "web.crt")]:
            with open(os.path.join(cls.tmp, out), "w") as o:
                for part in (leaf, chain):
                    with open(os.path.join(cls.tmp, part + ".pem")) as i:
                        o.write(i.read())
        cls.app = AppServer(("127.0.0.1", 0), App)
        threading.Thread(target=cls.app.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.app.shutdown()
        cls.app.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def f(self, name):
        return os.path.join(self.tmp, name)

    def test_reload_under_load(self):
        in_port, out_port = free_port(), free_port()
        inb = Proxy(self.tmp, ["--inbound", "127.0.0.1:%d" % in_port, "--app",
                               "127.0.0.1:%d" % self.app.server_address[1], "--cert", self.f("api.crt"),
                               "--key", self.f("api-old.key"), "--trust-bundle", self.f("old-root.pem"),
                               "--workers", "3"])
        out = Proxy(self.tmp, ["--outbound", "127.0.0.1:%d" % out_port, "--upstream",
                               "127.0.0.1:%d" % in_port, "--upstream-id", spiffe("api"),
                               "--cert", self.f("web.crt"), "--key", self.f("client.key"),
                               "--trust-bundle", self.f("old-root.pem"), "--workers", "3"])
        errors, done = [], []
        stop = threading.Event()

        def client(i):
            try:
                for j in range(5):
                    path = "/t%d/%d" % (i, j)
                    status, _, body = request(out_port, "GET", path, timeout=20)
                    if (status, body) != (200, path.encode()):
                        raise AssertionError("%s: %r %r" % (path, status, body))
                done.append(i)
            except Exception as e:
                errors.append("client %d: %r" % (i, e))

        def reloader():
            while not stop.is_set():
                for p in (inb, out):
                    p.proc.send_signal(signal.SIGHUP)
                time.sleep(0.01)

        try:
            r = threading.Thread(target=reloader)
            r.start()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(40)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            stop.set()
            r.join(10)
            self.assertEqual(errors, [])
            self.assertEqual(len(done), 40)
            for p, name in ((inb, "inbound"), (out, "outbound")):
                p.wait_for(r"tls reloaded: listener=%s" % name)
                text = p.stats()
                self.assertEqual(sample(text, 'weft_proxy_requests_total{listener="%s",code="2xx"}'
                                        % name), 200)
            # the outbound pools its upstream connections: every one it
            # opened is one handshake the inbound accepted, at most one per request
            in_hs = sample(inb.stats(), 'weft_proxy_tls_handshakes_total{listener="inbound",'
                           'side="client"}')
            out_hs = sample(out.stats(), 'weft_proxy_tls_handshakes_total{listener="outbound",'
                            'side="upstream"}')
            self.assertEqual(in_hs, out_hs)
            self.assertGreaterEqual(in_hs, 1)
            self.assertLessEqual(in_hs, 200)
        finally:
            stop.set()
            for p in (out, inb):
                self.assertEqual(p.stop(), 0, p.text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
