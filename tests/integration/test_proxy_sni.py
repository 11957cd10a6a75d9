"""weft-proxy's passthrough listener (--passthrough, --route): TLS routed by
the ClientHello's server name, never decrypted. Behind it: TLS servers
(Python ssl, certificates from the openssl command) and raw TCP servers.
Clients with SNI a.test and b.test (openssl s_client and Python ssl) reach
their own backend and see its certificate (proof nothing was decrypted);
"*.w.test" takes one label; round robin alternates endpoints; an endpoint
that refuses is skipped; unknown names, no SNI, non-TLS bytes and a
hello that never completes are closed with nothing sent and one log line
each, counted in /stats; megabytes go both ways, and a half-close in
either direction leaves the other direction open."""
import hashlib
import json
import os
import re
import shutil
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
from harness import BUILDDIR, free_port  # noqa: E402
from proxyharness import ProxyProcess, PROXY_BIN  # noqa: E402

BIG = 4 << 20


def make_cert(tmp, name, san):
    crt, key = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=" + san,
                    "-addext", "subjectAltName=DNS:" + san, "-keyout", key, "-out", crt],
                   check=True, capture_output=True, timeout=30)
    return crt, key


def recv_all(s, limit=64 << 20):
    data = bytearray()
    while len(data) < limit:
        b = s.recv(1 << 16)
        if not b:
            break
        data += b
    return bytes(data)


def recv_exact(s, n):
    data = bytearray()
    while len(data) < n:
        b = s.recv(min(1 << 16, n - len(data)))
        if not b:
            raise AssertionError("EOF after %d of %d bytes" % (len(data), n))
        data += b
    return bytes(data)


class Backend(threading.Thread):
    """A listener whose connections are served by handler(conn) in a
    thread each; counts connections."""

    def __init__(self, handler, ctx=None):
        super().__init__(daemon=True)
        self.handler, self.ctx = handler, ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False
        self.errors = []

    def run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        c.settimeout(20)
        try:
            if self.ctx is not None:
                c = self.ctx.wrap_socket(c, server_side=True)
            self.handler(c)
        except (OSError, ssl.SSLError, AssertionError) as e:
            self.errors.append(e)
        finally:
            c.close()


def tls_handler(name):
    """"PING": answers the backend's name. "ECHO" + 8-byte length + data:
    reads it all, then sends it back."""

    def handle(c):
        cmd = recv_exact(c, 4)
        if cmd == b"PING":
            c.sendall(name.encode())
        elif cmd == b"ECHO":
            n = int.from_bytes(recv_exact(c, 8), "big")
            c.sendall(recv_exact(c, n))
    return handle


def client_hello(name):
    """The first flight of a Python ssl client for name (None: no SNI)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class Proxy(ProxyProcess):
    def __init__(self, tmp, args):
        super().__init__(os.path.join(tmp, "proxy-%d.log" % free_port()), args,
                         r"listening: listener=passthrough mode=sni")


class PassthroughTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="weft-sni-")
        cls.certs = {n: make_cert(cls.tmp, n, san) for n, san in
                     [("a", "a.test"), ("b", "b.test"), ("w", "*.w.test")]}
        cls.backends = {}
        for n in ("a", "b", "w"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*cls.certs[n])
            cls.backends[n] = Backend(tls_handler(n), ctx)
        cls.raw = Backend(cls.raw_handler)
        cls.raw_seen = []
        cls.raw_digests = []
        for b in list(cls.backends.values()) + [cls.raw]:
            b.start()
        dead = socket.socket()           # a port nothing listens on
        dead.bind(("127.0.0.1", 0))
        cls.dead_port = dead.getsockname()[1]
        dead.close()
        cls.port, cls.admin_port = free_port(), free_port()
        ep = lambda n: "127.0.0.1:%d" % (cls.backends[n].port if n != "dead" else cls.dead_port)
        cls.proxy = Proxy(cls.tmp, [
            "--workers", "1",   # round robin is per worker: the test counts one
            "--passthrough", "127.0.0.1:%d" % cls.port, "--admin", "127.0.0.1:%d" % cls.admin_port,
            "--route", "a.test=" + ep("a"),
            "--route", "B.Test=" + ep("b"),
            "--route", "*.w.test=" + ep("w"),
            "--route", "rr.test=%s,%s" % (ep("a"), ep("b")),
            "--route", "failover.test=%s,%s" % (ep("dead"), ep("a")),
            "--route", "down.test=" + ep("dead"),
            "--route", "raw.test=127.0.0.1:%d" % cls.raw.port])
        # a hello that never completes: refused after the 5 s deadline
        # (checked by the last test, so that the wait overlaps the others)
        cls.slow = socket.create_connection(("127.0.0.1", cls.port), timeout=20)
        cls.slow.sendall(client_hello("a.test")[:20])
        cls.slow_start = time.monotonic()

    @classmethod
    def tearDownClass(cls):
        cls.slow.close()
        rc = cls.proxy.stop()
        for b in list(cls.backends.values()) + [cls.raw]:
            b.stop = True
            b.join(5)
            b.sock.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if rc != 0:
            raise AssertionError("weft-proxy exit status %d" % rc)

    @classmethod
    def raw_handler(cls, c):
        """Raw bytes after a hello. "half": the client sends the hello,
        data, then its FIN; we read to EOF, then answer BIG bytes and close.
        "early": we send BIG bytes and our FIN right after the hello, then
        read the client's data to EOF and keep its digest."""
        hello = recv_exact(c, 5)
        hello += recv_exact(c, int.from_bytes(hello[3:5], "big"))
        mode = recv_exact(c, 5)
        cls.raw_seen.append(mode)
        if mode == b"half ":
            data = recv_all(c)
            c.sendall(hashlib.sha256(data).digest() + bytes(range(256)) * (BIG // 256))
        elif mode == b"early":
            c.sendall(bytes(range(256)) * (BIG // 256))
            c.shutdown(socket.SHUT_WR)
            cls.raw_digests.append(hashlib.sha256(recv_all(c)).digest())

    def tls(self, name, trust, check_name=None):
        """A Python ssl client to the proxy for server_hostname name that
        trusts only backend trust's certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        for t in trust:
            ctx.load_verify_locations(self.certs[t][0])
        ctx.check_hostname = check_name is not False
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        return ctx.wrap_socket(raw, server_hostname=name)

    def ping(self, name, trust, check_name=True):
        with self.tls(name, trust, check_name) as s:
            cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
            s.sendall(b"PING")
            return cn, recv_all(s)

    def refused(self, data, reason, sni=""):
        """Sends data; the proxy must close without sending a byte."""
        before = len(self.proxy.lines(r"sni refused: .* reason=%s" % reason))
        s = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        try:
            s.sendall(data)
            try:
                got = s.recv(4096)
            except ConnectionResetError:
                got = b""
        finally:
            s.close()
        self.assertEqual(got, b"")
        line = self.proxy.wait_for(r"sni refused: .* reason=%s" % reason, count=before + 1)[-1]
        self.assertRegex(line, r'level=info .*sni refused: listener=passthrough '
                               r'peer=127\.0\.0\.1:\d+ sni="%s" reason=%s$' % (re.escape(sni), reason))

    def stats(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/stats" % self.admin_port, timeout=10) as r:
            return r.read().decode()

    def stat(self, text, series):
        m = re.search(r"^%s (\d+)$" % re.escape(series), text, re.M)
        self.assertIsNotNone(m, "%s not in:\n%s" % (series, text))
        return int(m.group(1))

    def test_openssl_s_client_reaches_each_backend(self):
        for name in ("a", "b"):
            r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port,
                                "-servername", name + ".test", "-CAfile", self.certs[name][0],
                                "-verify_return_error", "-quiet"],
                               input=b"PING", capture_output=True, timeout=20)
            self.assertEqual(r.stdout, name.encode(), r.stderr)
            self.assertIn(b"CN = %s.test" % name.encode(), r.stderr)

    def test_python_clients_see_the_backend_certificate(self):
        self.assertEqual(self.ping("a.test", "a"), ("a.test", b"a"))
        # names ignore case, in the route and in the hello
        self.assertEqual(self.ping("b.TEST", "b"), ("b.test", b"b"))
        # a client that trusts another backend's certificate fails its own
        # verification: what it sees is b's certificate, not a proxy's
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.ping("b.test", "a")

    def test_wildcard_route_takes_one_label(self):
        self.assertEqual(self.ping("x.w.test", "w"), ("*.w.test", b"w"))
        self.assertEqual(self.ping("other.w.test", "w"), ("*.w.test", b"w"))
        self.refused(client_hello("a.x.w.test"), "no-route", "a.x.w.test")
        self.refused(client_hello("w.test"), "no-route", "w.test")

    def test_round_robin(self):
        got = []
        for i in range(4):
            # which certificate comes next is not known: trust either
            with self.tls("rr.test", "ab", check_name=False) as s:
                s.sendall(b"PING")
                got.append(recv_all(s))
        self.assertIn(got[:2], ([b"a", b"b"], [b"b", b"a"]))
        self.assertEqual(got[2:], got[:2])

    def test_failover_to_the_next_endpoint(self):
        before = self.stat(self.stats(), 'weft_proxy_upstream_connect_failures_total{listener="passthrough"}')
        a_before = self.backends["a"].accepted
        for _ in range(2):
            with self.tls("failover.test", "a", check_name=False) as s:
                s.sendall(b"PING")
                self.assertEqual(recv_all(s), b"a")
        self.assertEqual(self.backends["a"].accepted, a_before + 2)
        self.proxy.wait_for(r"sni upstream 127\.0\.0\.1:%d: cannot connect: listener=passthrough "
                            r".* sni=\"failover\.test\" .*\(trying the next endpoint\)" % self.dead_port)
        after = self.stat(self.stats(), 'weft_proxy_upstream_connect_failures_total{listener="passthrough"}')
        self.assertGreaterEqual(after, before + 1)
        # a route whose every endpoint refuses: closed, nothing sent
        s = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        s.sendall(client_hello("down.test"))
        try:
            self.assertEqual(s.recv(100), b"")
        except ConnectionResetError:
            pass
        s.close()
        self.proxy.wait_for(r"sni upstream unreachable: listener=passthrough .* sni=\"down\.test\" "
                            r"route=down\.test endpoints=1")

    def test_unknown_name_no_name_and_not_tls_are_closed(self):
        text = self.stats()
        series = 'weft_proxy_sni_refused_total{listener="passthrough",reason="%s"}'
        before = {r: self.stat(text, series % r) for r in ("no-route", "no-sni", "not-tls")}
        self.refused(client_hello("c.test"), "no-route", "c.test")
        self.refused(client_hello(None), "no-sni")
        self.refused(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", "not-tls")
        self.refused(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "not-tls")  # a ServerHello
        # a Python ssl client without SNI fails its handshake
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as raw:
            with self.assertRaises((ssl.SSLError, OSError)):
                ctx.wrap_socket(raw).do_handshake()
        # openssl s_client with a name nobody routes
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port,
                            "-servername", "nobody.test"], input=b"", capture_output=True, timeout=20)
        self.assertNotIn(b"BEGIN CERTIFICATE", r.stdout)
        text = self.stats()
        after = {r: self.stat(text, series % r) for r in before}
        self.assertEqual(after["no-route"], before["no-route"] + 2)
        self.assertGreaterEqual(after["no-sni"], before["no-sni"] + 2)
        self.assertEqual(after["not-tls"], before["not-tls"] + 2)

    def test_large_transfer_both_ways_over_tls(self):
        data = os.urandom(BIG)
        with self.tls("a.test", "a") as s:
            s.sendall(b"ECHO" + len(data).to_bytes(8, "big") + data)
            self.assertEqual(recv_exact(s, len(data)), data)

    def test_half_close_client_first(self):
        payload = os.urandom(BIG)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        s.sendall(client_hello("raw.test") + b"half " + payload)
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s)
        s.close()
        self.assertEqual(got[:32], hashlib.sha256(payload).digest())
        self.assertEqual(got[32:], bytes(range(256)) * (BIG // 256))

    def test_half_close_backend_first(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        hello = client_hello("raw.test")
        s.sendall(hello + b"early")
        # the backend's bytes, then its FIN...
        self.assertEqual(recv_all(s), bytes(range(256)) * (BIG // 256))
        # ...and our direction is still open
        payload = os.urandom(1 << 20)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not self.raw_digests:
            time.sleep(0.05)
        s.close()
        self.assertEqual(self.raw_digests, [hashlib.sha256(payload).digest()])
        self.assertEqual(self.raw.errors, [])
        # both sides done: the proxy closed the tunnel
        self.proxy.wait_for(r"sni tunnel closed: .* sni=\"raw\.test\" .* to-upstream=%d "
                            r"to-client=%d how=both-closed" % (len(hello) + 5 + len(payload),
                                                               BIG))

    def snapshot(self, endpoint_address, port):
        path = os.path.join(self.tmp, "snapshot-%d.json" % port)
        with open(path, "w") as f:
            json.dump({
                "Version": 1, "Index": 1,
                "Proxy": {"Service": "gw", "SpiffeID": "spiffe://td.test/ns/default/dc/dc1/svc/gw"},
                "Inbound": {"BindAddress": "127.0.0.1", "BindPort": free_port(), "AppPort": 9},
                "Intentions": {"DefaultAction": "deny"},
                "Admin": {"BindPort": 0},
                "Passthrough": {"BindAddress": "127.0.0.1", "BindPort": port, "Routes": [
                    {"SNI": "A.test", "Endpoints": [
                        {"Address": endpoint_address, "Port": self.backends["a"].port}]}]}}, f)
        return path

    def test_from_the_snapshot(self):
        port = free_port()
        path = self.snapshot("127.0.0.1", port)
        r = subprocess.run([PROXY_BIN, "--config", path, "--check"], capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        p = Proxy(self.tmp, ["--config", path])
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(self.certs["a"][0])
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20),
                                 server_hostname="a.test") as s:
                s.sendall(b"PING")
                self.assertEqual(recv_all(s), b"a")
        finally:
            self.assertEqual(p.stop(), 0)
        # the proxy connects on IPv4 only: --check says which field
        bad = self.snapshot("::1", free_port())
        r = subprocess.run([PROXY_BIN, "--config", bad, "--check"], capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b'Passthrough.Routes[0].Endpoints[0].Address: "::1": this proxy connects on '
                      b'IPv4 only', r.stderr)
        # flags and the snapshot do not mix
        r = subprocess.run([PROXY_BIN, "--config", path, "--passthrough", "127.0.0.1:%d" % port],
                           capture_output=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)

    def test_bad_routes_stop_the_proxy(self):
        for route, msg in [("a.test", b'route "a.test": want NAME=IP:PORT'),
                           ("a.*.test=127.0.0.1:1", b'route "a.*.test": not a server name'),
                           ("a.test=localhost:1", b'endpoint "localhost:1": want IPv4-ADDRESS:PORT')]:
            r = subprocess.run([PROXY_BIN, "--passthrough", "127.0.0.1:%d" % free_port(),
                                "--route", route], capture_output=True, timeout=20)
            self.assertEqual(r.returncode, 1)
            self.assertIn(msg, r.stderr)
        r = subprocess.run([PROXY_BIN, "--listen", "127.0.0.1:%d" % free_port(), "--upstream",
                            "127.0.0.1:9", "--route", "a.test=127.0.0.1:1"],
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"--route: give --passthrough IP:PORT too", r.stderr)

    def test_z_hello_timeout(self):
        # the connection opened in setUpClass sent 20 bytes of a hello
        left = PassthroughTest.slow_start + 5.0 - time.monotonic()
        self.slow.settimeout(max(left, 0) + 5)
        try:
            self.assertEqual(self.slow.recv(100), b"")
        except ConnectionResetError:
            pass
        self.assertGreaterEqual(time.monotonic() - PassthroughTest.slow_start, 4.9)
        self.proxy.wait_for(r'sni refused: listener=passthrough peer=\S+ sni="" reason=timeout')


if __name__ == "__main__":
    unittest.main()
