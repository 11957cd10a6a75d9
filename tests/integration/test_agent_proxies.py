"""weft-agent's proxies module (agent/proxies.c) with a real weft-server,
real weft-proxy processes and real certificates, driven by
tests/tools/proxies-driver.

Two services on node n1, web -> api, each with its sidecar registered in
the catalog and a tiny HTTP app (web's /call calls api through web's
outbound listener). The driver runs both sidecars from their snapshots
(long-polled with an agent token for n1) and the leaves signed by the
server's CA. Asserted: the proxies start and traffic flows web's outbound
-> api's inbound; a deny intention is in force within 1 s; kill -9 of a
proxy: restarted, traffic resumes; leaves renewed during traffic: no failed
request; the server stopped: traffic goes on;
the driver restarted while the server is down: the proxies serve again
from the files on disk; the server back: changes are followed again; a
sidecar removed from the set drains (a request in flight completes) and
exits, reaped; the driver killed -9: its proxies die with it. Also: a
proxy waits for its certificate files, and starts once they exist."""
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BUILDDIR, free_port  # noqa: E402

PROXY = os.path.join(BUILDDIR, "dataplane", "weft-proxy")
DRIVER = os.path.join(BUILDDIR, "tests", "tools", "proxies-driver")
OPENSSL = shutil.which("openssl")
DRAIN_MS = 3000


def exact(src, dst):
    return "/v1/connect/intentions/exact?source=%s&destination=%s" % (
        urllib.parse.quote(src, safe=""), urllib.parse.quote(dst, safe=""))


def sidecar(svc, port, app_port, upstreams):
    return {"Service": svc + "-sidecar-proxy", "ID": svc + "-sidecar-proxy",
            "Kind": "connect-proxy", "Port": port,
            "Proxy": {"DestinationServiceName": svc, "DestinationServiceID": svc + "-1",
                      "LocalServicePort": app_port,
                      "Upstreams": [{"DestinationName": u, "LocalBindPort": p}
                                    for u, p in upstreams]}}


def make_leaf(srv, tmp, service):
    """A key made here (openssl) and its leaf signed by the server's CA."""
    key = os.path.join(tmp, service + ".key")
    csr = os.path.join(tmp, service + ".csr")
    p = subprocess.run([OPENSSL, "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-keyout", key, "-out", csr, "-subj",
                        "/CN=" + service], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    with open(csr) as f:
        r = srv.request("POST", "/v1/connect/ca/sign", {"Service": service, "CSR": f.read()})
    assert r.status == 200, r
    leaf = r.json()
    cert = os.path.join(tmp, service + ".crt")
    with open(cert, "w") as f:
        f.write(leaf["CertPEM"] + (leaf.get("ChainPEM") or ""))
    return cert, key


def dead(pid):
    """The process is gone, or a zombie of a parent that is not us (init's)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return True
    return st[st.rindex(")") + 2] == "Z"


def zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] == "Z"


class Apps:
    """api: GET / -> 200 "api", GET /slow -> 200 "slow" after 1.5 s.
    web: GET /call and /call-slow call api through web's outbound listener
    and answer what they got."""

    def __init__(self, web_port, api_port, up_api):
        class Api(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path == "/slow":
                    time.sleep(1.5)
                body = b"slow" if self.path == "/slow" else b"api"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Web(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = "/slow" if self.path == "/call-slow" else "/"
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (up_api, path),
                                                timeout=5) as r:
                        status, body = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, body = e.code, e.read()
                except OSError as e:
                    status, body = 502, ("web: %s" % e).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.servers = [http.server.ThreadingHTTPServer(("127.0.0.1", web_port), Web),
                        http.server.ThreadingHTTPServer(("127.0.0.1", api_port), Api)]
        for s in self.servers:
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, daemon=True).start()

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


@unittest.skipUnless(OPENSSL, "the openssl command is not installed")
class AgentProxiesTest(harness.ServerTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        srv = cls.srv
        cls.tmp = tempfile.mkdtemp(prefix="weft-agent-proxies-")
        cls.web_app, cls.api_app = free_port(), free_port()
        cls.web_in, cls.api_in, cls.up_api = free_port(), free_port(), free_port()
        cls.web_admin, cls.api_admin = free_port(), free_port()
        for body in ({"Service": "web", "ID": "web-1", "Port": cls.web_app},
                     sidecar("web", cls.web_in, cls.web_app, [("api", cls.up_api)]),
                     {"Service": "api", "ID": "api-1", "Port": cls.api_app},
                     sidecar("api", cls.api_in, cls.api_app, [])):
            r = srv.put("/v1/catalog/register", {"Node": "n1", "Address": "127.0.0.1",
                                                  "Service": body})
            assert r.status == 200, r
        r = srv.put("/v1/config", {"Kind": "service-defaults", "Name": "api", "Protocol": "http"})
        assert r.status == 200, r
        r = srv.put(exact("web", "api"), {"Action": "allow"})
        assert r.status == 200, r
        certs = os.path.join(cls.tmp, "certs")
        os.mkdir(certs)
        cls.leaf = {s: make_leaf(srv, certs, s) for s in ("web", "api")}
        cls.bundle = os.path.join(certs, "bundle.pem")
        with open(cls.bundle, "w") as f:
            f.write(srv.get("/v1/connect/ca/roots?pem=true").body)
        tok = srv.put("/v1/acl/token", {"Kind": "agent", "NodeName": "n1"})
        assert tok.status == 200, tok
        cls.token_file = os.path.join(cls.tmp, "agent.token")
        with open(cls.token_file, "w") as f:
            f.write(tok.json()["SecretID"] + "\n")
        os.chmod(cls.token_file, 0o600)
        cls.apps = Apps(cls.web_app, cls.api_app, cls.up_api)

    @classmethod
    def tearDownClass(cls):
        cls.apps.close()
        if not os.environ.get("WEFT_KEEP_TEST_DIRS"):
            shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.driver = None
        self.dir = tempfile.mkdtemp(prefix="run-", dir=self.tmp)
        self.specs_file = os.path.join(self.dir, "specs.json")
        self.status_file = os.path.join(self.dir, "status.json")
        self.n_logs = 0

    def tearDown(self):
        if self.driver and self.driver.poll() is None:
            self.driver.kill()
            self.driver.wait(10)
        if self.srv.proc is None:
            self.srv.start()

    # -- helpers

    def spec(self, svc, admin, cert=None):
        c, k = self.leaf[svc]
        return {"ID": svc + "-sidecar-proxy", "Service": svc, "CertFile": cert or c,
                "KeyFile": k, "BundleFile": self.bundle, "AdminPort": admin}

    def write_specs(self, specs):
        with open(self.specs_file + ".tmp", "w") as f:
            json.dump(specs, f)
        os.rename(self.specs_file + ".tmp", self.specs_file)

    def start_driver(self):
        self.n_logs += 1
        self.log_path = os.path.join(self.dir, "driver-%d.log" % self.n_logs)
        if os.path.exists(self.status_file):
            os.unlink(self.status_file)
        with open(self.log_path, "wb") as log:
            self.driver = subprocess.Popen(
                [DRIVER, "--proxy-bin", PROXY, "--dir", os.path.join(self.dir, "proxies"),
                 "--server", self.srv.addr, "--node", "n1", "--token-file", self.token_file,
                 "--drain-ms", str(DRAIN_MS), "--status-file", self.status_file,
                 "--specs", self.specs_file], stdout=subprocess.DEVNULL, stderr=log)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def status(self):
        try:
            with open(self.status_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def proxy(self, st, svc):
        for p in st["Proxies"]:
            if p["Service"] == svc:
                return p
        return None

    def wait_status(self, pred, limit=20, what="status"):
        deadline = time.time() + limit
        while True:
            self.assertIsNone(self.driver.poll(), "the driver exited:\n" + self.log())
            st = self.status()
            if st is not None and pred(st):
                return st
            if time.time() > deadline:
                self.fail("%s: not reached in %s s; last %r\n%s" % (what, limit, st,
                                                                   self.log()[-4000:]))
            time.sleep(0.05)

    def wait_ready(self, n=2, limit=20):
        return self.wait_status(lambda st: st["Ready"] == 1 and len(st["Proxies"]) == n and
                                all(p["Pid"] > 0 and p["Ready"] for p in st["Proxies"]),
                                limit, "ready")

    def call(self, path="/call", timeout=10):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.web_app, path),
                                        timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def until(self, status, limit):
        """Calls until the answer is status: the seconds it took."""
        t0 = time.time()
        while True:
            got, body = self.call()
            if got == status:
                return time.time() - t0
            if time.time() - t0 > limit:
                self.fail("still %d %r after %.1f s (want %d)\n%s" % (
                    got, body, limit, status, self.log()[-3000:]))
            time.sleep(0.02)

    def stop_driver(self):
        self.driver.send_signal(signal.SIGTERM)
        rc = self.driver.wait(DRAIN_MS / 1000 * 2 + 10)
        self.assertEqual(rc, 0, self.log())

    def proxy_log(self, svc):
        with open(os.path.join(self.dir, "proxies", svc + "-sidecar-proxy", "proxy.log"),
                  "rb") as f:
            return f.read().decode(errors="replace")

    # -- the tests

    def test_sidecars_end_to_end(self):
        srv = self.srv
        self.write_specs([self.spec("web", self.web_admin), self.spec("api", self.api_admin)])
        self.start_driver()
        st = self.wait_ready()
        self.until(200, 10)
        self.assertEqual(self.call(), (200, "api"))
        # the snapshot handed over: 0600, the VM's files, admin, decodes
        snap = os.path.join(self.dir, "proxies", "api-sidecar-proxy", "snapshot.json")
        self.assertEqual(stat.S_IMODE(os.stat(snap).st_mode), 0o600)
        with open(snap) as f:
            doc = json.load(f)
        self.assertEqual(doc["TLS"]["Certificate"], {"File": self.leaf["api"][0]})
        self.assertEqual(doc["TLS"]["PrivateKey"], {"File": self.leaf["api"][1]})
        self.assertEqual(doc["TLS"]["TrustBundle"], {"File": self.bundle})
        self.assertEqual(doc["Admin"], {"BindAddress": "127.0.0.1", "BindPort": self.api_admin})
        self.assertEqual(self.proxy(st, "api")["SnapshotIndex"], doc["Index"])
        p = subprocess.run([PROXY, "--config", snap, "--check"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

        # a new deny intention stops calls within 1 s
        t0 = time.time()
        self.assertEqual(srv.put(exact("web", "api"), {"Action": "deny"}).status, 200)
        self.until(403, 3)
        took = time.time() - t0
        self.assertLess(took, 1.0, "the deny took %.2f s" % took)
        status, body = self.call()
        self.assertIn("denied by weft-proxy", body)
        self.assertEqual(srv.put(exact("web", "api"), {"Action": "allow"}).status, 200)
        self.until(200, 3)

        # kill -9 of a proxy: restarted, traffic resumes
        old = self.proxy(self.status(), "api")["Pid"]
        os.kill(old, signal.SIGKILL)
        st = self.wait_status(lambda s: self.proxy(s, "api")["Restarts"] == 1 and
                              self.proxy(s, "api")["Pid"] not in (0, old) and
                              self.proxy(s, "api")["Ready"], 10, "api restarted")
        self.until(200, 10)
        self.assertFalse(zombie(old), "the killed proxy was not reaped")
        self.assertIn("proxy exited: proxy=api-sidecar-proxy pid=%d status=\"signal 9\"" % old,
                      self.log())
        self.assertIn("(restarting in 100 ms)", self.log())
        # again at once: the backoff doubles
        old = self.proxy(st, "api")["Pid"]
        os.kill(old, signal.SIGKILL)
        self.wait_status(lambda s: self.proxy(s, "api")["Restarts"] == 2 and
                         self.proxy(s, "api")["Pid"] not in (0, old) and
                         self.proxy(s, "api")["Ready"], 10, "api restarted again")
        self.assertIn("pid=%d status=\"signal 9\" uptime_ms=" % old, self.log())
        self.assertIn("(restarting in 200 ms)", self.log())
        self.until(200, 10)

        # certificates renewed during traffic: new leaves in the same files,
        # proxies_tls_changed (SIGUSR1 to the driver), the proxies reload
        # them (SIGHUP): no failed request, the new leaf in use
        results, stop = [], threading.Event()

        def load():
            while not stop.is_set():
                results.append(self.call())
        t = threading.Thread(target=load)
        t.start()
        try:
            time.sleep(0.3)
            certs = os.path.dirname(self.leaf["api"][0])
            self.assertEqual(make_leaf(srv, certs, "api"), self.leaf["api"])
            self.assertEqual(make_leaf(srv, certs, "web"), self.leaf["web"])
            self.driver.send_signal(signal.SIGUSR1)
            deadline = time.time() + 5
            while "tls reloaded: listener=inbound" not in self.proxy_log("api"):
                self.assertLess(time.time(), deadline, self.proxy_log("api"))
                time.sleep(0.05)
            time.sleep(0.5)
        finally:
            stop.set()
            t.join(15)
        self.assertGreater(len(results), 10)
        self.assertEqual([r for r in results if r != (200, "api")], [])
        with open(self.leaf["api"][0]) as f:
            end = "-----END CERTIFICATE-----"
            new_der = ssl.PEM_cert_to_DER_cert(f.read().split(end)[0] + end + "\n")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(self.bundle)
        ctx.load_cert_chain(*self.leaf["web"])
        with socket.create_connection(("127.0.0.1", self.api_in), timeout=5) as raw:
            with ctx.wrap_socket(raw) as tls:
                self.assertEqual(tls.getpeercert(binary_form=True), new_der)

        # the server stopped: traffic goes on, the watchers say why
        srv.stop()
        for _ in range(5):
            self.assertEqual(self.call(), (200, "api"))
            time.sleep(0.1)
        self.wait_status(lambda s: all(p["LastError"] and "cannot reach" in p["LastError"]
                                       for p in s["Proxies"]), 10, "LastError set")

        # the driver restarted while the server is down: from the files on disk
        pids = [p["Pid"] for p in self.status()["Proxies"]]
        self.stop_driver()
        for pid in pids:
            self.assertTrue(dead(pid) and not zombie(pid), "proxy %d left behind" % pid)
        self.assertIn("how=drained", self.log())
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.up_api), 0.5).close()
        self.start_driver()
        self.wait_ready()
        self.until(200, 10)

        # the server back: the watchers follow it again
        srv.start()
        self.assertEqual(srv.put(exact("web", "api"), {"Action": "deny"}).status, 200)
        self.until(403, 40)
        self.assertEqual(srv.put(exact("web", "api"), {"Action": "allow"}).status, 200)
        self.until(200, 5)

        # api's sidecar leaves the set: it drains (the request in flight
        # gets its answer) and exits, reaped
        api_pid = self.proxy(self.status(), "api")["Pid"]
        slow = []
        t = threading.Thread(target=lambda: slow.append(self.call("/call-slow")))
        t.start()
        time.sleep(0.4)
        self.write_specs([self.spec("web", self.web_admin)])
        t0 = time.time()
        self.driver.send_signal(signal.SIGHUP)
        self.wait_status(lambda s: len(s["Proxies"]) == 1, DRAIN_MS / 1000 + 5, "api removed")
        t.join(10)
        self.assertEqual(slow, [(200, "slow")])
        self.assertLess(time.time() - t0, DRAIN_MS / 1000)
        self.assertTrue(dead(api_pid) and not zombie(api_pid))
        self.assertRegex(self.log(), r"proxy stopped: proxy=api-sidecar-proxy pid=%d why=removed "
                                     r"how=drained status=\"exit 0\"" % api_pid)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.api_admin), 0.5).close()
        self.assertEqual(self.call()[0], 502)

        # the driver killed -9: its proxy dies with it (PR_SET_PDEATHSIG)
        web_pid = self.proxy(self.status(), "web")["Pid"]
        self.driver.kill()
        self.driver.wait(5)
        deadline = time.time() + 5
        while not dead(web_pid):
            self.assertLess(time.time(), deadline, "weft-proxy outlived its agent")
            time.sleep(0.05)

    def test_bad_snapshot_and_new_listeners(self):
        """A snapshot the proxy could not run (the admin port the spec gives
        is the inbound's) is not handed over; a registration that changes
        the listeners restarts the proxy (weft-proxy binds them at start)."""
        self.write_specs([self.spec("api", self.api_in)])
        self.start_driver()
        st = self.wait_status(lambda s: len(s["Proxies"]) == 1 and s["Proxies"][0]["LastError"],
                              10, "refused")
        self.assertIn("clashes", st["Proxies"][0]["LastError"])
        self.assertIn("snapshot refused: proxy=api-sidecar-proxy", self.log())
        time.sleep(0.3)
        st = self.status()["Proxies"][0]
        self.assertEqual((st["Pid"], st["SnapshotIndex"], st["Waiting"]), (0, 0, "snapshot"))
        self.assertFalse(os.path.exists(st["Snapshot"]))
        # the spec fixed: that sidecar restarts with it, and runs
        self.write_specs([self.spec("api", self.api_admin)])
        self.driver.send_signal(signal.SIGHUP)
        st = self.wait_ready(n=1, limit=10)
        pid = st["Proxies"][0]["Pid"]
        # api's sidecar gets an upstream: a new listener, so a new process
        up_db = free_port()
        try:
            r = self.srv.put("/v1/catalog/register", {
                "Node": "n1", "Address": "127.0.0.1",
                "Service": sidecar("api", self.api_in, self.api_app, [("db", up_db)])})
            self.assertEqual(r.status, 200, r)
            st = self.wait_status(lambda s: s["Proxies"][0]["Pid"] not in (0, pid) and
                                  s["Proxies"][0]["Ready"], 10, "restarted for its listeners")
            self.assertEqual(st["Proxies"][0]["Restarts"], 0)
            self.assertIn("then=restart", self.log())
            self.assertRegex(self.log(), r"proxy stopped: proxy=api-sidecar-proxy pid=%d "
                                         r"why=new-listeners how=drained" % pid)
            socket.create_connection(("127.0.0.1", up_db), 2).close()
        finally:
            r = self.srv.put("/v1/catalog/register", {
                "Node": "n1", "Address": "127.0.0.1",
                "Service": sidecar("api", self.api_in, self.api_app, [])})
            self.assertEqual(r.status, 200, r)
        self.stop_driver()

    def test_registration_after_the_spec(self):
        """A sidecar given before its registration reached the server (404):
        its snapshot comes as soon as it is registered (a blocking query,
        not the 1 s..30 s backoff)."""
        spec = self.spec("web", free_port(), cert=os.path.join(self.dir, "db.crt"))
        spec.update({"ID": "db-sidecar-proxy", "Service": "db"})
        self.write_specs([spec])
        self.start_driver()
        self.wait_status(lambda s: s["Proxies"] and "answered 404" in
                         (s["Proxies"][0]["LastError"] or ""), 10, "404")
        time.sleep(1.5)   # past the first backoff steps
        t0 = time.time()
        r = self.srv.put("/v1/catalog/register", {
            "Node": "n1", "Address": "127.0.0.1",
            "Service": sidecar("db", free_port(), free_port(), [])})
        self.assertEqual(r.status, 200, r)
        try:
            st = self.wait_status(lambda s: s["Proxies"][0]["SnapshotIndex"] > 0, 5, "snapshot")
            self.assertLess(time.time() - t0, 1.0)
            self.assertIsNone(st["Proxies"][0]["LastError"])
            self.assertEqual(st["Proxies"][0]["Waiting"], "certificate file")
            self.assertEqual(self.log().count("answered 404"), 1, self.log())
        finally:
            self.srv.put("/v1/catalog/deregister", {"Node": "n1", "ServiceID": "db-sidecar-proxy"})
        self.stop_driver()

    def test_stale_proxy_is_replaced(self):
        """A weft-proxy still running this sidecar's snapshot (named by its
        proxy.pid) when the agent starts is killed first: the new one can
        bind its ports."""
        self.write_specs([self.spec("web", self.web_admin)])
        self.start_driver()
        st = self.wait_ready(n=1)
        snap = st["Proxies"][0]["Snapshot"]
        self.stop_driver()
        stale = subprocess.Popen([PROXY, "--config", snap, "--workers", "1"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", self.web_admin), 0.2).close()
                    break
                except OSError:
                    self.assertLess(time.time(), deadline, "the stale proxy did not start")
                    time.sleep(0.05)
            with open(os.path.join(os.path.dirname(snap), "proxy.pid"), "w") as f:
                f.write("%d\n" % stale.pid)
            self.start_driver()
            st = self.wait_ready(n=1)
            self.assertEqual(stale.wait(5), -signal.SIGKILL)
            self.assertNotEqual(st["Proxies"][0]["Pid"], stale.pid)
            self.assertIn("a proxy from before is still running: proxy=web-sidecar-proxy pid=%d: "
                          "killed" % stale.pid, self.log())
            self.stop_driver()
        finally:
            if stale.poll() is None:
                stale.kill()
                stale.wait()

    def test_waits_for_certificate_files(self):
        """Started only once its certificate exists; a bad spec is refused."""
        cert = os.path.join(self.dir, "web-late.crt")
        self.write_specs([self.spec("web", self.web_admin, cert=cert)])
        self.start_driver()
        self.wait_status(lambda s: len(s["Proxies"]) == 1 and
                         s["Proxies"][0]["Waiting"] == "certificate file" and
                         s["Proxies"][0]["SnapshotIndex"] > 0, 10, "waiting")
        time.sleep(0.5)
        self.assertEqual(self.status()["Proxies"][0]["Pid"], 0)
        shutil.copy(self.leaf["web"][0], cert)
        self.driver.send_signal(signal.SIGUSR1)
        self.wait_ready(n=1, limit=10)
        # a set with two specs on one admin port is refused as a whole
        self.write_specs([self.spec("web", self.web_admin), self.spec("api", self.web_admin)])
        self.driver.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        st = self.wait_ready(n=1, limit=5)
        self.assertEqual(st["Proxies"][0]["Service"], "web")
        self.stop_driver()


if __name__ == "__main__":
    harness.main()
