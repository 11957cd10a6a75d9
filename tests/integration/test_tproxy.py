"""Transparent proxying in network namespaces (docs/transparent-proxy.md).

Two "VMs": network namespaces joined by a veth pair, with addresses of
10.213.N.0/24 that exist only inside them (the host's interfaces and routes
are never touched). vm-c runs web's app (a client) and web's sidecar,
vm-s runs api's app (an HTTP server on 0.0.0.0:8080) and api's sidecar.
weft-server runs on the host's loopback, which the namespaces cannot reach:
the test registers both VMs' services there (web's sidecar with
Proxy.Mode "transparent"), takes each proxy's snapshot from
GET /v1/weft/proxy/:id/snapshot, adds the leaf and key signed by the
server's CA, and gives it to weft-proxy --config.

weftctl install transparent-proxy writes the rules in both namespaces.
Then web's app, running as a user that is not the proxy's, calls api at
its catalog address, plain http://10.213.N.2:8080, as without a mesh, and
the call goes web's transparent listener -> web's outbound to api =mTLS=>
api's inbound -> api's app: the app sees web's SPIFFE ID in
X-Forwarded-Client-Cert, and both proxies count it in /stats. A direct
connection that skips web's sidecar lands on api's mTLS inbound (the
inbound redirect) and never reaches the app; a non-mesh destination is
relayed as it is (passthrough); a deny intention stops the call; a second
install replaces the rules instead of adding to them, and uninstall
removes them. Needs root (ip netns, iptables); skips, saying why,
otherwise. The namespaces are removed at the end, also on failure."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BUILDDIR  # noqa: E402

PROXY = os.path.join(BUILDDIR, "dataplane", "weft-proxy")
CTL = harness.CTL_BIN
IP = shutil.which("ip") or "/usr/sbin/ip"
OPENSSL = shutil.which("openssl")
APP_UID = 4321             # web's app: not the proxy's user (root), so redirected
N = 100 + os.getpid() % 100
NS_C, NS_S = "weft-tpc-%d" % os.getpid(), "weft-tps-%d" % os.getpid()
VETH_C, VETH_S = "wtpc%d" % (os.getpid() % 100000), "wtps%d" % (os.getpid() % 100000)
ADDR_C, ADDR_S = "10.213.%d.1" % N, "10.213.%d.2" % N
APP_PORT, SIDECAR_PORT, OUTBOUND_PORT, UPSTREAM_PORT = 8080, 21000, 15001, 9191
PLAIN_PORT = 9999          # a non-mesh server on vm-s (passthrough)
ADMIN = "127.0.0.1:19000"  # each proxy's admin, in its own namespace


def why_not():
    """Why this test cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (ip netns and iptables)"
    for prog in ("iptables-restore", "iptables-save", "setpriv"):
        if shutil.which(prog) is None:
            return "%s is not installed (Debian's iptables, util-linux)" % prog
    if OPENSSL is None:
        return "the openssl command is not installed"
    probe = "weft-tpprobe-%d" % os.getpid()
    p = subprocess.run([IP, "netns", "add", probe], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    if p.returncode != 0:
        return "ip netns add is not permitted here: %s" % p.stderr.decode().strip()
    try:
        q = subprocess.run([IP, "netns", "exec", probe, "iptables-save", "-t", "nat"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        if q.returncode != 0:
            return "iptables does not work in a network namespace here: %s" % (
                q.stderr.decode().strip())
    finally:
        subprocess.run([IP, "netns", "del", probe], timeout=10)
    return None


WHY_NOT = why_not()


def sh(*cmd, check=True, timeout=30, **kw):
    p = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d: %s%s" % (" ".join(cmd), p.returncode,
                                                    p.stdout.decode(), p.stderr.decode()))
    return p


def in_ns(ns, *cmd, **kw):
    return sh(IP, "netns", "exec", ns, *cmd, **kw)


# api's app: answers every GET with what it saw, as JSON.
APP_SRC = r"""
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        sys.stderr.write("app: %s %s\n" % (self.client_address[0], self.path)); sys.stderr.flush()
    def do_GET(self):
        out = json.dumps({"path": self.path, "peer": self.client_address[0],
                          "xfcc": self.headers.get("X-Forwarded-Client-Cert", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""

# A non-mesh TCP server: says "plain" and closes.
PLAIN_SRC = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(b"plain\n"); c.close()
"""

# The client: one GET (or a raw connect with "raw"), printing the result as
# JSON: {"status": ..., "body": ...} or {"error": ...}.
CLIENT_SRC = r"""
import json, socket, sys, urllib.request
url = sys.argv[1]
try:
    if url.startswith("raw:"):
        host, port = url[4:].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as s:
            data = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
        print(json.dumps({"status": 0, "body": data.decode(errors="replace")}))
    else:
        with urllib.request.urlopen(url, timeout=5) as r:
            print(json.dumps({"status": r.status, "body": r.read().decode()}))
except Exception as e:
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
"""


@unittest.skipIf(WHY_NOT is not None, "transparent proxy test skipped: %s" % WHY_NOT)
class TransparentProxyTest(harness.ServerTest):
    procs = []

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="weft-tproxy-")
        os.chmod(cls.tmp, 0o755)
        cls.procs = []
        try:
            cls.make_network()
            cls.register()
            cls.start_apps()
            cls.web = cls.start_proxy(NS_C, "web-1-sidecar", "web")
            cls.api = cls.start_proxy(NS_S, "api-1-sidecar", "api")
        except BaseException:
            cls.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        bad = cls.cleanup()
        super().tearDownClass()
        # the proxies stop cleanly on SIGTERM, and sanitizers are quiet
        if bad:
            raise AssertionError("\n".join(bad))

    @classmethod
    def cleanup(cls):
        bad = []
        for p, log in cls.procs:
            name = os.path.basename(log.name)[:-4]
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
                    bad.append("%s did not stop on SIGTERM" % name)
            log.close()
            if name.endswith("-proxy"):
                text = cls.log_text(name)
                if p.returncode != 0 or "Sanitizer" in text or "runtime error:" in text:
                    bad.append("%s exited %s:\n%s" % (name, p.returncode, text[-3000:]))
        cls.procs = []
        for ns in (NS_C, NS_S):
            subprocess.run([IP, "netns", "del", ns], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)
        if not os.environ.get("WEFT_KEEP_TEST_DIRS"):
            shutil.rmtree(cls.tmp, ignore_errors=True)
        return bad

    # ---- set-up ----

    @classmethod
    def make_network(cls):
        sh(IP, "netns", "add", NS_C)
        sh(IP, "netns", "add", NS_S)
        # the pair is made inside vm-c and one end moved: nothing is left
        # on the host, even for a moment
        in_ns(NS_C, IP, "link", "add", VETH_C, "type", "veth", "peer", "name", VETH_S)
        in_ns(NS_C, IP, "link", "set", VETH_S, "netns", NS_S)
        for ns, dev, addr in ((NS_C, VETH_C, ADDR_C), (NS_S, VETH_S, ADDR_S)):
            in_ns(ns, IP, "addr", "add", addr + "/24", "dev", dev)
            in_ns(ns, IP, "link", "set", dev, "up")
            in_ns(ns, IP, "link", "set", "lo", "up")

    @classmethod
    def register(cls):
        srv = cls.srv

        def reg(node, addr, svc):
            r = srv.put("/v1/catalog/register", {"Node": node, "Address": addr, "Service": svc})
            assert r.status == 200, r

        reg("vm-c", ADDR_C, {"Service": "web", "ID": "web-1", "Port": APP_PORT})
        reg("vm-c", ADDR_C, {
            "Service": "web-sidecar-proxy", "ID": "web-1-sidecar", "Kind": "connect-proxy",
            "Port": SIDECAR_PORT,
            "Proxy": {"DestinationServiceName": "web", "LocalServicePort": APP_PORT,
                      "Mode": "transparent",
                      "TransparentProxy": {"OutboundListenerPort": OUTBOUND_PORT},
                      "Upstreams": [{"DestinationName": "api",
                                     "LocalBindPort": UPSTREAM_PORT}]}})
        reg("vm-s", ADDR_S, {"Service": "api", "ID": "api-1", "Port": APP_PORT})
        reg("vm-s", ADDR_S, {
            "Service": "api-sidecar-proxy", "ID": "api-1-sidecar", "Kind": "connect-proxy",
            "Port": SIDECAR_PORT,
            "Proxy": {"DestinationServiceName": "api", "LocalServicePort": APP_PORT,
                      "Mode": "transparent"}})
        # HTTP: api's sidecar adds the caller's identity, and a denial is a 403
        r = srv.put("/v1/config", {"Kind": "service-defaults", "Name": "api", "Protocol": "http"})
        assert r.status == 200, r
        cls.intention("web", "api", "allow")

    @classmethod
    def intention(cls, src, dst, action):
        r = cls.srv.put("/v1/connect/intentions/exact?source=%s&destination=%s" % (src, dst),
                        {"Action": action})
        assert r.status == 200, r

    @classmethod
    def spawn(cls, ns, name, cmd):
        log = open(os.path.join(cls.tmp, name + ".log"), "wb")
        p = subprocess.Popen([IP, "netns", "exec", ns] + cmd, stdout=log, stderr=log)
        cls.procs.append((p, log))
        return p

    @classmethod
    def start_apps(cls):
        cls.spawn(NS_S, "api-app", [sys.executable, "-c", APP_SRC, str(APP_PORT)])
        cls.spawn(NS_S, "plain", [sys.executable, "-c", PLAIN_SRC, str(PLAIN_PORT)])

    @classmethod
    def leaf(cls, service):
        key = os.path.join(cls.tmp, service + ".key")
        csr = os.path.join(cls.tmp, service + ".csr")
        sh(OPENSSL, "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
           "ec_paramgen_curve:P-256", "-keyout", key, "-out", csr, "-subj", "/CN=" + service)
        with open(csr) as f:
            r = cls.srv.request("POST", "/v1/connect/ca/sign", {"Service": service,
                                                                "CSR": f.read()})
        assert r.status == 200, r
        cert = os.path.join(cls.tmp, service + ".crt")
        with open(cert, "w") as f:
            f.write(r.json()["CertPEM"] + (r.json().get("ChainPEM") or ""))
        return cert, key

    @classmethod
    def write_snapshot(cls, pid, service):
        """The server's snapshot for pid with our leaf and key: its path."""
        r = cls.srv.get("/v1/weft/proxy/%s/snapshot" % pid)
        assert r.status == 200, r
        doc = r.json()
        if not hasattr(cls, "leaves"):
            cls.leaves = {}
        if service not in cls.leaves:
            cls.leaves[service] = cls.leaf(service)
        cert, key = cls.leaves[service]
        bundle = os.path.join(cls.tmp, service + "-bundle.pem")
        with open(bundle, "w") as f:
            f.write(doc["TLS"]["TrustBundle"]["PEM"])
        doc["TLS"]["TrustBundle"] = {"File": bundle}
        doc["TLS"]["Certificate"] = {"File": cert}
        doc["TLS"]["PrivateKey"] = {"File": key}
        path = os.path.join(cls.tmp, service + ".json")
        with open(path + ".new", "w") as f:
            json.dump(doc, f)
        os.rename(path + ".new", path)
        return path, doc

    @classmethod
    def start_proxy(cls, ns, pid, service):
        path, doc = cls.write_snapshot(pid, service)
        cls.snapshots = getattr(cls, "snapshots", {})
        cls.snapshots[service] = doc
        # web's with two workers: each has its own transparent listener
        # (SO_REUSEPORT), handing over to its own upstream listeners
        workers = "2" if doc.get("Transparent") and doc["Upstreams"] else "1"
        p = cls.spawn(ns, service + "-proxy", [PROXY, "--config", path, "--admin", ADMIN,
                                               "--workers", workers, "--log-level", "debug"])
        want = 2 + (1 if doc.get("Transparent") else 0) + len(doc["Upstreams"])
        cls.wait_log(service + "-proxy", r"listening: listener=|admin listening", want, p)
        return p

    @classmethod
    def log_text(cls, name):
        with open(os.path.join(cls.tmp, name + ".log"), "rb") as f:
            return f.read().decode(errors="replace")

    @classmethod
    def wait_log(cls, name, pattern, count=1, proc=None, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = cls.log_text(name)
            if len(re.findall(pattern, text)) >= count:
                return text
            if proc is not None and proc.poll() is not None:
                raise AssertionError("%s exited %s:\n%s" % (name, proc.returncode, text))
            time.sleep(0.05)
        raise AssertionError("no %d x %r in %s's log:\n%s" % (count, pattern, name,
                                                               cls.log_text(name)))

    # ---- helpers ----

    def call(self, url, uid=APP_UID, ns=NS_C):
        """What the client prints, run in ns as uid (root: not redirected)."""
        cmd = [IP, "netns", "exec", ns]
        if uid != 0:
            cmd += ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"]
        p = sh(*(cmd + [sys.executable, "-c", CLIENT_SRC, url]))
        return json.loads(p.stdout.decode())

    def stats(self, ns):
        r = self.call("http://%s/stats" % ADMIN, uid=0, ns=ns)
        self.assertEqual(r.get("status"), 200, r)
        return r["body"]

    def metric(self, text, name, **labels):
        total = 0
        for line in text.splitlines():
            if not line.startswith("weft_proxy_" + name + "{"):
                continue
            if all('%s="%s"' % (k, v) in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def install(self, ns, *extra):
        return sh(CTL, "install", "transparent-proxy", "--netns", ns, "--proxy-uid", "0",
                  "--inbound-port", str(SIDECAR_PORT), "--outbound-port", str(OUTBOUND_PORT),
                  *extra)

    def install_by_id(self, ns, proxy_id, check=True):
        """The ports from the proxy's snapshot on the server (asked from
        the host, before weftctl enters the namespace)."""
        return sh(CTL, "install", "transparent-proxy", "--netns", ns, "--proxy-uid", "root",
                  "--proxy-id", proxy_id, "--address", self.srv.addr, "--token", self.srv.token,
                  check=check)

    def nat(self, ns):
        return in_ns(ns, "iptables-save", "-t", "nat").stdout.decode()

    def api_url(self, path="/hello"):
        return "http://%s:%d%s" % (ADDR_S, APP_PORT, path)

    # ---- the test ----

    def test_transparent_mesh(self):
        web = self.snapshots["web"]
        td_web = web["Proxy"]["SpiffeID"]
        # The server's snapshot: the transparent listener, and api's
        # instance address as the key of the api upstream.
        self.assertEqual(web["Transparent"], {"BindAddress": "127.0.0.1",
                                              "BindPort": OUTBOUND_PORT, "Passthrough": True})
        self.assertEqual(web["Upstreams"][0]["Destinations"],
                         [{"Address": ADDR_S, "Port": APP_PORT}])
        self.assertEqual([(e["Address"], e["Port"]) for e in web["Upstreams"][0]["Endpoints"]],
                         [(ADDR_S, SIDECAR_PORT)])

        # Before any rule: web's app reaches api's app directly, in plaintext.
        r = self.call(self.api_url("/before"))
        self.assertEqual(r.get("status"), 200, r)
        self.assertEqual(json.loads(r["body"])["xfcc"], "")

        # The rules: vm-s redirects its inbound (but the plain server's
        # port), vm-c its outbound. A second install replaces the first.
        self.install(NS_S, "--exclude-inbound-port", str(PLAIN_PORT))
        self.install(NS_C, "--exclude-outbound-port", "1:2")
        out = self.install_by_id(NS_C, "web-1-sidecar").stdout.decode()
        self.assertIn("installed in netns %s: inbound TCP -> port %d, outbound TCP -> port %d"
                      % (NS_C, SIDECAR_PORT, OUTBOUND_PORT), out)
        p = self.install_by_id(NS_C, "no-such-sidecar", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no-such-sidecar", p.stderr.decode())
        rules = self.nat(NS_C)
        self.assertEqual(rules.count("-A OUTPUT -p tcp -j WEFT_OUTPUT"), 1, rules)
        self.assertEqual(rules.count("-A PREROUTING -p tcp -j WEFT_INBOUND"), 1, rules)
        self.assertNotIn("--dport 1:2", rules)     # the second install's rules only
        self.assertIn("--uid-owner 0 -j RETURN", rules)
        self.assertIn("REDIRECT --to-ports %d" % OUTBOUND_PORT, rules)

        # web's app calls api's plain address: it goes through both
        # sidecars over mTLS, and api's app sees web's identity.
        before = self.stats(NS_C)
        r = self.call(self.api_url("/through"))
        self.assertEqual(r.get("status"), 200, r)
        seen = json.loads(r["body"])
        self.assertEqual(seen["path"], "/through")
        self.assertEqual(seen["peer"], "127.0.0.1")     # from api's sidecar
        self.assertIn("URI=" + td_web, seen["xfcc"])
        after = self.stats(NS_C)
        self.assertEqual(self.metric(after, "transparent_connections_total", result="upstream")
                         - self.metric(before, "transparent_connections_total",
                                       result="upstream"), 1, after)
        self.assertGreaterEqual(self.metric(after, "tls_handshakes_total",
                                            listener="outbound:api"), 1, after)
        api_stats = self.stats(NS_S)
        self.assertGreaterEqual(self.metric(api_stats, "tls_handshakes_total",
                                            listener="inbound"), 1, api_stats)
        self.assertIn("transparent: peer=", self.log_text("web-proxy"))
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=after.encode(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

        # A connection that skips web's sidecar (root's is not redirected
        # in vm-c) lands on api's mTLS inbound, not on the app.
        app_log = self.log_text("api-app")
        r = self.call(self.api_url("/direct"), uid=0)
        self.assertIn("error", r, r)
        self.assertNotIn("/direct", self.log_text("api-app"))
        self.assertEqual(self.log_text("api-app").count("app:"), app_log.count("app:"))

        # A destination outside the mesh is relayed as it is.
        n = self.metric(self.stats(NS_C), "transparent_connections_total", result="passthrough")
        r = self.call("raw:%s:%d" % (ADDR_S, PLAIN_PORT))
        self.assertEqual(r.get("body"), "plain\n", r)
        self.assertEqual(self.metric(self.stats(NS_C), "transparent_connections_total",
                                     result="passthrough"), n + 1)

        # Deny web -> api: api's proxy, given its new snapshot, stops the call.
        self.intention("web", "api", "deny")
        self.write_snapshot("api-1-sidecar", "api")
        self.api.send_signal(signal.SIGHUP)
        self.wait_log("api-proxy", r"config reloaded")
        r = self.call(self.api_url("/denied"))
        self.assertIn("HTTP Error 403", r.get("error", ""), r)
        self.assertNotIn("/denied", self.log_text("api-app"))
        api_stats = self.stats(NS_S)
        self.assertGreaterEqual(self.metric(api_stats, "intention_denials_total",
                                            source=td_web, destination="api"), 1, api_stats)
        self.intention("web", "api", "allow")
        self.write_snapshot("api-1-sidecar", "api")
        self.api.send_signal(signal.SIGHUP)
        self.wait_log("api-proxy", r"config reloaded", count=2)
        self.assertEqual(self.call(self.api_url("/again")).get("status"), 200)

        # Uninstall: the rules are gone, and calls no longer pass web's
        # transparent listener.
        out = sh(CTL, "uninstall", "transparent-proxy", "--netns", NS_C).stdout.decode()
        self.assertIn("removed", out)
        self.assertNotIn("WEFT_", self.nat(NS_C))
        n = self.metric(self.stats(NS_C), "transparent_connections_total", result="upstream")
        r = self.call(self.api_url("/after"))
        self.assertIn("error", r, r)       # straight to api's inbound: mTLS only
        self.assertEqual(self.metric(self.stats(NS_C), "transparent_connections_total",
                                     result="upstream"), n)
        out = sh(CTL, "uninstall", "transparent-proxy", "--netns", NS_C).stdout.decode()
        self.assertIn("no transparent proxy rules", out)

    def test_misuse_is_refused_not_looped(self):
        def count(result):
            return self.metric(self.stats(NS_C), "transparent_connections_total",
                               result=result)

        # dialled straight at the listener: no original destination
        n = count("not-redirected")
        r = self.call("raw:127.0.0.1:%d" % OUTBOUND_PORT, uid=0)
        self.assertEqual(r.get("body"), "", r)
        self.assertEqual(count("not-redirected"), n + 1)
        # rules naming the wrong user: the proxy's own passthrough
        # connection comes back to it, and is refused instead of relayed
        # again and again
        sh(CTL, "install", "transparent-proxy", "--netns", NS_C, "--proxy-uid", "4999",
           "--inbound-port", str(SIDECAR_PORT), "--outbound-port", str(OUTBOUND_PORT))
        try:
            n, p = count("error"), count("passthrough")
            r = self.call("raw:%s:%d" % (ADDR_S, PLAIN_PORT))
            self.assertNotEqual(r.get("body"), "plain\n", r)
            self.assertEqual(count("error"), n + 1)
            self.assertEqual(count("passthrough"), p + 1)    # to itself, refused there
            self.assertIn("reason=loop", self.log_text("web-proxy"))
        finally:
            sh(CTL, "uninstall", "transparent-proxy", "--netns", NS_C)


class InstallFlagsTest(unittest.TestCase):
    """What needs neither root nor a namespace: --dry-run and the errors."""

    def ctl(self, *args):
        return subprocess.run([CTL] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=30)

    def test_dry_run_prints_the_rules(self):
        p = self.ctl("install", "transparent-proxy", "--proxy-uid", "995",
                     "--inbound-port", "21000", "--exclude-inbound-port", "22",
                     "--exclude-outbound-cidr", "169.254.169.254", "--dry-run")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode().splitlines()
        self.assertEqual(out[0], "*nat")
        self.assertEqual(out[-1], "COMMIT")
        self.assertIn("-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001", out)
        self.assertIn("-A WEFT_OUTPUT -m owner --uid-owner 995 -j RETURN", out)
        # the exclusions come before the jump that redirects the rest
        self.assertLess(out.index("-A WEFT_INBOUND -p tcp --dport 22 -j RETURN"),
                        out.index("-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT"))
        self.assertLess(out.index("-A WEFT_OUTPUT -d 169.254.169.254 -j RETURN"),
                        out.index("-A WEFT_OUTPUT -p tcp -j WEFT_REDIRECT"))

    def test_errors(self):
        cases = [
            (["--inbound-port", "21000"], 2, "flag -proxy-uid is required"),
            (["--proxy-uid", "0"], 2, "flag -inbound-port (or -proxy-id) is required"),
            (["--proxy-uid", "no-such-user-here", "--inbound-port", "1"], 2,
             "\"no-such-user-here\" is not a user ID or a known user"),
            (["--proxy-uid", "0", "--inbound-port", "1", "--exclude-outbound-cidr", "x"], 2,
             "flag -exclude-outbound-cidr: \"x\" is not an IPv4 address or CIDR"),
            (["--proxy-uid", "0", "--inbound-port", "15001"], 2,
             "flag -outbound-port: 15001 is also the inbound port"),
            (["--proxy-uid", "0", "--inbound-port", "1", "--netns", "weft-no-such-ns"], 1,
             "cannot open /run/netns/weft-no-such-ns"),
        ]
        for args, rc, msg in cases:
            p = self.ctl("install", "transparent-proxy", *args)
            self.assertEqual(p.returncode, rc, (args, p.stderr))
            self.assertIn(msg, p.stderr.decode(), args)
        p = self.ctl("uninstall", "transparent-proxy", "--netns", "weft-no-such-ns")
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot open /run/netns/weft-no-such-ns", p.stderr.decode())


if __name__ == "__main__":
    harness.main()
