"""GET /v1/weft/proxy/:proxy-id/snapshot and weft-proxy --server, with a
real weft-server and the real weft-proxy.

`web` and `api` each have a sidecar (Kind connect-proxy); web's calls api,
api's calls db. web's snapshot holds its identity (SPIFFE ID of the
server's CA), its inbound, only its own upstream with api's sidecar as
endpoint, only the intentions whose destination is web or "*", the mesh's
default action and the CA roots as trust bundle; weft-proxy --check
accepts it. A blocking query on it returns when an intention for web is
created, when an api instance is added or goes critical, and not when an
unrelated service or intention changes. weft-proxy --server loads it
(certificates signed by the server's CA through /v1/connect/ca/sign), a
deny intention takes effect at the proxy within 1 s, the proxy keeps
serving while the server is down and follows changes once it is back, and
a bad token or an unreachable server is a clear error at start."""
import http.server
import json
import os
import shutil
import socket
import ssl
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
OPENSSL = shutil.which("openssl")


def exact(src, dst):
    return "/v1/connect/intentions/exact?source=%s&destination=%s" % (
        urllib.parse.quote(src, safe=""), urllib.parse.quote(dst, safe=""))


def sidecar(svc, sid, port, app_port, upstreams):
    return {"Service": svc + "-sidecar-proxy", "ID": sid, "Kind": "connect-proxy", "Port": port,
            "Proxy": {"DestinationServiceName": svc, "DestinationServiceID": svc + "-1",
                      "LocalServicePort": app_port,
                      "Upstreams": [{"DestinationName": u, "LocalBindPort": p}
                                    for u, p in upstreams]}}


class Mesh:
    """Registers web and api with their sidecars on node n1 (127.0.0.1)."""

    def __init__(self, srv):
        self.srv = srv
        self.web_port, self.web_app = free_port(), free_port()
        self.api_port, self.api_app = free_port(), free_port()
        self.up_api, self.up_db = free_port(), free_port()
        self.register("n1", "127.0.0.1", {"Service": "web", "ID": "web-1", "Port": self.web_app})
        self.register("n1", "127.0.0.1", sidecar("web", "web-1-sidecar", self.web_port,
                                                 self.web_app, [("api", self.up_api)]))
        self.register("n1", "127.0.0.1", {"Service": "api", "ID": "api-1", "Port": self.api_app})
        self.register("n1", "127.0.0.1", sidecar("api", "api-1-sidecar", self.api_port,
                                                 self.api_app, [("db", self.up_db)]))

    def register(self, node, addr, svc, checks=None):
        body = {"Node": node, "Address": addr, "Service": svc}
        if checks:
            body["Checks"] = checks
        r = self.srv.put("/v1/catalog/register", body)
        assert r.status == 200, r


def make_leaf(srv, tmp, service):
    """A key made here and a leaf for service signed by the server's CA."""
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
        f.write(leaf["CertPEM"])
        if leaf["ChainPEM"]:
            f.write(leaf["ChainPEM"])
    return cert, key


@unittest.skipUnless(OPENSSL, "the openssl command is not installed")
class SnapshotTest(harness.ServerTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="weft-proxysnap-")
        cls.mesh = Mesh(cls.srv)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def snap(self, query="", token="admin", pid="web-1-sidecar", timeout=30):
        return self.srv.get("/v1/weft/proxy/%s/snapshot%s" % (pid, query), token=token,
                            timeout=timeout)

    def ok(self, r, status=200):
        self.assertEqual(r.status, status, r)
        return r

    def check_decodes(self, doc):
        path = os.path.join(self.tmp, "snap.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        p = subprocess.run([PROXY, "--config", path, "--check"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return path

    def test_snapshot_fields_and_decodes(self):
        m = self.mesh
        self.ok(self.srv.put("/v1/config", {"Kind": "service-defaults", "Name": "api",
                                            "Protocol": "http"}))
        self.ok(self.srv.put(exact("api", "web"), {"Action": "allow"}))
        self.ok(self.srv.put(exact("*", "*"), {"Action": "deny"}))
        self.ok(self.srv.put(exact("web", "api"), {"Action": "allow"}))
        self.ok(self.srv.put(exact("web", "db"), {"Action": "allow"}))
        roots = self.ok(self.srv.get("/v1/connect/ca/roots")).json()
        bundle = self.ok(self.srv.get("/v1/connect/ca/roots?pem=true")).body
        td = roots["TrustDomain"]
        r = self.ok(self.snap())
        s = r.json()
        self.assertEqual(s["Version"], 1)
        self.assertEqual(s["Index"], r.index)
        self.assertEqual(s["Proxy"], {
            "Service": "web", "ID": "web-1-sidecar", "Mesh": "default", "Zone": "dc1",
            "SpiffeID": "spiffe://%s/ns/default/dc/dc1/svc/web" % td})
        self.assertEqual(s["Inbound"], {"BindAddress": "127.0.0.1", "BindPort": m.web_port,
                                        "AppAddress": "127.0.0.1", "AppPort": m.web_app,
                                        "Protocol": "tcp"})
        # Only web's upstream (api's sidecar calls db: not here).
        self.assertEqual(len(s["Upstreams"]), 1)
        up = s["Upstreams"][0]
        self.assertEqual((up["Name"], up["Service"], up["BindAddress"], up["BindPort"],
                          up["Protocol"]), ("api", "api", "127.0.0.1", m.up_api, "http"))
        self.assertIn({
            "Address": "127.0.0.1", "Port": m.api_port, "Weight": 1, "Zone": "dc1",
            "SpiffeID": "spiffe://%s/ns/default/dc/dc1/svc/api" % td, "Health": "passing"},
            up["Endpoints"])
        self.assertTrue(all(e["Health"] != "critical" for e in up["Endpoints"]))
        # Only the intentions that can decide a call to web.
        ixn = s["Intentions"]
        self.assertEqual(ixn["DefaultAction"], "deny")
        pairs = [(i["SourceName"], i["DestinationName"]) for i in ixn["Items"]]
        self.assertIn(("*", "*"), pairs)
        self.assertIn(("api", "web"), pairs)
        self.assertTrue(all(d in ("web", "*") for _, d in pairs), pairs)
        self.assertNotIn(("web", "api"), pairs)
        # The trust bundle inline, no leaf, no key; no admin listener (the
        # proxy's starter gives one with --admin), no access log.
        self.assertEqual(s["TLS"], {"TrustBundle": {"PEM": bundle}})
        self.assertEqual(s["Admin"], {"BindPort": 0})
        self.assertNotIn("AccessLog", s)
        path = self.check_decodes(s)
        # as it is (no leaf), --config cannot serve mTLS from it and says why
        p = subprocess.run([PROXY, "--config", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("TLS.Certificate: absent", p.stderr.decode())
        # api's own snapshot: its upstream db has no endpoint yet, and decodes.
        a = self.ok(self.snap(pid="api-1-sidecar")).json()
        self.assertEqual([(u["Service"], u["Endpoints"]) for u in a["Upstreams"]], [("db", [])])
        self.assertEqual(a["Inbound"]["Protocol"], "http")
        self.check_decodes(a)

    def metric(self, name):
        text = self.ok(self.srv.get("/v1/agent/metrics?format=prometheus")).body
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        self.fail("no %s in:\n%s" % (name, text))

    def test_cached_until_a_dependency_moves(self):
        """The same snapshot twice: the second from the cache, the same bytes
        at the same index; a new instance of its upstream: built again, with
        it, at a higher index; one scan of the upstream's instances."""
        m = self.mesh
        cached = 'weft_proxy_snapshot_answers_total{source="cache"}'
        built = 'weft_proxy_snapshot_answers_total{source="built"}'
        scans = "weft_proxy_snapshot_endpoint_scans_total"
        first = self.ok(self.snap())
        c0, b0 = self.metric(cached), self.metric(built)
        again = self.ok(self.snap())
        self.assertEqual(again.body, first.body)
        self.assertEqual(again.index, first.index)
        self.assertEqual(self.metric(cached), c0 + 1)
        self.assertEqual(self.metric(built), b0)
        s0 = self.metric(scans)
        api3 = free_port()
        m.register("n3", "127.0.0.3", sidecar("api", "api-3-sidecar", api3, 9000, []))
        try:
            after = self.ok(self.snap())
            self.assertGreater(after.index, first.index)
            eps = after.json()["Upstreams"][0]["Endpoints"]
            self.assertIn(("127.0.0.3", api3), [(e["Address"], e["Port"]) for e in eps])
            self.assertEqual(self.metric(built), b0 + 1)
            self.assertEqual(self.metric(scans), s0 + 1)
        finally:
            self.ok(self.srv.put("/v1/catalog/deregister", {"Node": "n3"}))

    def test_missing_proxy_and_permissions(self):
        r = self.snap(pid="nope")
        self.assertEqual(r.status, 404, r)
        self.assertIn("nope", r.json()["error"])
        # web's service instance is not a proxy.
        self.assertEqual(self.snap(pid="web-1").status, 404)
        self.assertEqual(self.snap(token=None).status, 403)
        self.assertEqual(self.snap(token="not-a-token").status, 403)
        tok = self.ok(self.srv.put("/v1/acl/token", {"Kind": "service", "ServiceName": "web"}))
        self.ok(self.snap(token=tok.json()["SecretID"]))
        other = self.ok(self.srv.put("/v1/acl/token", {"Kind": "service", "ServiceName": "db"}))
        r = self.snap(token=other.json()["SecretID"])
        self.assertEqual(r.status, 403, r)
        self.assertIn("web", r.json()["error"])
        # an agent token: the proxies of its own node only
        ag = self.ok(self.srv.put("/v1/acl/token", {"Kind": "agent", "NodeName": "n1"}))
        self.ok(self.snap(token=ag.json()["SecretID"]))
        ag9 = self.ok(self.srv.put("/v1/acl/token", {"Kind": "agent", "NodeName": "n9"}))
        r = self.snap(token=ag9.json()["SecretID"])
        self.assertEqual(r.status, 403, r)
        self.assertIn("n1", r.json()["error"])
        ro = self.ok(self.srv.put("/v1/acl/token", {"Kind": "read-only"}))
        self.assertEqual(self.snap(token=ro.json()["SecretID"]).status, 403)
        self.assertEqual(self.snap(query="?version=0").status, 400)
        # a proxy that speaks a newer version gets the one this server writes
        for v in ("1", "2", "7"):
            r = self.ok(self.snap(query="?version=" + v))
            self.assertEqual(r.json()["Version"], 1)
        self.assertEqual(self.srv.get("/v1/weft/proxy/web-1-sidecar/other").status, 404)

    def blocking(self, index, wait, out):
        t0 = time.time()
        r = self.snap("?index=%d&wait=%s" % (index, wait))
        out.append((r, time.time() - t0))

    def start_blocking(self, wait="10s"):
        index = self.ok(self.snap()).index
        out = []
        t = threading.Thread(target=self.blocking, args=(index, wait, out))
        t.start()
        time.sleep(0.3)
        self.assertEqual(out, [], "a blocking query returned before any change")
        return index, t, out

    def test_blocking_wakes_on_what_it_depends_on(self):
        m = self.mesh
        # an intention for web
        index, t, out = self.start_blocking()
        self.ok(self.srv.put(exact("db", "web"), {"Action": "deny"}))
        t.join(15)
        r, took = out[0]
        self.assertLess(took, 5)
        self.assertGreater(r.index, index)
        self.assertIn(("db", "web"), [(i["SourceName"], i["DestinationName"])
                                      for i in r.json()["Intentions"]["Items"]])
        # a new api instance (its sidecar, on another node)
        index, t, out = self.start_blocking()
        api2 = free_port()
        m.register("n2", "127.0.0.2", sidecar("api", "api-2-sidecar", api2, 8081, []))
        t.join(15)
        r, took = out[0]
        self.assertLess(took, 5)
        eps = r.json()["Upstreams"][0]["Endpoints"]
        self.assertIn(("127.0.0.2", api2), [(e["Address"], e["Port"]) for e in eps])
        # that instance goes critical: it leaves the endpoints
        index, t, out = self.start_blocking()
        m.register("n2", "127.0.0.2", sidecar("api", "api-2-sidecar", api2, 8081, []),
                   checks=[{"CheckID": "api2-alive", "ServiceID": "api-2-sidecar",
                            "Status": "critical"}])
        t.join(15)
        r, took = out[0]
        self.assertLess(took, 5)
        eps = r.json()["Upstreams"][0]["Endpoints"]
        self.assertNotIn(("127.0.0.2", api2), [(e["Address"], e["Port"]) for e in eps])
        # unrelated changes: a service, its sidecar, an intention for it
        index, t, out = self.start_blocking(wait="1500ms")
        m.register("n1", "127.0.0.1", {"Service": "other", "ID": "other-1", "Port": 7000})
        m.register("n1", "127.0.0.1", sidecar("other", "other-1-sidecar", free_port(), 7000,
                                               [("db", free_port())]))
        self.ok(self.srv.put(exact("web", "other"), {"Action": "allow"}))
        self.ok(self.srv.put("/v1/config", {"Kind": "service-defaults", "Name": "other",
                                            "Protocol": "http"}))
        t.join(15)
        r, took = out[0]
        self.assertGreaterEqual(took, 1.4, "woken by a change web's proxy does not depend on")
        self.assertEqual(r.index, index)


class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"app")


class NewerServer(http.server.BaseHTTPRequestHandler):
    """A newer weft-server as the proxy sees it: forwards every request to
    the real one and, while `newer` is set, answers snapshots in a Version 2
    with sections version 1 does not have. Records the paths asked."""
    protocol_version = "HTTP/1.1"
    upstream = None
    newer = False
    paths = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        cls = type(self)
        cls.paths.append(self.path)
        req = urllib.request.Request("http://" + cls.upstream + self.path)
        if self.headers.get("X-Consul-Token"):
            req.add_header("X-Consul-Token", self.headers["X-Consul-Token"])
        try:
            resp = urllib.request.urlopen(req, timeout=400)
            status, body, headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            status, body, headers = e.code, e.read(), e.headers
        if status == 200 and cls.newer and self.path.split("?")[0].endswith("/snapshot"):
            doc = json.loads(body)
            doc["Version"] = 2
            doc["RateLimits"] = {"RequestsPerSecond": 5}
            doc["Intentions"]["JWTProviders"] = [{"Name": "idp", "Issuer": "https://idp"}]
            body = json.dumps(doc).encode()
        try:
            self.send_response(status)
            for h in ("X-Consul-Index", "Content-Type"):
                if headers.get(h):
                    self.send_header(h, headers[h])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the proxy stopped during its long poll


@unittest.skipUnless(OPENSSL, "the openssl command is not installed")
class ProxyFromServerTest(harness.ServerTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="weft-proxysnap-e2e-")
        cls.mesh = Mesh(cls.srv)
        cls.app = http.server.ThreadingHTTPServer(("127.0.0.1", cls.mesh.web_app), App)
        threading.Thread(target=cls.app.serve_forever, daemon=True).start()
        for svc in ("web", "api", "db"):
            setattr(cls, svc + "_leaf", make_leaf(cls.srv, cls.tmp, svc))
        cls.bundle = os.path.join(cls.tmp, "roots.pem")
        with open(cls.bundle, "w") as f:
            f.write(cls.srv.get("/v1/connect/ca/roots?pem=true").body)
        tok = cls.srv.put("/v1/acl/token", {"Kind": "service", "ServiceName": "web"}).json()
        cls.token_file = os.path.join(cls.tmp, "web.token")
        with open(cls.token_file, "w") as f:
            f.write(tok["SecretID"] + "\n")
        os.chmod(cls.token_file, 0o600)
        r = cls.srv.put("/v1/config", {"Kind": "service-defaults", "Name": "web",
                                       "Protocol": "http"})
        assert r.status == 200, r

    @classmethod
    def tearDownClass(cls):
        cls.app.shutdown()
        cls.app.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def proxy(self, *extra, token_file=True):
        cert, key = self.web_leaf
        cmd = [PROXY, "--server", "http://" + self.srv.addr, "--proxy-id", "web-1-sidecar",
               "--cert", cert, "--key", key, "--log-level", "debug"] + list(extra)
        if token_file:
            cmd += ["--token-file", self.token_file]
        with open(os.path.join(self.tmp, "proxy.log"), "wb") as log:
            return subprocess.Popen(cmd, stdout=log, stderr=log)

    def proxy_log(self):
        with open(os.path.join(self.tmp, "proxy.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def call(self, leaf, timeout=3):
        """GET / on web's inbound with leaf's identity: (status, headers)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(self.bundle)
        ctx.load_cert_chain(*leaf)
        with socket.create_connection(("127.0.0.1", self.mesh.web_port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
        return int(head.split(" ", 2)[1]), head

    def wait_listening(self, proc):
        deadline = time.time() + 15
        while time.time() < deadline:
            self.assertIsNone(proc.poll(), self.proxy_log())
            try:
                socket.create_connection(("127.0.0.1", self.mesh.web_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.fail("weft-proxy did not listen:\n" + self.proxy_log())

    def until(self, leaf, status, limit):
        """Calls until the answer is status; returns the seconds it took."""
        t0 = time.time()
        while True:
            got, head = self.call(leaf)
            if got == status:
                return time.time() - t0
            if time.time() - t0 > limit:
                self.fail("still %d after %.1f s (want %d):\n%s" % (got, limit, status, head))
            time.sleep(0.02)

    def wait_log(self, text, limit=10):
        deadline = time.time() + limit
        while text not in self.proxy_log():
            self.assertLess(time.time(), deadline, self.proxy_log())
            time.sleep(0.05)

    def test_intentions_follow_the_server(self):
        self.assertEqual(self.srv.put(exact("db", "web"), {"Action": "allow"}).status, 200)
        self.assertEqual(self.srv.put(exact("api", "web"), {"Action": "allow"}).status, 200)
        p = self.proxy()
        try:
            self.wait_listening(p)
            self.assertIn("config from server", self.proxy_log())
            self.assertEqual(self.call(self.db_leaf)[0], 200)
            # deny: in force at the proxy within 1 s
            self.assertEqual(self.srv.put(exact("db", "web"), {"Action": "deny"}).status, 200)
            took = self.until(self.db_leaf, 403, 1.0)
            self.assertLess(took, 1.0)
            status, head = self.call(self.db_leaf)
            self.assertIn("X-Weft-Denied-By", head)
            self.assertEqual(self.call(self.api_leaf)[0], 200)
            # the server goes away: the proxy keeps serving on its snapshot
            self.srv.stop()
            time.sleep(1.0)
            self.assertIsNone(p.poll())
            self.assertEqual(self.call(self.db_leaf)[0], 403)
            self.assertEqual(self.call(self.api_leaf)[0], 200)
            # back: the proxy follows changes again
            self.srv.start()
            self.assertEqual(self.srv.put(exact("db", "web"), {"Action": "allow"}).status, 200)
            self.until(self.db_leaf, 200, 45)
            self.assertIn("keeping the current snapshot", self.proxy_log())
            # a registration that cannot be expressed (its upstream's port is
            # the inbound's): the server says so, the proxy keeps its snapshot
            m = self.mesh
            m.register("n1", "127.0.0.1", sidecar("web", "web-1-sidecar", m.web_port, m.web_app,
                                                  [("api", m.web_port)]))
            self.wait_log("answered 400: Proxy.Upstreams[0].LocalBindPort")
            time.sleep(0.8)   # retried meanwhile: still one line
            self.assertEqual(self.proxy_log().count("answered 400"), 1, self.proxy_log())
            self.assertEqual(self.call(self.db_leaf)[0], 200)
            m.register("n1", "127.0.0.1", sidecar("web", "web-1-sidecar", m.web_port, m.web_app,
                                                  [("api", m.up_api)]))
            self.assertEqual(self.srv.put(exact("db", "web"), {"Action": "deny"}).status, 200)
            self.until(self.db_leaf, 403, 1.0)
        finally:
            p.terminate()
            p.wait(10)

    def test_refused_snapshot_keeps_the_current_one(self):
        """The proxy's registration now fronts api: the server's snapshot
        (for an admin token) is for another service, which the running proxy
        refuses with one log line, keeping web's."""
        admin_file = os.path.join(self.tmp, "admin.token")
        with open(admin_file, "w") as f:
            f.write(self.srv.token)
        os.chmod(admin_file, 0o600)
        self.assertEqual(self.srv.put(exact("api", "web"), {"Action": "allow"}).status, 200)
        m = self.mesh
        p = self.proxy("--token-file", admin_file, token_file=False)
        try:
            self.wait_listening(p)
            other = sidecar("web", "web-1-sidecar", m.web_port, m.web_app, [("api", m.up_api)])
            other["Proxy"]["DestinationServiceName"] = "api"
            m.register("n1", "127.0.0.1", other)
            self.wait_log("config from server refused")
            time.sleep(0.3)
            refused = [ln for ln in self.proxy_log().splitlines()
                       if "config from server refused" in ln]
            self.assertEqual(len(refused), 1, refused)
            self.assertIn('Proxy.Service: "api" is not the running proxy\'s "web"', refused[0])
            self.assertEqual(self.call(self.api_leaf)[0], 200)
        finally:
            m.register("n1", "127.0.0.1", sidecar("web", "web-1-sidecar", m.web_port, m.web_app,
                                                  [("api", m.up_api)]))
            p.terminate()
            p.wait(10)

    def test_snapshot_of_a_newer_server_is_refused(self):
        """docs/proxy-config.md "Versions": the proxy asks for the version it
        speaks; a snapshot in a newer one is refused as a whole, with one log
        line naming what it cannot enforce and counters in /stats, and the
        running snapshot stays in force; a snapshot in its version is taken
        again after that."""
        self.assertEqual(self.srv.put(exact("db", "web"), {"Action": "allow"}).status, 200)
        self.assertEqual(self.srv.put(exact("api", "web"), {"Action": "allow"}).status, 200)
        NewerServer.upstream = self.srv.addr
        NewerServer.newer = False
        NewerServer.paths = []
        fake = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), NewerServer)
        fake.daemon_threads = True
        threading.Thread(target=fake.serve_forever, daemon=True).start()
        admin = free_port()
        cert, key = self.web_leaf
        cmd = [PROXY, "--server", "http://127.0.0.1:%d" % fake.server_address[1],
               "--proxy-id", "web-1-sidecar", "--cert", cert, "--key", key,
               "--token-file", self.token_file, "--admin", "127.0.0.1:%d" % admin]
        with open(os.path.join(self.tmp, "proxy.log"), "wb") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=log)
        try:
            self.wait_listening(p)
            self.assertEqual(self.call(self.db_leaf)[0], 200)
            # the newer server: db is now denied, in a Version 2 snapshot
            NewerServer.newer = True
            self.assertEqual(self.srv.put(exact("db", "web"), {"Action": "deny"}).status, 200)
            self.wait_log("config from server refused")
            line = [ln for ln in self.proxy_log().splitlines()
                    if "config from server refused" in ln][0]
            self.assertIn("Version: 2 is newer than this proxy's 1: refused as a whole", line)
            self.assertIn("what this proxy cannot enforce: RateLimits, Intentions.JWTProviders",
                          line)
            self.assertIn("the previous snapshot stays in force", line)
            # not enforced in part: the running snapshot (db allowed) stays
            time.sleep(0.3)
            self.assertEqual(self.call(self.db_leaf)[0], 200)
            stats = urllib.request.urlopen("http://127.0.0.1:%d/stats" % admin,
                                           timeout=5).read().decode()
            self.assertIn('weft_proxy_config_refused_total{reason="newer-version"} 1\n', stats)
            self.assertIn('weft_proxy_config_unenforceable_fields_total{section="RateLimits"} 1\n',
                          stats)
            self.assertIn('weft_proxy_config_unenforceable_fields_total{section="Intentions"} 1\n',
                          stats)
            self.assertIn('weft_proxy_config_version{of="current"} 1\n', stats)
            # every request said which version the proxy speaks
            snaps = [x for x in NewerServer.paths if "/snapshot" in x]
            self.assertGreaterEqual(len(snaps), 2)
            for path in snaps:
                self.assertIn("version=1", path)
            # the server answers in version 1 again: taken at the next change
            NewerServer.newer = False
            self.assertEqual(self.srv.put(exact("cache", "web"), {"Action": "allow"}).status, 200)
            self.until(self.db_leaf, 403, 5)
        finally:
            p.terminate()
            p.wait(10)
            fake.shutdown()
            fake.server_close()

    def test_z_new_roots_reach_the_proxy(self):
        """A root rotation: the new bundle is written where --trust-bundle
        says and the TLS contexts reload; callers with leaves of the old
        root still get through (the bundle keeps it)."""
        self.assertEqual(self.srv.put(exact("api", "web"), {"Action": "allow"}).status, 200)
        bundle = os.path.join(self.tmp, "bundle-from-server.pem")
        p = self.proxy("--trust-bundle", bundle)
        try:
            self.wait_listening(p)
            with open(bundle) as f:
                self.assertEqual(f.read(), self.srv.get("/v1/connect/ca/roots?pem=true").body)
            r = self.srv.put("/v1/connect/ca/configuration", {"RotateRoot": True})
            self.assertEqual(r.status, 200, r)
            new = self.srv.get("/v1/connect/ca/roots?pem=true").body
            deadline = time.time() + 10
            while True:
                with open(bundle) as f:
                    if f.read() == new and "tls reloaded: listener=inbound" in self.proxy_log():
                        break
                self.assertLess(time.time(), deadline, self.proxy_log())
                time.sleep(0.05)
            self.assertEqual(self.call(self.api_leaf)[0], 200)
        finally:
            p.terminate()
            p.wait(10)

    def test_bad_token_is_a_clear_error(self):
        p = self.proxy("--token", "not-a-token", token_file=False)
        rc = p.wait(20)
        self.assertNotEqual(rc, 0)
        log = self.proxy_log()
        self.assertIn("403", log)
        self.assertIn("--token", log)

    def test_unreachable_server_at_start(self):
        cert, key = self.web_leaf
        p = subprocess.run([PROXY, "--server", "http://127.0.0.1:%d" % free_port(),
                            "--proxy-id", "web-1-sidecar", "--cert", cert, "--key", key,
                            "--server-timeout", "1"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        err = p.stderr.decode()
        self.assertIn("no snapshot for proxy web-1-sidecar within 1000 ms", err)

    def test_needs_cert_and_key(self):
        p = subprocess.run([PROXY, "--server", "http://" + self.srv.addr, "--proxy-id",
                            "web-1-sidecar", "--token-file", self.token_file],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("give --cert and --key", p.stderr.decode())


@unittest.skipUnless(OPENSSL, "the openssl command is not installed")
class ProxyOverHttpsTest(harness.ServerTest):
    """--server https://... verified with --server-ca."""

    @classmethod
    def setUpClass(cls):
        from test_https import Certs
        cls.certs = Certs()
        cert, key = cls.certs.issue("server", "IP:127.0.0.1")
        cls.https_port = free_port()
        cls.server_args = ("--https-addr", "127.0.0.1:%d" % cls.https_port,
                           "--tls-cert", cert, "--tls-key", key)
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="weft-proxysnap-https-")
        cls.mesh = Mesh(cls.srv)
        cls.leaf = make_leaf(cls.srv, cls.tmp, "web")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        cls.certs.close()
        super().tearDownClass()

    def run_proxy(self, *extra):
        cmd = [PROXY, "--server", "https://127.0.0.1:%d" % self.https_port,
               "--proxy-id", "web-1-sidecar", "--token", self.srv.token,
               "--cert", self.leaf[0], "--key", self.leaf[1]] + list(extra)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def test_https_with_server_ca(self):
        p = self.run_proxy("--server-ca", self.certs.ca)
        try:
            deadline = time.time() + 15
            while True:
                self.assertIsNone(p.poll(), p.stderr.read().decode() if p.poll() else "")
                try:
                    socket.create_connection(("127.0.0.1", self.mesh.web_port), 0.2).close()
                    break
                except OSError:
                    self.assertLess(time.time(), deadline)
                    time.sleep(0.05)
        finally:
            p.terminate()
            _, err = p.communicate(timeout=10)
        self.assertIn("config from server: server=https://127.0.0.1:%d" % self.https_port,
                      err.decode())

    def test_https_unverified_server_is_refused(self):
        p = self.run_proxy("--server-timeout", "1")
        _, err = p.communicate(timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no snapshot for proxy web-1-sidecar within 1000 ms", err.decode())


@unittest.skipUnless(OPENSSL, "the openssl command is not installed")
class ProxyHttpsVerificationTest(harness.ServerTest):
    """weft-proxy checks the https server's certificate: the host name it
    was asked for (the certificate is for DNS:localhost only) and the CA of
    --server-ca. A server that fails either is refused with the reason and
    the proxy does not start."""

    @classmethod
    def setUpClass(cls):
        from test_https import Certs
        cls.certs = Certs()
        cls.other = Certs(name="another CA")
        cert, key = cls.certs.issue("server", "DNS:localhost")
        cls.https_port = free_port()
        cls.server_args = ("--https-addr", "127.0.0.1:%d" % cls.https_port,
                           "--tls-cert", cert, "--tls-key", key)
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="weft-proxysnap-verify-")
        cls.mesh = Mesh(cls.srv)
        cls.leaf = make_leaf(cls.srv, cls.tmp, "web")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        cls.certs.close()
        cls.other.close()
        super().tearDownClass()

    def run_proxy(self, host, ca, *extra):
        cmd = [PROXY, "--server", "https://%s:%d" % (host, self.https_port),
               "--proxy-id", "web-1-sidecar", "--token", self.srv.token, "--server-ca", ca,
               "--cert", self.leaf[0], "--key", self.leaf[1]] + list(extra)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def refused(self, host, ca):
        p = self.run_proxy(host, ca, "--server-timeout", "1")
        try:
            _, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
        err = err.decode()
        self.assertNotEqual(p.returncode, 0, err)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.mesh.web_port), 0.2).close()
        return err

    def test_name_in_certificate(self):
        p = self.run_proxy("localhost", self.certs.ca)
        try:
            deadline = time.time() + 15
            while True:
                self.assertIsNone(p.poll(), p.stderr.read().decode() if p.poll() else "")
                try:
                    socket.create_connection(("127.0.0.1", self.mesh.web_port), 0.2).close()
                    break
                except OSError:
                    self.assertLess(time.time(), deadline)
                    time.sleep(0.05)
            time.sleep(0.3)   # the long poll is under way
        finally:
            t0 = time.time()
            p.terminate()
            _, err = p.communicate(timeout=10)
            took = time.time() - t0
        self.assertEqual(p.returncode, 0, err.decode())
        self.assertIn("config from server: server=https://localhost:%d" % self.https_port,
                      err.decode())
        # SIGTERM interrupts the long poll at once
        self.assertLess(took, 1.0)

    def test_address_not_in_certificate(self):
        err = self.refused("127.0.0.1", self.certs.ca)
        self.assertIn("--server: no snapshot for proxy web-1-sidecar within 1000 ms: cannot reach "
                      "weft-server at https://127.0.0.1:%d: TLS: the server's certificate is "
                      "refused: IP address mismatch (it is not for 127.0.0.1; subject /CN=server)"
                      % self.https_port, err)

    def test_certificate_of_another_ca(self):
        err = self.refused("localhost", self.other.ca)
        self.assertIn("cannot reach weft-server at https://localhost:%d: TLS: the server's "
                      "certificate is refused: unable to get local issuer certificate (not signed "
                      "by a CA of --server-ca %s; subject /CN=server)"
                      % (self.https_port, self.other.ca), err)

    def test_plain_http_server(self):
        """https:// to weft-server's plain HTTP port: the handshake fails."""
        cmd = [PROXY, "--server", "https://" + self.srv.addr, "--proxy-id", "web-1-sidecar",
               "--token", self.srv.token, "--server-ca", self.certs.ca, "--cert", self.leaf[0],
               "--key", self.leaf[1], "--server-timeout", "1"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot reach weft-server at https://%s: TLS handshake failed: "
                      % self.srv.addr, p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
