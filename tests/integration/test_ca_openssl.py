#!/usr/bin/env python3
"""The mesh CA (lib/ca) checked by the real openssl command.

tests/tools/ca-tool writes roots, a cross-signed root, an intermediate and
leaves made by lib/ca from locally made keys and CSRs. Here `openssl verify`
checks every chain as a TLS peer would, `openssl x509` shows that the only
SAN is the expected SPIFFE ID, and `openssl s_server`/`s_client` complete a
mutual-TLS handshake during a root rotation: the server holds a leaf of the
new root (chain: the new root cross-signed by the old one), the client holds
a leaf of the old root and trusts only the old root.
"""
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

OPENSSL = shutil.which("openssl")
TOOL = os.path.join(harness.BUILDDIR, "tests", "tools", "ca-tool")
TD = "weft-test.example"


def spiffe(service):
    return "spiffe://%s/ns/default/dc/dc1/svc/%s" % (TD, service)


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, **kw)


@unittest.skipUnless(OPENSSL, "the openssl command is not installed")
class CAOpenSSL(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="weft-ca-")
        p = run([TOOL, cls.tmp])
        if p.returncode != 0:
            raise AssertionError("ca-tool failed: %s" % p.stderr.decode())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def f(self, name):
        return os.path.join(self.tmp, name)

    def verify(self, cafile, leaf, untrusted=None, purpose=None):
        cmd = [OPENSSL, "verify", "-CAfile", self.f(cafile)]
        if untrusted:
            cmd += ["-untrusted", self.f(untrusted)]
        if purpose:
            cmd += ["-purpose", purpose]
        p = run(cmd + [self.f(leaf)])
        return p.returncode == 0 and p.stdout.decode().strip().endswith(": OK"), \
            p.stdout.decode() + p.stderr.decode()

    def assertVerifies(self, *a, **kw):
        ok, out = self.verify(*a, **kw)
        self.assertTrue(ok, out)

    def assertRefused(self, *a, **kw):
        ok, out = self.verify(*a, **kw)
        self.assertFalse(ok, out)

    def san(self, cert):
        p = run([OPENSSL, "x509", "-in", self.f(cert), "-noout", "-ext", "subjectAltName"])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        lines = [l.strip() for l in p.stdout.decode().splitlines()]
        self.assertEqual(lines[0], "X509v3 Subject Alternative Name:")
        return lines[1:]

    def test_leaf_of_root(self):
        for purpose in ("sslclient", "sslserver"):
            self.assertVerifies("old-root.pem", "client.pem", purpose=purpose)
        self.assertEqual(self.san("client.pem"), ["URI:" + spiffe("web")])
        self.assertRefused("new-root.pem", "client.pem")
        self.assertRefused("foreign-root.pem", "client.pem")

    def test_root_carries_trust_domain(self):
        self.assertEqual(self.san("old-root.pem"), ["URI:spiffe://" + TD])
        p = run([OPENSSL, "x509", "-in", self.f("old-root.pem"), "-noout", "-text"])
        text = p.stdout.decode()
        self.assertIn("CA:TRUE, pathlen:2", text)
        self.assertIn("Certificate Sign, CRL Sign", text)
        self.assertIn("NIST CURVE: P-256", text)

    def test_csr_names_are_ignored(self):
        # The CSR asked for the admin SPIFFE ID and a DNS name.
        self.assertEqual(self.san("evil.pem"), ["URI:" + spiffe("web")])
        p = run([OPENSSL, "x509", "-in", self.f("evil.pem"), "-noout", "-subject"])
        self.assertEqual(p.stdout.decode().strip(), "subject=CN = web")

    def test_intermediate_chain(self):
        self.assertVerifies("old-root.pem", "inter-leaf.pem", untrusted="inter-leaf-chain.pem",
                            purpose="sslserver")
        self.assertRefused("old-root.pem", "inter-leaf.pem")
        self.assertEqual(self.san("inter-leaf.pem"), ["URI:" + spiffe("db")])

    def test_rotation_chains(self):
        # The new root's leaf: with the cross-signed certificate, holders of
        # the old root accept it; holders of the new root do in any case.
        self.assertVerifies("old-root.pem", "server.pem", untrusted="server-chain.pem",
                            purpose="sslserver")
        self.assertVerifies("new-root.pem", "server.pem", untrusted="server-chain.pem")
        self.assertVerifies("new-root.pem", "server.pem")
        self.assertRefused("old-root.pem", "server.pem")
        self.assertEqual(self.san("server.pem"), ["URI:" + spiffe("api")])
        # the cross-signed certificate itself chains to the old root
        self.assertVerifies("old-root.pem", "cross.pem")

    def test_keys_are_private(self):
        for name in ("server.key", "client.key", "inter-leaf.key"):
            self.assertEqual(os.stat(self.f(name)).st_mode & 0o777, 0o600, name)

    # ---- mutual TLS during a rotation ----

    def handshake(self, server_trust, client_cert, client_trust):
        """s_server with the new root's leaf (and the cross-signed
        certificate), requiring a client certificate verified against
        server_trust; s_client with client_cert, trusting client_trust.
        Returns (ok, s_client output)."""
        bundle = self.f("bundle-%d.pem" % os.getpid())
        with open(bundle, "w") as out:
            for name in server_trust:
                with open(self.f(name)) as src:
                    out.write(src.read())
        port = harness.free_port()
        server = subprocess.Popen(
            [OPENSSL, "s_server", "-accept", "127.0.0.1:%d" % port, "-www",
             "-cert", self.f("server.pem"), "-key", self.f("server.key"),
             "-cert_chain", self.f("server-chain.pem"), "-CAfile", bundle,
             "-Verify", "3", "-verify_return_error"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            buf = b""
            while b"ACCEPT" not in buf:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "s_server did not start: %r" % buf)
                r, _, _ = select.select([server.stdout], [], [], left)
                if r:
                    chunk = os.read(server.stdout.fileno(), 4096)
                    self.assertTrue(chunk, "s_server exited: %r" % buf)
                    buf += chunk
            client = run(
                [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port,
                 "-cert", self.f(client_cert), "-key", self.f(client_cert[:-4] + ".key"),
                 "-CAfile", self.f(client_trust), "-verify", "3", "-verify_return_error",
                 "-ign_eof"],
                input=b"GET / HTTP/1.0\r\n\r\n")
            out = client.stdout.decode(errors="replace") + client.stderr.decode(errors="replace")
            ok = (client.returncode == 0 and "Verify return code: 0 (ok)" in out
                  and "HTTP/1.0 200 ok" in out)
            return ok, out
        finally:
            server.kill()
            server.wait(timeout=10)
            server.stdout.close()
            os.unlink(bundle)

    def test_mtls_during_rotation(self):
        # The server trusts both roots (the bundle during the transition); the
        # client has not seen the new root yet.
        ok, out = self.handshake(["old-root.pem", "new-root.pem"], "client.pem", "old-root.pem")
        self.assertTrue(ok, out)
        self.assertIn("CN = Weft CA old", out)   # the chain went up to the old root

    def test_mtls_foreign_client_refused(self):
        ok, out = self.handshake(["old-root.pem", "new-root.pem"], "foreign.pem", "old-root.pem")
        self.assertFalse(ok, out)
        self.assertNotIn("HTTP/1.0 200 ok", out)

    def test_mtls_after_rotation(self):
        # Once the old root has left the bundle, its leaves are refused.
        ok, out = self.handshake(["new-root.pem"], "client.pem", "old-root.pem")
        self.assertFalse(ok, out)
        self.assertNotIn("HTTP/1.0 200 ok", out)

    def test_mtls_client_without_cross_sign_refuses(self):
        # A server leaf of the new root without the cross-signed certificate
        # would break clients holding only the old root: shown by verifying
        # the bare leaf the way s_client would.
        self.assertRefused("old-root.pem", "server.pem", purpose="sslserver")


if __name__ == "__main__":
    unittest.main()
