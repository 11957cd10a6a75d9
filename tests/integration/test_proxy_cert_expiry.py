"""weft-proxy's weft_proxy_certificate_expiry_seconds on /stats
(docs/proxy-admin.md): the seconds until the leaf in use expires, updated
on every certificate reload (a reload to an expired leaf shows a negative
value), absent without TLS, accepted by promtool. Certificates from
tests/tools/ca-tool."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILDDIR, free_port  # noqa: E402

PROXY_BIN = os.path.join(BUILDDIR, "dataplane", "weft-proxy")
CA_TOOL = os.path.join(BUILDDIR, "tests", "tools", "ca-tool")
WRAPPER = os.environ.get("WEFT_PROXY_WRAPPER", "").split()
PROMTOOL = "/usr/bin/promtool"
GAUGE = "weft_proxy_certificate_expiry_seconds"


def not_after(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-enddate"],
                         capture_output=True, check=True, timeout=30).stdout.decode()
    when = datetime.strptime(out.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    return when.replace(tzinfo=timezone.utc).timestamp()


def get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


class CertExpiryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="weft-pxcert-")
        subprocess.run([CA_TOOL, cls.tmp], check=True, capture_output=True, timeout=30)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start(self, args):
        self.admin = free_port()
        self.log = os.path.join(self.tmp, "proxy-%d.log" % self.admin)
        err = open(self.log, "wb")
        proc = subprocess.Popen(WRAPPER + [PROXY_BIN, "--admin", "127.0.0.1:%d" % self.admin,
                                           "--workers", "1"] + args, stderr=err)
        self.addCleanup(self.stop, proc, err)
        self.wait_log(r"admin listening", proc)
        return proc

    def stop(self, proc, err):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(10)
        err.close()
        self.assertEqual(rc, 0, self.text())

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, pattern, proc, count=1):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.text())) >= count:
                return
            if proc.poll() is not None:
                self.fail("weft-proxy exited: " + self.text())
            time.sleep(0.05)
        self.fail("no %r in the log:\n%s" % (pattern, self.text()))

    def stats(self):
        status, body = get(self.admin, "/stats")
        self.assertEqual(status, 200)
        return body

    def gauge(self):
        found = [line for line in self.stats().splitlines() if line.startswith(GAUGE + " ")]
        self.assertEqual(len(found), 1)
        return float(found[0].split()[1])

    def use(self, name):
        """Puts NAME.pem and NAME.key where the proxy reads its leaf."""
        shutil.copy(os.path.join(self.tmp, name + ".pem"), os.path.join(self.tmp, "leaf.pem"))
        shutil.copy(os.path.join(self.tmp, name + ".key"), os.path.join(self.tmp, "leaf.key"))

    def test_gauge_follows_reloads(self):
        self.use("client")          # web, 24 h
        proc = self.start([
            "--inbound", "127.0.0.1:%d" % free_port(), "--app", "127.0.0.1:%d" % free_port(),
            "--outbound", "127.0.0.1:%d" % free_port(), "--upstream", "127.0.0.1:%d" % free_port(),
            "--upstream-id", "spiffe://weft-test.example/ns/default/dc/dc1/svc/api",
            "--cert", os.path.join(self.tmp, "leaf.pem"), "--key", os.path.join(self.tmp, "leaf.key"),
            "--trust-bundle", os.path.join(self.tmp, "old-root.pem")])
        want = not_after(os.path.join(self.tmp, "client.pem")) - time.time()
        self.assertGreater(want, 23 * 3600)
        self.assertAlmostEqual(self.gauge(), want, delta=5)
        text = self.stats()
        self.assertIn("# TYPE %s gauge" % GAUGE, text)
        if os.path.exists(PROMTOOL):
            check = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                                   capture_output=True, timeout=30)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        # a reload to a leaf that expired 1 h 50 min ago: negative
        self.use("expired")
        proc.send_signal(signal.SIGHUP)
        self.wait_log(r"tls reloaded: listener=outbound", proc)
        self.assertRegex(self.text(), r"tls reloaded: listener=inbound id=\S+ expires_in_s=-\d+")
        want = not_after(os.path.join(self.tmp, "expired.pem")) - time.time()
        self.assertLess(want, -6000)
        self.assertAlmostEqual(self.gauge(), want, delta=5)
        # and back: the gauge follows the leaf in use, not the worst seen
        self.use("client")
        proc.send_signal(signal.SIGHUP)
        self.wait_log(r"tls reloaded: listener=outbound", proc, count=2)
        self.assertAlmostEqual(self.gauge(), not_after(os.path.join(self.tmp, "client.pem"))
                               - time.time(), delta=5)

    def test_failed_reload_keeps_the_gauge(self):
        self.use("client")
        proc = self.start([
            "--inbound", "127.0.0.1:%d" % free_port(), "--app", "127.0.0.1:%d" % free_port(),
            "--cert", os.path.join(self.tmp, "leaf.pem"), "--key", os.path.join(self.tmp, "leaf.key"),
            "--trust-bundle", os.path.join(self.tmp, "old-root.pem")])
        before = self.gauge()
        # a leaf whose key does not match: refused, the old leaf stays in use
        shutil.copy(os.path.join(self.tmp, "expired.pem"), os.path.join(self.tmp, "leaf.pem"))
        proc.send_signal(signal.SIGHUP)
        self.wait_log(r"tls reload failed: listener=inbound", proc)
        self.assertAlmostEqual(self.gauge(), before, delta=5)
        self.assertGreater(self.gauge(), 23 * 3600)

    def test_no_gauge_without_tls(self):
        self.start(["--listen", "127.0.0.1:%d" % free_port(), "--upstream",
                    "127.0.0.1:%d" % free_port()])
        self.assertNotIn(GAUGE, self.stats())
        self.assertIn("weft_proxy_draining 0", self.stats())


if __name__ == "__main__":
    unittest.main(verbosity=2)
