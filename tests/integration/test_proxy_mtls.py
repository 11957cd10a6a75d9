"""weft-proxy with mTLS: client -> proxy(outbound) =mTLS=> proxy(inbound) ->
app, in HTTP and TCP mode, with real certificates from lib/ca
(tests/tools/ca-tool). The app sees the caller's SPIFFE ID in
X-Forwarded-Client-Cert; a foreign CA, an expired leaf, a wrong SPIFFE ID,
no client certificate and plaintext are each refused with one log line;
SIGHUP swaps in a leaf from a rotated root while a keep-alive connection
stays open."""
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
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILDDIR, free_port  # noqa: E402
from proxyharness import ProxyProcess, PROXY_BIN, read_to_eof  # noqa: E402

CA_TOOL = os.path.join(BUILDDIR, "tests", "tools", "ca-tool")
TD = "weft-test.example"


def spiffe(svc):
    return "spiffe://%s/ns/default/dc/dc1/svc/%s" % (TD, svc)


class App(http.server.BaseHTTPRequestHandler):
    """Answers every request with the headers it received, as JSON."""
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        App.seen.append(self.path)
        out = json.dumps([[k, v] for k, v in self.headers.items()]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        if self.path.endswith("?close"):
            # ends the connection: the proxy cannot pool it, and the
            # next request makes a new handshake
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(out)


class EchoApp(threading.Thread):
    """TCP app: reads until the peer half-closes, answers the bytes
    upper-cased, closes."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            c.settimeout(10)
            data = bytearray()   # (appending to bytes is quadratic: 32 MiB tests)
            try:
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    data += b
                c.sendall(bytes(data).upper())
            except OSError:
                pass
            c.close()


class Proxy(ProxyProcess):
    def __init__(self, tmp, name, args):
        n = sum(1 for a in args if a in ("--inbound", "--outbound"))
        super().__init__(os.path.join(tmp, name + ".log"), args, r"listening: listener=", n)


def http_get(sock_file, sock, path, extra=b""):
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: app\r\n" + extra + b"\r\n")
    line = sock_file.readline()
    if not line:
        return None, None
    status = int(line.split()[1])
    length = 0
    while True:
        h = sock_file.readline()
        if h in (b"\r\n", b""):
            break
        k, v = h.decode().split(":", 1)
        if k.lower() == "content-length":
            length = int(v)
    return status, sock_file.read(length)


class MTLSTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="weft-mtls-")
        subprocess.run([CA_TOOL, cls.tmp], check=True, capture_output=True, timeout=30)
        for leaf, chain, out in [("api-old", "api-old-chain", "api.crt"),
                                 ("client", "client-chain", "web.crt"),
                                 ("inter-leaf", "inter-leaf-chain", "db.crt"),
                                 ("server", "server-chain", "api-new.crt")]:
            with open(cls.f(out), "w") as o:
                o.write(cls.read(leaf + ".pem") + cls.read(chain + ".pem"))
        cls.app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
        cls.app_thread = threading.Thread(target=cls.app.serve_forever, daemon=True)
        cls.app_thread.start()
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

    def inbound(self, cert="api.crt", key="api-old.key", bundle="old-root.pem", mode="http",
                app_port=None, extra=()):
        port = free_port()
        p = Proxy(self.tmp, "in-%d" % port,
                  ["--inbound", "127.0.0.1:%d" % port,
                   "--app", "127.0.0.1:%d" % (app_port or self.app.server_address[1]),
                   "--cert", self.f(cert), "--key", self.f(key), "--trust-bundle", self.f(bundle),
                   "--mode", mode] + list(extra))
        self.procs.append(p)
        return p, port

    def outbound(self, up_port, expect="api", cert="web.crt", key="client.key", mode="http"):
        port = free_port()
        p = Proxy(self.tmp, "out-%d" % port,
                  ["--outbound", "127.0.0.1:%d" % port, "--upstream", "127.0.0.1:%d" % up_port,
                   "--upstream-id", spiffe(expect), "--cert", self.f(cert), "--key", self.f(key),
                   "--trust-bundle", self.f("old-root.pem"), "--mode", mode,
                   # one worker: which upstream connection is pooled, and so
                   # which request makes a handshake, is then known
                   "--workers", "1"])
        self.procs.append(p)
        return p, port

    def tls_client(self, port, cert=None, key=None):
        """A direct TLS client of the inbound port; returns what it read
        after sending a request (b"" or an error when refused)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(self.f("old-root.pem"))
        if cert:
            ctx.load_cert_chain(self.f(cert), self.f(key))
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = None
        try:
            s = ctx.wrap_socket(raw)
            s.sendall(b"GET /direct HTTP/1.1\r\nHost: app\r\n\r\n")
            return s.recv(4096)
        except (ssl.SSLError, OSError) as e:
            return e
        finally:
            if s is not None:
                s.close()
            raw.close()

    def test_http_through_the_pair(self):
        inb, in_port = self.inbound()
        out, out_port = self.outbound(in_port)
        s = socket.create_connection(("127.0.0.1", out_port), timeout=10)
        f = s.makefile("rb")
        # a forged identity header from the client is dropped
        status, body = http_get(f, s, "/one", b"X-Forwarded-Client-Cert: By=x;URI=" +
                                spiffe("admin").encode() + b"\r\n")
        self.assertEqual(status, 200)
        xfcc = [v for k, v in json.loads(body) if k.lower() == "x-forwarded-client-cert"]
        self.assertEqual(xfcc, ["By=%s;URI=%s" % (spiffe("api"), spiffe("web"))])
        # keep-alive: a second request on the same connection
        status, body = http_get(f, s, "/two?close")
        self.assertEqual(status, 200)
        self.assertEqual(App.seen, ["/one", "/two?close"])
        s.close()
        inb.wait_for(r"tls handshake: listener=inbound side=client .* id=%s version=TLSv1.3"
                     % re.escape(spiffe("web")))
        # a new connection resumes the outbound TLS session
        s = socket.create_connection(("127.0.0.1", out_port), timeout=10)
        status, _ = http_get(s.makefile("rb"), s, "/three")
        self.assertEqual(status, 200)
        s.close()
        out.wait_for(r"tls handshake: listener=outbound side=upstream .* resumed=yes")

    def test_tcp_through_the_pair(self):
        inb, in_port = self.inbound(mode="tcp", app_port=self.echo.port)
        out, out_port = self.outbound(in_port, mode="tcp")
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", out_port), timeout=10)
            s.sendall(b"hello " * 10000)
            s.shutdown(socket.SHUT_WR)   # the half-close travels through both hops
            got = b""
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
            except OSError as e:
                self.fail("%s after %d bytes; outbound:\n%s\ninbound:\n%s"
                          % (e, len(got), out.text(), inb.text()))
            finally:
                s.close()
            if got != b"HELLO " * 10000:
                self.fail("%d of 60000 bytes back; outbound:\n%s\ninbound:\n%s"
                          % (len(got), out.text(), inb.text()))
        inb.wait_for(r"id=%s" % re.escape(spiffe("web")))

    def test_tcp_half_close_during_the_upstream_handshake(self):
        """The client sends and half-closes while the outbound's TLS handshake
        with the upstream is still going on; the upstream answers as soon as
        its handshake is done. The outbound ends its half of the upstream
        stream once (a second close_notify attempt would read the socket
        behind libevent and drop the answer): every byte arrives both ways."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.f("api.crt"), self.f("api-old.key"))
        ctx.load_verify_locations(self.f("old-root.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        got_up = []

        def upstream():
            for _ in range(ROUNDS):
                raw, _ = lsock.accept()
                raw.settimeout(10)
                time.sleep(0.03)   # the client's bytes and FIN reach the outbound first
                try:
                    t = ctx.wrap_socket(raw, server_side=True)
                    t.sendall(b"ANSWER " * 10000)
                    got_up.append(read_to_eof(t))
                    t.close()
                except (OSError, ssl.SSLError) as e:
                    got_up.append(e)
                    raw.close()
        ROUNDS = 20
        th = threading.Thread(target=upstream, daemon=True)
        th.start()
        out, out_port = self.outbound(lsock.getsockname()[1], mode="tcp")
        try:
            for i in range(ROUNDS):
                s = socket.create_connection(("127.0.0.1", out_port), timeout=10)
                s.sendall(b"hello " * 10000)
                s.shutdown(socket.SHUT_WR)
                got = read_to_eof(s)
                s.close()
                if got != b"ANSWER " * 10000:
                    self.fail("round %d: %d of 70000 bytes back; outbound:\n%s"
                              % (i, len(got), out.text()))
            th.join(10)
            self.assertEqual(got_up, [b"hello " * 10000] * ROUNDS)
        finally:
            lsock.close()

    def test_tcp_bulk_to_a_slow_reader(self):
        """Megabytes each way through both TLS hops while the client does not
        read at first: TLS writes that the socket cannot take at once are
        finished later, every byte arrives, in order."""
        inb, in_port = self.inbound(mode="tcp", app_port=self.echo.port)
        out, out_port = self.outbound(in_port, mode="tcp")
        data = os.urandom(32 << 20)   # more than the socket buffers and queues hold
        s = socket.create_connection(("127.0.0.1", out_port), timeout=20)

        def send():
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        t = threading.Thread(target=send, daemon=True)
        t.start()
        time.sleep(1.5)   # the answer piles up in both proxies meanwhile
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except OSError as e:
            self.fail("%s after %d bytes; outbound:\n%s\ninbound:\n%s"
                      % (e, sum(map(len, chunks)), out.text(), inb.text()))
        finally:
            t.join(20)
            s.close()
        got = b"".join(chunks)
        self.assertEqual(len(got), len(data))
        self.assertTrue(got == data.upper(), "the bytes differ")

    def together(self, port, records, close=False):
        """A client of the inbound that finishes its handshake, writes each of
        records as its own TLS record (and a close_notify), and sends all of
        it, the Finished included, in one segment; returns what it read back
        until the inbound closed."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(self.f("old-root.pem"))
        ctx.load_cert_chain(self.f("web.crt"), self.f("client.key"))
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing)
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if outgoing.pending:
                        raw.sendall(outgoing.read())
                    b = raw.recv(65536)
                    self.assertTrue(b, "closed during the handshake")
                    incoming.write(b)
            for r in records:
                tls.write(r)
            if close:
                try:
                    tls.unwrap()
                except ssl.SSLWantReadError:
                    pass
            raw.sendall(outgoing.read())
            got = b""
            while True:
                b = raw.recv(65536)
                if not b:
                    break
                incoming.write(b)
                try:
                    while True:
                        d = tls.read(65536)
                        if not d:
                            break
                        got += d
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    pass
            return got
        finally:
            raw.close()

    def test_records_that_arrive_together(self):
        """The Finished, two pipelined requests in records of their own, and in
        TCP mode a close_notify, reach the inbound in one segment: OpenSSL
        reads them at once (read-ahead), and none waits for more bytes from
        the client."""
        inb, in_port = self.inbound()
        got = self.together(in_port, [b"GET /a HTTP/1.1\r\nHost: app\r\n\r\n",
                                      b"GET /b HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"])
        self.assertEqual(got.count(b"HTTP/1.1 200 "), 2, got[:300])
        self.assertEqual(App.seen, ["/a", "/b"])
        tinb, tin_port = self.inbound(mode="tcp", app_port=self.echo.port)
        got = self.together(tin_port, [b"hello ", b"records"], close=True)
        self.assertEqual(got, b"HELLO RECORDS")

    def assertRefused(self, proxy, reason, presented=""):
        line = proxy.wait_for(r"tls refused: .*reason=%s" % reason)[0]
        self.assertIn('presented="%s"' % presented, line)
        self.assertEqual(App.seen, [])

    def test_foreign_ca_client_refused(self):
        inb, in_port = self.inbound()
        got = self.tls_client(in_port, "foreign.pem", "foreign.key")
        self.assertFalse(isinstance(got, bytes) and got.startswith(b"HTTP/"), got)
        self.assertRefused(inb, "foreign-ca", "spiffe://foreign.example/ns/default/dc/dc1/svc/web")

    def test_expired_client_refused(self):
        inb, in_port = self.inbound()
        got = self.tls_client(in_port, "expired.pem", "expired.key")
        self.assertFalse(isinstance(got, bytes) and got.startswith(b"HTTP/"), got)
        self.assertRefused(inb, "expired", spiffe("web"))

    def test_expired_leaf_on_outbound_refused(self):
        inb, in_port = self.inbound()
        out, out_port = self.outbound(in_port, cert="expired.pem", key="expired.key")
        s = socket.create_connection(("127.0.0.1", out_port), timeout=10)
        status, _ = http_get(s.makefile("rb"), s, "/x")
        s.close()
        self.assertEqual(status, 502)
        self.assertRefused(inb, "expired", spiffe("web"))
        line = out.wait_for(r"tls refused: listener=outbound side=upstream")[0]
        # TLS 1.3: the inbound refuses our leaf after our side of the
        # handshake; its alert is read, or lost to the reset that follows.
        self.assertRegex(line, r"reason=(refused-by-peer|closed-after-handshake)")

    def test_no_client_cert_refused(self):
        inb, in_port = self.inbound()
        got = self.tls_client(in_port)
        self.assertFalse(isinstance(got, bytes) and got.startswith(b"HTTP/"), got)
        self.assertRefused(inb, "no-client-cert")

    def test_plaintext_refused(self):
        inb, in_port = self.inbound()
        s = socket.create_connection(("127.0.0.1", in_port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        got = b""
        try:
            while True:
                b = s.recv(4096)
                if not b:
                    break
                got += b
        except OSError:
            pass
        s.close()
        self.assertFalse(got.startswith(b"HTTP/"), got)
        self.assertRefused(inb, "not-tls")

    def test_wrong_spiffe_id_refused(self):
        inb, in_port = self.inbound(cert="db.crt", key="inter-leaf.key")
        out, out_port = self.outbound(in_port, expect="api")
        s = socket.create_connection(("127.0.0.1", out_port), timeout=10)
        status, _ = http_get(s.makefile("rb"), s, "/x")
        s.close()
        self.assertEqual(status, 502)
        line = out.wait_for(r"tls refused: listener=outbound side=upstream")[0]
        self.assertIn("reason=wrong-spiffe-id", line)
        self.assertIn('expected="%s"' % spiffe("api"), line)
        self.assertIn('presented="%s"' % spiffe("db"), line)
        self.assertEqual(App.seen, [])

    def test_reload_on_sighup(self):
        for src, dst in [("api.crt", "live.crt"), ("api-old.key", "live.key"),
                         ("old-root.pem", "live-bundle.pem")]:
            shutil.copy(self.f(src), self.f(dst))
        inb, in_port = self.inbound(cert="live.crt", key="live.key", bundle="live-bundle.pem")
        out, out_port = self.outbound(in_port)
        s = socket.create_connection(("127.0.0.1", out_port), timeout=10)
        f = s.makefile("rb")
        self.assertEqual(http_get(f, s, "/before")[0], 200)

        self.assertIn("i:CN = Weft CA old", self.showcerts(in_port))

        # rotation: the new root joins the bundle, the leaf comes from it
        with open(self.f("live-bundle.pem.tmp"), "w") as o:
            o.write(self.read("old-root.pem") + self.read("new-root.pem"))
        os.replace(self.f("live-bundle.pem.tmp"), self.f("live-bundle.pem"))
        shutil.copy(self.f("server.key"), self.f("live.key.tmp"))
        os.replace(self.f("live.key.tmp"), self.f("live.key"))
        shutil.copy(self.f("api-new.crt"), self.f("live.crt.tmp"))
        os.replace(self.f("live.crt.tmp"), self.f("live.crt"))
        inb.proc.send_signal(signal.SIGHUP)
        inb.wait_for(r"tls reloaded: listener=inbound id=%s" % re.escape(spiffe("api")))

        # the open keep-alive connection goes on
        self.assertEqual(http_get(f, s, "/after")[0], 200)
        s.close()
        # new connections get the new leaf (and the cross-signed chain)
        shown = self.showcerts(in_port)
        self.assertIn("i:CN = Weft CA new", shown)
        self.assertNotIn("i:CN = Weft CA old\n", shown.split("---")[1].split("1 s:")[0])
        s = socket.create_connection(("127.0.0.1", out_port), timeout=10)
        self.assertEqual(http_get(s.makefile("rb"), s, "/new?close")[0], 200)
        s.close()
        # the outbound reloads too, and forgets its session ticket
        out.proc.send_signal(signal.SIGHUP)
        out.wait_for(r"tls reloaded: listener=outbound id=%s" % re.escape(spiffe("web")))
        handshakes = len(out.lines(r"side=upstream .* resumed=no"))
        s = socket.create_connection(("127.0.0.1", out_port), timeout=10)
        self.assertEqual(http_get(s.makefile("rb"), s, "/newer")[0], 200)
        s.close()
        out.wait_for(r"side=upstream .* resumed=no", count=handshakes + 1)
        self.assertEqual(App.seen, ["/before", "/after", "/new?close", "/newer"])

    def showcerts(self, port):
        """The certificates an inbound port presents now (openssl s_client)."""
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                            "-showcerts", "-cert", self.f("client.pem"), "-key", self.f("client.key"),
                            "-CAfile", self.f("old-root.pem")],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        return r.stdout.decode()

    def test_reload_interval_picks_up_changed_files(self):
        shutil.copy(self.f("api.crt"), self.f("live3.crt"))
        shutil.copy(self.f("api-old.key"), self.f("live3.key"))
        inb, in_port = self.inbound(cert="live3.crt", key="live3.key",
                                    extra=["--reload-interval", "1"])
        time.sleep(1.5)
        self.assertEqual(inb.lines("tls reload"), [])   # nothing changed: no reload
        shutil.copy(self.f("server.key"), self.f("live3.key.tmp"))
        os.replace(self.f("live3.key.tmp"), self.f("live3.key"))
        shutil.copy(self.f("api-new.crt"), self.f("live3.crt.tmp"))
        os.replace(self.f("live3.crt.tmp"), self.f("live3.crt"))
        deadline = time.monotonic() + 10
        while "i:CN = Weft CA new" not in self.showcerts(in_port):
            self.assertLess(time.monotonic(), deadline, inb.text())
            time.sleep(0.2)
        inb.wait_for(r"tls reloaded: listener=inbound")

    def test_bad_reload_keeps_old_certificates(self):
        shutil.copy(self.f("api.crt"), self.f("live2.crt"))
        inb, in_port = self.inbound(cert="live2.crt")
        with open(self.f("live2.crt"), "w") as o:
            o.write("not a certificate\n")
        inb.proc.send_signal(signal.SIGHUP)
        inb.wait_for(r"tls reload failed: listener=inbound")
        out, out_port = self.outbound(in_port)
        s = socket.create_connection(("127.0.0.1", out_port), timeout=10)
        self.assertEqual(http_get(s.makefile("rb"), s, "/still")[0], 200)
        s.close()

    def test_bad_flags(self):
        r = subprocess.run([PROXY_BIN, "--outbound", "0.0.0.0:1", "--upstream", "127.0.0.1:2",
                            "--upstream-id", spiffe("api"), "--cert", self.f("web.crt"),
                            "--key", self.f("client.key"), "--trust-bundle", self.f("old-root.pem")],
                           capture_output=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"--outbound", r.stderr)
        r = subprocess.run([PROXY_BIN, "--inbound", "127.0.0.1:1", "--app", "127.0.0.1:2",
                            "--cert", self.f("web.crt"), "--key", self.f("server.key"),
                            "--trust-bundle", self.f("old-root.pem")],
                           capture_output=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"--key", r.stderr)
        self.assertIn(b"mismatch", r.stderr)
        # a leaf outside the trust domain it is told to serve
        r = subprocess.run([PROXY_BIN, "--outbound", "127.0.0.1:1", "--upstream", "127.0.0.1:2",
                            "--upstream-id", spiffe("api"), "--cert", self.f("foreign.pem"),
                            "--key", self.f("foreign.key"), "--trust-bundle", self.f("old-root.pem"),
                            "--trust-domain", TD], capture_output=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"outside the trust domain", r.stderr)


if __name__ == "__main__":
    unittest.main()
