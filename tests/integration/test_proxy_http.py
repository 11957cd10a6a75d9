"""weft-proxy (plaintext HTTP/1.1 first cut) between a raw-socket client
and a real upstream HTTP server: keep-alive, pipelining, bodies in both
framings, forwarded headers (hop-by-hop, Via, X-Forwarded-For, XFCC),
refused smuggling attempts, upgrades, and a dead upstream."""
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILDDIR, free_port  # noqa: E402

PROXY_BIN = os.path.join(BUILDDIR, "dataplane", "weft-proxy")
# e.g. WEFT_PROXY_WRAPPER="valgrind --error-exitcode=9 --leak-check=full"
WRAPPER = os.environ.get("WEFT_PROXY_WRAPPER", "").split()
PEER = "spiffe://example.org/ns/default/dc/dc1/svc/web"
SELF = "spiffe://example.org/ns/default/dc/dc1/svc/api"


class Upstream(http.server.BaseHTTPRequestHandler):
    """Echoes what it received as JSON; a few paths answer differently."""
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n)

    def handle_any(self):
        body = self.body()
        info = {"method": self.command, "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("latin-1")}
        Upstream.seen.append(info)
        out = json.dumps(info).encode()
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(out), 7):
                part = out[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/until-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(out)
            self.close_connection = True
            return
        if self.path == "/ws":
            self.send_response(101)
            self.send_header("Upgrade", "echo")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            data = self.rfile.read(5)
            self.wfile.write(data.upper())
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("Keep-Alive", "timeout=5")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any


class Client:
    """One connection to the proxy; reads responses from one buffered file
    so that pipelined responses are not lost."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def response(self, head=False):
        line = self.f.readline()
        if not line:
            return None
        parts = line.decode().rstrip("\r\n").split(" ", 2)
        status = int(parts[1])
        headers = []
        while True:
            h = self.f.readline().decode("latin-1")
            if h in ("\r\n", ""):
                break
            k, v = h.rstrip("\r\n").split(":", 1)
            headers.append((k.lower(), v.strip()))
        hd = dict(headers)
        body = b""
        if head or status in (101, 204, 304) or status < 200:
            pass
        elif "chunked" in hd.get("transfer-encoding", ""):
            while True:
                size = int(self.f.readline().split(b";")[0], 16)
                if size == 0:
                    self.f.readline()
                    break
                body += self.f.read(size)
                self.f.readline()
        elif "content-length" in hd:
            body = self.f.read(int(hd["content-length"]))
        else:
            body = self.f.read()
        return status, hd, body, headers

    def closed(self):
        """True when the proxy closed the connection (EOF)."""
        try:
            return self.f.read(1) == b""
        except OSError:
            return True

    def close(self):
        self.f.close()
        self.sock.close()


def header(info, name):
    return [v for k, v in info["headers"] if k.lower() == name.lower()]


class ProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up_port = free_port()
        cls.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", cls.up_port), Upstream)
        cls.httpd.daemon_threads = True
        threading.Thread(target=cls.httpd.serve_forever, daemon=True).start()
        cls.port = free_port()
        cls.proc = subprocess.Popen(
            WRAPPER + [PROXY_BIN, "--listen", "127.0.0.1:%d" % cls.port,
             "--upstream", "127.0.0.1:%d" % cls.up_port, "--via", "weft-test",
             "--by-id", SELF, "--peer-id", PEER],
            stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("weft-proxy did not listen")

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        rc = cls.proc.wait(30)
        err = cls.proc.stderr.read().decode(errors="replace")
        cls.proc.stderr.close()
        if rc != 0:
            raise AssertionError("weft-proxy exited %d:\n%s" % (rc, err[-3000:]))
        cls.httpd.shutdown()
        cls.httpd.server_close()

    def setUp(self):
        Upstream.seen = []
        self.c = Client(self.port)

    def tearDown(self):
        self.c.close()

    def test_keep_alive_and_forwarded_headers(self):
        for i in range(3):
            self.c.send(b"GET /a?i=%d HTTP/1.1\r\nHost: api\r\nConnection: keep-alive, X-Secret\r\n"
                        b"X-Secret: s\r\nTE: trailers\r\nX-Forwarded-For: 10.1.1.1\r\n"
                        b"X-Forwarded-Client-Cert: URI=spiffe://example.org/ns/default/dc/dc1/svc/admin\r\n"
                        b"\r\n" % i)
            status, hd, body, _ = self.c.response()
            self.assertEqual(status, 200)
            info = json.loads(body)
            self.assertEqual(info["path"], "/a?i=%d" % i)
            # hop-by-hop gone, in both directions
            self.assertEqual(header(info, "X-Secret"), [])
            self.assertEqual(header(info, "TE"), [])
            self.assertEqual(header(info, "Connection"), [])
            self.assertNotIn("keep-alive", hd)
            # the caller's forged identity replaced by the proxy's
            self.assertEqual(header(info, "X-Forwarded-Client-Cert"), ["By=%s;URI=%s" % (SELF, PEER)])
            self.assertEqual(header(info, "X-Forwarded-For"), ["10.1.1.1, 127.0.0.1"])
            self.assertEqual(header(info, "X-Forwarded-Proto"), ["http"])
            self.assertEqual(header(info, "Via"), ["1.1 weft-test"])
            self.assertEqual(header(info, "Host"), ["api"])

    def test_bodies_both_framings(self):
        self.c.send(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world")
        status, _, body, _ = self.c.response()
        self.assertEqual(json.loads(body)["body"], "hello world")
        self.c.send(b"PUT /q HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n")
        status, _, body, _ = self.c.response()
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["body"], "hello world")
        # a chunked response arrives whole
        self.c.send(b"GET /chunked HTTP/1.1\r\nHost: h\r\n\r\n")
        status, hd, body, _ = self.c.response()
        self.assertEqual(hd.get("transfer-encoding"), "chunked")
        self.assertEqual(json.loads(body)["path"], "/chunked")
        # HEAD: the length, no body
        self.c.send(b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n")
        status, hd, body, _ = self.c.response(head=True)
        self.assertEqual(status, 200)
        self.assertGreater(int(hd["content-length"]), 0)
        status, _, body, _ = self.c.response()
        self.assertEqual(json.loads(body)["path"], "/after")

    def test_pipelined(self):
        self.c.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                    b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                    b"GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        paths = []
        for _ in range(3):
            status, hd, body, _ = self.c.response()
            paths.append(json.loads(body)["path"])
        self.assertEqual(paths, ["/1", "/2", "/3"])
        self.assertEqual(hd.get("connection"), "close")
        self.assertTrue(self.c.closed())

    def test_smuggling_refused(self):
        self.c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
        status, hd, _, _ = self.c.response()
        self.assertEqual(status, 400)
        self.assertEqual(hd.get("connection"), "close")
        self.assertTrue(self.c.closed())
        self.assertEqual(Upstream.seen, [])

    def test_errors_after_good_requests(self):
        # the bad request is answered after the good one before it, in order
        self.c.send(b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\nGET /bad HTTP/1.1\r\nHost : h\r\n\r\n")
        status, _, body, _ = self.c.response()
        self.assertEqual((status, json.loads(body)["path"]), (200, "/ok"))
        status, _, _, _ = self.c.response()
        self.assertEqual(status, 400)
        self.assertTrue(self.c.closed())

    def test_status_codes_for_limits(self):
        cases = [
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"\r\n", 431),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 501),
            (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n", 400),
        ]
        for data, want in cases:
            c = Client(self.port)
            try:
                c.send(data)
                status, _, _, _ = c.response()
                self.assertEqual(status, want, data[:40])
            finally:
                c.close()

    def test_response_until_close(self):
        self.c.send(b"GET /until-close HTTP/1.1\r\nHost: h\r\n\r\n")
        status, hd, body, _ = self.c.response()
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["path"], "/until-close")

    def test_upgrade_tunnel(self):
        self.c.send(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        status, hd, _, _ = self.c.response()
        self.assertEqual(status, 101)
        self.assertEqual(hd.get("upgrade"), "echo")
        self.c.send(b"hello")
        self.assertEqual(self.c.f.read(5), b"HELLO")
        info = Upstream.seen[0]
        self.assertEqual(header(info, "Upgrade"), ["echo"])
        self.assertEqual(header(info, "Connection"), ["upgrade"])


class TcpSpliceTest(unittest.TestCase):
    """--mode tcp with plaintext on both sides: the bytes move by splice(2);
    half-close passes through and the byte counts reach /stats."""

    def test_half_close_and_bytes(self):
        from test_proxy_mtls import EchoApp
        echo = EchoApp()
        echo.start()
        port, admin = free_port(), free_port()
        proc = subprocess.Popen(WRAPPER + [PROXY_BIN, "--listen", "127.0.0.1:%d" % port,
                                "--upstream", "127.0.0.1:%d" % echo.port, "--mode", "tcp",
                                "--admin", "127.0.0.1:%d" % admin, "--log-level", "debug"],
                                stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=10)
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            data = b"spliced bytes " * 100000          # 1.4 MB
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)                  # the app answers after our EOF
            got = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got += b
            s.close()
            self.assertEqual(got, data.upper())
            deadline = time.time() + 5
            while time.time() < deadline:
                with urllib.request.urlopen("http://127.0.0.1:%d/stats" % admin) as r:
                    stats = r.read().decode()
                if 'weft_proxy_sent_bytes_total{listener="listen"} %d' % len(data) in stats:
                    break
                time.sleep(0.05)
            self.assertIn('weft_proxy_received_bytes_total{listener="listen"} %d' % len(data), stats)
            self.assertIn('weft_proxy_sent_bytes_total{listener="listen"} %d' % len(data), stats)
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(10), 0)
            err = proc.stderr.read().decode()
            proc.stderr.close()
            echo.stop = True
            echo.join(5)
            echo.sock.close()
        self.assertIn("tunnel closed: listener=listen", err)
        self.assertIn("sent=%d received=%d" % (len(data), len(data)), err)


class DeadUpstreamTest(unittest.TestCase):
    def test_502(self):
        port = free_port()
        proc = subprocess.Popen([PROXY_BIN, "--listen", "127.0.0.1:%d" % port,
                                 "--upstream", "127.0.0.1:%d" % free_port()], stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    c = Client(port)
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            status, _, _, _ = c.response()
            self.assertEqual(status, 502)
            c.close()
        finally:
            proc.terminate()
            proc.wait(10)
            proc.stderr.close()

    def test_refuses_non_loopback(self):
        r = subprocess.run([PROXY_BIN, "--listen", "0.0.0.0:1", "--upstream", "127.0.0.1:2"],
                           capture_output=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"--listen", r.stderr)


if __name__ == "__main__":
    unittest.main()
