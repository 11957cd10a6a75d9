#!/usr/bin/env python3
"""HTTPS: weft-server serves the API over TLS with the operator's certificate.

A CA and server certificates are made with the real openssl command, and the
real curl checks what a user sees: verification against the CA passes,
verification without it fails, and the plain HTTP listener keeps working
beside the HTTPS one.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, **kw)


def must(cmd, **kw):
    p = run(cmd, **kw)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (cmd[:3], p.returncode, p.stderr.decode()))
    return p


class Certs:
    """A CA and certificates signed by it, in a temporary directory."""

    def __init__(self, name="weft test CA"):
        self.dir = tempfile.mkdtemp(prefix="weft-tls-")
        self.ca_key = self.path("ca.key")
        self.ca = self.path("ca.pem")
        must([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-days", "2",
              "-subj", "/CN=" + name,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, san, key_type="ec"):
        """A server certificate with subjectAltName san; returns (cert, key)."""
        key, csr, cert, ext = (self.path(name + s) for s in (".key", ".csr", ".pem", ".ext"))
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_type == "ec" \
            else ["-newkey", "rsa:2048"]
        must([OPENSSL, "req", "-new"] + newkey + ["-nodes", "-keyout", key, "-out", csr,
                                                 "-subj", "/CN=" + name])
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n" % san)
        must([OPENSSL, "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
              "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext])
        return cert, key

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_listening(port, proc, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("weft-server exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("nothing listens on port %d" % port)


@unittest.skipUnless(OPENSSL and CURL, "needs the openssl and curl commands")
class HttpsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = Certs()
        cls.cert, cls.key = cls.certs.issue("server", "IP:127.0.0.1,DNS:localhost")
        cls.https_port = harness.free_port()
        cls.srv = harness.Server(dev=True, args=[
            "--https-addr", "127.0.0.1:%d" % cls.https_port,
            "--tls-cert", cls.cert, "--tls-key", cls.key])
        wait_listening(cls.https_port, cls.srv.proc)

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        log = cls.srv.read_log()
        cls.srv.close()
        cls.certs.close()
        if rc != 0:
            raise AssertionError("weft-server exited %s; log:\n%s" % (rc, log[-3000:]))

    def curl(self, path, *args, cacert=True, port=None):
        url = "https://127.0.0.1:%d%s" % (port or self.https_port, path)
        cmd = [CURL, "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"]
        if cacert:
            cmd += ["--cacert", cacert if isinstance(cacert, str) else self.certs.ca]
        p = run(cmd + list(args) + [url])
        if p.returncode != 0:
            return p.returncode, None, p.stderr.decode()
        body, _, code = p.stdout.decode().rpartition("\n")
        return 0, int(code), body

    def test_catalog_over_https_with_the_ca(self):
        rc, code, body = self.curl("/v1/catalog/nodes")
        self.assertEqual((rc, code), (0, 200), body)
        self.assertIn("server-1", [n["Node"] for n in json.loads(body)])
        self.assertIn("listening addr=127.0.0.1:%d tls=on" % self.https_port,
                      self.srv.read_log())

    def test_write_over_https_is_read_over_http(self):
        reg = {"Node": "tls-node", "Address": "10.1.1.1",
               "Service": {"ID": "tls-web-1", "Service": "tls-web", "Port": 8443}}
        rc, code, body = self.curl("/v1/catalog/register", "-X", "PUT",
                                   "--data-binary", json.dumps(reg))
        self.assertEqual((rc, code, body), (0, 200, "true"))
        resp = self.srv.get("/v1/catalog/service/tls-web")
        self.assertEqual(resp.status, 200)
        self.assertEqual([e["ServiceID"] for e in resp.json()], ["tls-web-1"])
        rc, code, body = self.curl("/v1/catalog/service/tls-web")
        self.assertEqual((rc, code), (0, 200))
        self.assertEqual(json.loads(body)[0]["ServicePort"], 8443)

    def test_blocking_query_over_https_wakes_on_a_write(self):
        idx = self.srv.get("/v1/catalog/service/tls-watched").index
        got = {}

        def watch():
            t0 = time.time()
            got["res"] = self.curl("/v1/catalog/service/tls-watched?index=%d&wait=30s" % idx,
                                   "-D", "-")
            got["secs"] = time.time() - t0
        th = threading.Thread(target=watch)
        th.start()
        time.sleep(0.5)   # let curl connect and park
        self.assertTrue(th.is_alive(), "the blocking query returned at once: %r" % got)
        resp = self.srv.put("/v1/catalog/register", {
            "Node": "tls-node2", "Address": "10.1.1.2",
            "Service": {"ID": "w1", "Service": "tls-watched"}})
        self.assertEqual(resp.status, 200)
        th.join(20)
        rc, code, body = got["res"]
        self.assertEqual((rc, code), (0, 200), body)
        self.assertIn('"ServiceID":"w1"', body.replace(" ", ""))
        self.assertLess(got["secs"], 10)

    def test_without_the_ca_verification_fails(self):
        rc, _, err = self.curl("/v1/catalog/nodes", cacert=False)
        self.assertEqual(rc, 60, err)   # CURLE_PEER_FAILED_VERIFICATION
        other = Certs("another CA")
        try:
            rc, _, err = self.curl("/v1/catalog/nodes", cacert=other.ca)
            self.assertEqual(rc, 60, err)
        finally:
            other.close()

    def s_client(self, *args):
        p = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % self.https_port,
                            "-CAfile", self.certs.ca] + list(args),
                           input=b"", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return p.stdout.decode(errors="replace")

    def test_only_tls_1_2_and_1_3(self):
        self.assertIn("New, TLSv1.3", self.s_client())
        self.assertIn("New, TLSv1.2", self.s_client("-tls1_2"))
        # A client willing to use TLS 1.1 or 1.0 (and SHA-1 suites) is refused.
        for old in ("-tls1_1", "-tls1"):
            out = self.s_client(old, "-cipher", "DEFAULT:@SECLEVEL=0")
            self.assertIn("Cipher is (NONE)", out, out[-1500:])

    def test_plain_http_still_works(self):
        resp = self.srv.get("/v1/catalog/nodes")
        self.assertEqual(resp.status, 200)
        self.assertIn("server-1", [n["Node"] for n in resp.json()])
        # The HTTPS port does not talk plain HTTP.
        p = run([CURL, "-sS", "--max-time", "5", "http://127.0.0.1:%d/v1/catalog/nodes"
                 % self.https_port])
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn(b"server-1", p.stdout)


@unittest.skipUnless(OPENSSL and CURL, "needs the openssl and curl commands")
class HttpsCertificateTest(unittest.TestCase):
    """Certificates that do not fit are refused, with the reason."""

    @classmethod
    def setUpClass(cls):
        cls.certs = Certs()

    @classmethod
    def tearDownClass(cls):
        cls.certs.close()

    def start(self, cert, key, check=False):
        port = harness.free_port()
        data = tempfile.mkdtemp(prefix="weft-test-")
        self.addCleanup(shutil.rmtree, data, True)
        cmd = [harness.SERVER_BIN, "--dev", "--data-dir", data,
               "--http-addr", "127.0.0.1:%d" % harness.free_port(),
               "--https-addr", "127.0.0.1:%d" % port, "--tls-cert", cert, "--tls-key", key]
        if check:
            cmd.append("--check")
        return port, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def test_rsa_certificate_works(self):
        cert, key = self.certs.issue("rsa-server", "IP:127.0.0.1", key_type="rsa")
        port, proc = self.start(cert, key)
        try:
            wait_listening(port, proc)
            p = run([CURL, "-sS", "--max-time", "10", "--cacert", self.certs.ca,
                     "https://127.0.0.1:%d/v1/status/leader" % port])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(p.stdout.startswith(b'"127.0.0.1:'), p.stdout)
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(15), 0)
            proc.stdout.close()

    def test_certificate_for_another_address_fails_verification(self):
        cert, key = self.certs.issue("elsewhere", "IP:127.0.0.2,DNS:example.invalid")
        port, proc = self.start(cert, key)
        try:
            wait_listening(port, proc)
            p = run([CURL, "-sS", "--max-time", "10", "--cacert", self.certs.ca,
                     "https://127.0.0.1:%d/v1/status/leader" % port])
            self.assertEqual(p.returncode, 60, p.stderr)
            self.assertIn(b"127.0.0.1", p.stderr)
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(15), 0)
            proc.stdout.close()

    def test_key_that_does_not_match_is_refused_at_start(self):
        cert, _ = self.certs.issue("one", "IP:127.0.0.1")
        _, key = self.certs.issue("two", "IP:127.0.0.1")
        # --check says what is wrong, as for any bad setting (2); a start
        # fails (1) with the same message.
        for check, code in ((True, 2), (False, 1)):
            _, proc = self.start(cert, key, check=check)
            out, _ = proc.communicate(timeout=15)
            self.assertEqual(proc.returncode, code, out)
            self.assertIn(b"tls-key: %s does not match the first certificate in %s"
                          % (key.encode(), cert.encode()), out)

    def test_missing_or_wrong_files_are_named(self):
        cert, key = self.certs.issue("named", "IP:127.0.0.1")
        missing = self.certs.path("nope.pem")
        cases = [
            (missing, key, b"tls-cert: cannot open %s" % missing.encode()),
            (key, key, b"tls-cert: %s holds no PEM certificate" % key.encode()),
            (cert, cert, b"tls-key: %s holds no unencrypted PEM private key" % cert.encode()),
        ]
        for c, k, want in cases:
            _, proc = self.start(c, k, check=True)
            out, _ = proc.communicate(timeout=15)
            self.assertEqual(proc.returncode, 2, out)
            self.assertIn(want, out)


if __name__ == "__main__":
    harness.main()
