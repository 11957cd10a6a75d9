"""weft-proxy upstreams: balancing, pools, retries, passive health,
timeouts, endpoint changes under load and failover, with real processes
and real mTLS.

The outbound sidecar of "web" (weft-proxy --config) balances over
endpoints that are real TLS servers presenting api's certificate (from
tests/tools/ca-tool) and requiring web's client certificate: each answers
with its own name, so the test sees which endpoint served. Checked: round
robin and weights, ring hash on a header, keep-alive pooling (the
endpoints see few TCP connections), a dead endpoint retried and ejected,
a 503 retried for GET but not for POST, the request timeout (504), a
snapshot swap under load (SIGHUP) with zero failed requests, and an
endpoint killed under load failing over with bounded errors."""
import json
import os
import re
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
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import free_port  # noqa: E402
from test_proxy_mtls import CA_TOOL, Proxy  # noqa: E402

TD = "weft-test.example"


def spiffe(svc):
    return "spiffe://%s/ns/default/dc/dc1/svc/%s" % (TD, svc)


ENDPOINT = r"""
import http.server, os, ssl, sys, time
tmp, name, mode_file, log_file = sys.argv[1:5]
log = open(log_file, "a", buffering=1)

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def setup(self):
        log.write("conn\n")
        super().setup()

    def answer(self):
        n = int(self.headers.get("Content-Length", "0"))
        if n:
            self.rfile.read(n)
        log.write("req %s %s\n" % (self.command, self.path))
        try:
            with open(mode_file) as f:
                mode = f.read().strip()
        except OSError:
            mode = ""
        if mode == "slow":
            time.sleep(3)
        body = name.encode()
        self.send_response(503 if mode == "503" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(tmp, "api.crt"), os.path.join(tmp, "api-old.key"))
ctx.load_verify_locations(os.path.join(tmp, "old-root.pem"))
ctx.verify_mode = ssl.CERT_REQUIRED
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
httpd.daemon_threads = True
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"""


class Endpoint:
    """An HTTPS server process with api's certificate that requires a
    client certificate from the mesh CA. It answers its name, logs each
    connection and request; set_mode("503") makes it answer 503,
    set_mode("slow") sleep 3 s first."""

    def __init__(self, tmp, name):
        self.name = name
        self.mode_file = os.path.join(tmp, name + ".mode")
        self.log_file = os.path.join(tmp, name + ".reqlog")
        for fn in (self.mode_file, self.log_file):
            open(fn, "w").close()
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", ENDPOINT, tmp, name,
                                      self.mode_file, self.log_file],
                                     stdout=subprocess.PIPE)
        self.port = int(self.proc.stdout.readline())

    def set_mode(self, mode):
        with open(self.mode_file, "w") as f:
            f.write(mode)

    def _lines(self, prefix):
        with open(self.log_file) as f:
            return [l[len(prefix):].strip() for l in f if l.startswith(prefix)]

    @property
    def conns(self):
        return len(self._lines("conn"))

    @property
    def requests(self):
        return self._lines("req ")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()


class UpstreamsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="weft-ups-")
        subprocess.run([CA_TOOL, cls.tmp], check=True, capture_output=True, timeout=30)
        for leaf, chain, out in [("api-old", "api-old-chain", "api.crt"),
                                 ("client", "client-chain", "web.crt")]:
            with open(os.path.join(cls.tmp, out), "w") as o:
                for part in (leaf + ".pem", chain + ".pem"):
                    with open(os.path.join(cls.tmp, part)) as i:
                        o.write(i.read())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.procs = []
        self.eps = []

    def tearDown(self):
        for e in self.eps:
            e.stop()
        for p in self.procs:
            self.assertEqual(p.stop(), 0, "weft-proxy exit status, log:\n" + p.text())

    def f(self, name):
        return os.path.join(self.tmp, name)

    def endpoints(self, n):
        new = [Endpoint(self.tmp, "b%d" % (len(self.eps) + i)) for i in range(n)]
        self.eps += new
        return new

    def snapshot(self, eps, index=1, **up):
        out_port = up.pop("port", None) or free_port()
        self.admin_port = free_port()
        u = {"Name": "api", "Service": "api", "BindAddress": "127.0.0.1", "BindPort": out_port,
             "Protocol": "http",
             "Endpoints": [dict({"Address": "127.0.0.1", "Port": e.port, "SpiffeID": spiffe("api")},
                                **(w if isinstance(w, dict) else {}))
                           for e, w in ((e if isinstance(e, tuple) else (e, None)) for e in eps)]}
        u.update(up)
        return out_port, {
            "Version": 1, "Index": index,
            "Proxy": {"Service": "web", "SpiffeID": spiffe("web"), "Mesh": "default", "Zone": "dc1"},
            "Inbound": {"BindAddress": "127.0.0.1", "BindPort": free_port(),
                        "AppAddress": "127.0.0.1", "AppPort": 1, "Protocol": "http"},
            "Upstreams": [u],
            "Intentions": {"DefaultAction": "deny", "Items": []},
            "TLS": {"Certificate": {"File": self.f("web.crt")},
                    "PrivateKey": {"File": self.f("client.key")},
                    "TrustBundle": {"File": self.f("old-root.pem")}},
            "Admin": {"BindAddress": "127.0.0.1", "BindPort": self.admin_port},
        }

    def write(self, path, snap):
        with open(path + ".tmp", "w") as o:
            json.dump(snap, o)
        os.replace(path + ".tmp", path)

    def start(self, eps, **up):
        port, snap = self.snapshot(eps, **up)
        path = self.f("web-%d.json" % port)
        self.write(path, snap)
        # one worker: balancing, ejection and budgets are per worker, and
        # the exact counts below assume one
        p = Proxy(self.tmp, "web-%d" % port, ["--config", path, "--workers", "1"])
        self.procs.append(p)
        p.wait_for(r"listening: listener=outbound:api")
        return p, port, path, snap

    def get(self, port, path="/name", headers=None, method="GET", data=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                     data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stats(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/stats" % self.admin_port, timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r'weft_proxy_(\w+)\{listener="outbound:api"\} (\d+)', line)
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    # ---- balancing ----

    def test_round_robin_and_weights(self):
        eps = self.endpoints(3)
        _, port, _, _ = self.start(eps)
        seen = [self.get(port)[1] for _ in range(30)]
        self.assertEqual(sorted(set(seen)), ["b0", "b1", "b2"])
        for name in ("b0", "b1", "b2"):
            self.assertEqual(seen.count(name), 10, seen)

    def test_weights(self):
        a, b = self.endpoints(2)
        _, port, _, _ = self.start([(a, {"Weight": 1}), (b, {"Weight": 3})])
        seen = [self.get(port)[1] for _ in range(40)]
        self.assertEqual((seen.count(a.name), seen.count(b.name)), (10, 30), seen)

    def test_ring_hash_sticks_to_one_endpoint_per_key(self):
        eps = self.endpoints(3)
        _, port, _, _ = self.start(eps, LoadBalancer={"Policy": "ring_hash",
                                                      "HashHeader": "x-user"})
        chosen = {}
        # The ring's shape follows the endpoints' addresses (random ports
        # here): with a few keys all may land on one endpoint by chance.
        for user in ["user-%d" % i for i in range(24)]:
            got = {self.get(port, headers={"X-User": user})[1] for _ in range(3)}
            self.assertEqual(len(got), 1, (user, got))
            chosen[user] = got.pop()
        # 24 keys over three endpoints: not all on one
        self.assertGreater(len(set(chosen.values())), 1, chosen)

    def test_least_request_and_random_reach_every_endpoint(self):
        for policy in ("least_request", "random"):
            eps = self.endpoints(2)
            _, port, _, _ = self.start(eps, LoadBalancer={"Policy": policy})
            seen = {self.get(port)[1] for _ in range(40)}
            self.assertEqual(seen, {e.name for e in eps}, policy)

    def test_pooled_connections(self):
        (e,) = self.endpoints(1)
        _, port, _, _ = self.start([e])
        for _ in range(20):       # each on a new client connection
            self.assertEqual(self.get(port), (200, "b0"))
        self.assertLessEqual(e.conns, 2, "the endpoint saw %d connections for 20 requests" % e.conns)
        self.assertGreaterEqual(self.stats()["upstream_pool_reuses_total"], 18)

    # ---- failures ----

    def test_dead_endpoint_retried_then_ejected(self):
        good, = self.endpoints(1)
        dead_port = free_port()   # nothing listens there
        dead = type("Dead", (), {"port": dead_port, "name": "dead"})()
        p, port, _, _ = self.start([good, dead], PassiveHealth={"ConsecutiveFailures": 2,
                                                                "BaseEjectionTime": "30s"})
        results = [self.get(port) for _ in range(20)]
        self.assertEqual(results, [(200, "b0")] * 20)
        st = self.stats()
        self.assertGreaterEqual(st["upstream_retries_total"], 1)
        self.assertEqual(st["upstream_ejections_total"], 1)
        # once ejected it is not tried again: at most the 2 failures
        self.assertLessEqual(st["upstream_connect_failures_total"], 2)
        p.wait_for(r"endpoint ejected: listener=outbound:api upstream=api endpoint=127.0.0.1:%d"
                   % dead_port)

    def test_5xx_retried_for_idempotent_requests_only(self):
        bad, good = self.endpoints(2)
        bad.set_mode("503")
        _, port, _, _ = self.start([bad, good], Retries={"Attempts": 1, "On": ["5xx"]},
                                   PassiveHealth={"ConsecutiveFailures": 0})
        gets = [self.get(port) for _ in range(6)]
        self.assertEqual(gets, [(200, "b1")] * 6)
        self.assertIn("GET /name", bad.requests)   # it was tried, then retried elsewhere
        posts = [self.get(port, method="POST", data=b"x")[0] for _ in range(4)]
        self.assertEqual(sorted(posts), [200, 200, 503, 503])

    def test_request_timeout(self):
        (e,) = self.endpoints(1)
        e.set_mode("slow")
        _, port, _, _ = self.start([e], Timeouts={"Request": "500ms"})
        t0 = time.monotonic()
        status, _ = self.get(port)
        self.assertEqual(status, 504)
        self.assertLess(time.monotonic() - t0, 2.5)
        self.assertEqual(self.stats()["upstream_timeouts_total"], 1)

    def test_max_pending_requests_breaker(self):
        (e,) = self.endpoints(1)
        e.set_mode("slow")
        _, port, _, _ = self.start([e], Limits={"MaxPendingRequests": 1})
        results = []
        t = threading.Thread(target=lambda: results.append(self.get(port)))
        t.start()
        deadline = time.monotonic() + 5
        while not e.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.get(port)[0], 503)      # the second one, while the first waits
        t.join(10)
        self.assertEqual(results, [(200, "b0")])
        self.assertEqual(self.stats()["upstream_overflows_total"], 1)

    def test_header_and_body_limits(self):
        (e,) = self.endpoints(1)
        _, port, _, _ = self.start([e], Limits={"MaxHeaderBytes": 2048, "MaxBodyBytes": 10})
        self.assertEqual(self.get(port, headers={"X-Small": "y" * 1000}), (200, "b0"))
        self.assertEqual(self.get(port, headers={"X-Big": "y" * 3000})[0], 431)
        self.assertEqual(self.get(port, method="POST", data=b"0123456789"), (200, "b0"))
        self.assertEqual(self.get(port, method="POST", data=b"0123456789a")[0], 413)
        self.assertEqual(len([r for r in e.requests if r.startswith("POST")]), 1)

    def test_no_endpoint(self):
        _, port, _, _ = self.start([])
        self.assertEqual(self.get(port)[0], 503)
        self.assertEqual(self.stats()["upstream_no_endpoint_total"], 1)

    # ---- under load ----

    def load(self, port, stop, results, n_threads=4):
        """Keep-alive clients until stop is set; results gets (ok, failed)."""
        def worker():
            ok = failed = 0
            conn = None
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                        f = conn.makefile("rb")
                    conn.sendall(b"GET /name HTTP/1.1\r\nHost: api\r\n\r\n")
                    line = f.readline()
                    status = int(line.split()[1])
                    length = 0
                    while True:
                        h = f.readline()
                        if h in (b"\r\n", b""):
                            break
                        if h.lower().startswith(b"content-length:"):
                            length = int(h.split(b":")[1])
                    f.read(length)
                    if status == 200:
                        ok += 1
                    else:
                        failed += 1
                except (OSError, ValueError, IndexError):
                    failed += 1
                    conn = None
            results.append((ok, failed))
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(n_threads)]
        for t in threads:
            t.start()
        return threads

    def test_endpoint_swap_under_load_without_failures(self):
        a, b, c = self.endpoints(3)
        p, port, path, snap = self.start([a, b])
        stop, results = threading.Event(), []
        threads = self.load(port, stop, results)
        time.sleep(1)
        # a leaves, c joins: the swap must not fail one request
        snap["Index"] = 2
        snap["Upstreams"][0]["Endpoints"] = [
            {"Address": "127.0.0.1", "Port": e.port, "SpiffeID": spiffe("api")} for e in (b, c)]
        self.write(path, snap)
        p.proc.send_signal(signal.SIGHUP)
        p.wait_for(r"config reloaded")
        time.sleep(0.5)
        a_before = len(a.requests)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join(15)
        ok = sum(r[0] for r in results)
        failed = sum(r[1] for r in results)
        self.assertGreater(ok, 100)
        self.assertEqual(failed, 0)
        self.assertEqual(len(a.requests), a_before, "the removed endpoint still got requests")
        self.assertGreater(len(c.requests), 10, "the new endpoint got no traffic")

    def test_endpoint_killed_under_load_fails_over(self):
        a, b = self.endpoints(2)
        _, port, _, _ = self.start([a, b])
        stop, results = threading.Event(), []
        threads = self.load(port, stop, results)
        time.sleep(1)
        a.stop()           # kill -9: its listener and connections go away
        time.sleep(1.5)
        b_before = len(b.requests)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(15)
        ok = sum(r[0] for r in results)
        failed = sum(r[1] for r in results)
        self.assertGreater(ok, 100)
        # bounded: at most the requests in flight on the killed endpoint
        self.assertLessEqual(failed, 4, "failed %d of %d" % (failed, ok + failed))
        self.assertGreater(len(b.requests), b_before)


if __name__ == "__main__":
    unittest.main()
