#!/usr/bin/env python3
"""weftctl ca roots|rotate|sign|config against a real weft-server (tokens),
the files it writes checked with the openssl command."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CTL_BIN, ServerTest  # noqa: E402

OPENSSL = shutil.which("openssl")


@unittest.skipUnless(OPENSSL, "the openssl command is not installed")
class WeftctlCATest(ServerTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="weftctl-ca-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def ctl(self, *args, token=None):
        env = {k: v for k, v in os.environ.items()
               if k not in ("WEFT_HTTP_ADDR", "WEFT_HTTP_TOKEN")}
        return subprocess.run([CTL_BIN, "--address", self.srv.addr,
                               "--token", token or self.srv.token] + list(args),
                              capture_output=True, text=True, env=env, timeout=30)

    def ok(self, *args, **kw):
        r = self.ctl(*args, **kw)
        self.assertEqual(r.returncode, 0, "weftctl %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r

    def dir(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        return d

    def verify(self, cafile, cert, chain):
        cmd = [OPENSSL, "verify", "-CAfile", cafile]
        if os.path.getsize(chain) > 0:
            cmd += ["-untrusted", chain]
        p = subprocess.run(cmd + [cert], capture_output=True, text=True, timeout=30)
        return p.returncode == 0, p.stdout + p.stderr

    def test_roots(self):
        out = self.ok("ca", "roots").stdout
        doc = self.srv.get("/v1/connect/ca/roots").json()
        self.assertIn(doc["ActiveRootID"], out)
        self.assertIn(doc["TrustDomain"], out)
        self.assertIn("yes", out)
        j = json.loads(self.ok("ca", "roots", "-output", "json").stdout)
        self.assertEqual(j["ActiveRootID"], doc["ActiveRootID"])
        pem = self.ok("ca", "roots", "-pem").stdout
        self.assertEqual(pem.strip(), doc["Roots"][0]["RootCert"].strip())
        r = self.ctl("ca", "roots", "-mesh", "nosuch")
        self.assertEqual(r.returncode, 1)
        self.assertIn("nosuch", r.stderr)

    def test_sign_writes_cert_chain_and_private_key(self):
        d = self.dir("sign")
        out = self.ok("ca", "sign", "-service", "web", "-out-dir", d).stdout
        td = self.srv.get("/v1/connect/ca/roots").json()["TrustDomain"]
        uri = "spiffe://%s/ns/default/dc/dc1/svc/web" % td
        self.assertIn(uri, out)
        cert, chain, key = (os.path.join(d, n) for n in ("web.pem", "web-chain.pem", "web-key.pem"))
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        with open(key) as src:
            self.assertIn("PRIVATE KEY", src.read())
        self.assertNotIn("PRIVATE KEY", out)
        bundle = os.path.join(d, "roots.pem")
        with open(bundle, "w") as dst:
            dst.write(self.ok("ca", "roots", "-pem").stdout)
        ok, msg = self.verify(bundle, cert, chain)
        self.assertTrue(ok, msg)
        p = subprocess.run([OPENSSL, "x509", "-in", cert, "-noout", "-ext", "subjectAltName"],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("URI:" + uri, p.stdout)
        # the certificate holds the key written beside it
        a = subprocess.run([OPENSSL, "x509", "-in", cert, "-noout", "-pubkey"],
                           capture_output=True, text=True, timeout=30).stdout
        b = subprocess.run([OPENSSL, "pkey", "-in", key, "-pubout"],
                           capture_output=True, text=True, timeout=30).stdout
        self.assertEqual(a, b)
        # RSA, and JSON output naming the files
        d2 = self.dir("rsa")
        j = json.loads(self.ok("ca", "sign", "-service", "api", "-out-dir", d2, "-key-type", "rsa",
                               "-output", "json").stdout)
        self.assertEqual(j["KeyFile"], os.path.join(d2, "api-key.pem"))
        self.assertEqual(os.stat(j["KeyFile"]).st_mode & 0o777, 0o600)
        p = subprocess.run([OPENSSL, "pkey", "-in", j["KeyFile"], "-noout", "-text"],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("2048 bit", p.stdout)

    def test_sign_needs_the_services_token(self):
        tok = self.srv.put("/v1/acl/token", {"Kind": "service", "ServiceName": "alpha"}).json()
        d = self.dir("tok")
        self.ok("ca", "sign", "-service", "alpha", "-out-dir", d, token=tok["SecretID"])
        r = self.ctl("ca", "sign", "-service", "beta", "-out-dir", d, token=tok["SecretID"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("service:write", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "beta-key.pem")))

    def test_sign_usage(self):
        r = self.ctl("ca", "sign")
        self.assertEqual(r.returncode, 2)
        self.assertIn("-service", r.stderr)
        r = self.ctl("ca", "sign", "-service", "web", "-key-type", "dsa")
        self.assertEqual(r.returncode, 2)
        r = self.ctl("ca", "sign", "-service", "web", "-out-dir", "/nonexistent/dir")
        self.assertEqual(r.returncode, 1)

    def test_config_and_rotate(self):
        self.assertEqual(self.srv.put("/v1/meshes/ctl", {"Name": "ctl"}).status, 200)
        out = self.ok("ca", "config", "get", "-mesh", "ctl").stdout
        self.assertIn("weft", out)
        self.assertIn("24h0m0s", out)
        self.ok("ca", "config", "set", "-mesh", "ctl", "-leaf-ttl", "2h")
        j = json.loads(self.ok("ca", "config", "get", "-mesh", "ctl", "-output", "json").stdout)
        self.assertEqual(j["Config"]["LeafCertTTL"], "2h0m0s")
        r = self.ctl("ca", "config", "set", "-mesh", "ctl", "-leaf-ttl", "100ms")
        self.assertEqual(r.returncode, 1)
        self.assertIn("LeafCertTTL", r.stderr)
        self.assertEqual(self.ctl("ca", "config", "frob").returncode, 2)

        d = self.dir("rot")
        self.ok("ca", "sign", "-mesh", "ctl", "-service", "web", "-out-dir", d)
        old_id = self.srv.get("/v1/connect/ca/roots?mesh=ctl").json()["ActiveRootID"]
        out = self.ok("ca", "rotate", "-mesh", "ctl").stdout
        doc = self.srv.get("/v1/connect/ca/roots?mesh=ctl").json()
        self.assertNotEqual(doc["ActiveRootID"], old_id)
        self.assertIn(doc["ActiveRootID"], out)
        self.assertIn("2h0m0s", out)
        self.assertEqual(sorted(x["ID"] for x in doc["Roots"]),
                         sorted([old_id, doc["ActiveRootID"]]))
        listing = self.ok("ca", "roots", "-mesh", "ctl").stdout
        self.assertIn(old_id, listing)
        # the old leaf still verifies against the bundle during the transition
        bundle = os.path.join(d, "roots.pem")
        with open(bundle, "w") as dst:
            dst.write(self.ok("ca", "roots", "-mesh", "ctl", "-pem").stdout)
        ok, msg = self.verify(bundle, os.path.join(d, "web.pem"), os.path.join(d, "web-chain.pem"))
        self.assertTrue(ok, msg)
        # a read-only token cannot rotate
        ro = self.srv.put("/v1/acl/token", {"Kind": "read-only"}).json()["SecretID"]
        r = self.ctl("ca", "rotate", "-mesh", "ctl", token=ro)
        self.assertEqual(r.returncode, 1)
        self.assertIn("policy:write", r.stderr)

    def test_rotate_to_provided_root(self):
        self.assertEqual(self.srv.put("/v1/meshes/own", {"Name": "own"}).status, 200)
        d = self.dir("own")
        key, cert = os.path.join(d, "root.key"), os.path.join(d, "root.pem")
        p = subprocess.run([OPENSSL, "req", "-x509", "-new", "-nodes", "-newkey", "ec",
                            "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", key, "-out", cert,
                            "-days", "30", "-subj", "/CN=Own Root",
                            "-addext", "basicConstraints=critical,CA:TRUE",
                            "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = self.ctl("ca", "rotate", "-mesh", "own", "-root-cert", cert)
        self.assertEqual(r.returncode, 2)
        out = self.ok("ca", "rotate", "-mesh", "own", "-root-cert", cert, "-private-key", key)
        self.assertNotIn("PRIVATE KEY", out.stdout + out.stderr)
        with open(cert) as src:
            pem = src.read()
        doc = self.srv.get("/v1/connect/ca/roots?mesh=own").json()
        active = [x for x in doc["Roots"] if x["Active"]][0]
        self.assertEqual(active["RootCert"].strip(), pem.strip())
        self.assertIn(active["ID"], out.stdout)
        j = json.loads(self.ok("ca", "config", "get", "-mesh", "own", "-output", "json").stdout)
        self.assertEqual(j["Provider"], "provided")
        self.assertNotIn("PrivateKey", j["Config"])
        # a leaf signed now chains to the operator's root
        self.ok("ca", "sign", "-mesh", "own", "-service", "web", "-out-dir", d)
        ok, msg = self.verify(cert, os.path.join(d, "web.pem"), os.path.join(d, "web-chain.pem"))
        self.assertTrue(ok, msg)


if __name__ == "__main__":
    harness.main()
