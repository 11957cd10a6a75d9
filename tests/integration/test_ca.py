#!/usr/bin/env python3
"""The Connect CA endpoints of a real weft-server (token mode):
/v1/connect/ca/roots, /configuration and /sign, checked with the real
openssl command (verify, x509, s_server/s_client across a rotation)."""
import base64
import json
import os
import re
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

OPENSSL = shutil.which("openssl")


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, **kw)


@unittest.skipUnless(OPENSSL, "the openssl command is not installed")
class CATest(harness.ServerTest):
    bodies = []   # every response body, for the secrecy test

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="weft-ca-api-")
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    # ---- helpers ----

    def req(self, method, path, body=None, **kw):
        r = self.srv.request(method, path, body=body, **kw)
        CATest.bodies.append(r.body)
        return r

    def f(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, text):
        with open(self.f(name), "w") as out:
            out.write(text)
        return self.f(name)

    def csr(self, san=None, cn="anything", key="ec"):
        """A new key and CSR made by openssl; returns (key path, CSR PEM)."""
        CATest.n += 1
        key_path = self.f("k%d.key" % CATest.n)
        csr_path = self.f("k%d.csr" % CATest.n)
        cmd = [OPENSSL, "req", "-new", "-nodes", "-keyout", key_path, "-out", csr_path,
               "-subj", "/CN=" + cn]
        cmd += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" \
            else ["-newkey", "rsa:2048"]
        if san:
            cmd += ["-addext", "subjectAltName=" + san]
        p = run(cmd)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        with open(csr_path) as src:
            return key_path, src.read()

    def token(self, **body):
        r = self.req("PUT", "/v1/acl/token", body)
        self.assertEqual(r.status, 200, r)
        return r.json()["SecretID"]

    def mesh(self, name):
        r = self.req("PUT", "/v1/meshes/" + name, {"Name": name})
        self.assertEqual(r.status, 200, r)
        return r.json()["TrustDomain"]

    def sign(self, service, csr, mesh=None, token="admin", expect=200):
        """Signs; every leaf issued is checked by openssl verify against the
        mesh's bundle of the moment, with its ChainPEM as untrusted."""
        path = "/v1/connect/ca/sign" + ("?mesh=" + mesh if mesh else "")
        r = self.req("POST", path, {"Service": service, "CSR": csr}, token=token)
        self.assertEqual(r.status, expect, r)
        leaf = r.json()
        if expect == 200:
            CATest.n += 1
            cert, chain = self.save_leaf("issued%d" % CATest.n, leaf)
            bundle = self.write("issued%d-bundle.pem" % CATest.n, self.pem_bundle(mesh))
            self.assertVerifies(bundle, cert, chain)
            sans, _ = self.sans(cert)
            self.assertEqual(sans, ["URI:" + leaf["ServiceURI"]])
            self.assertTrue(leaf["ServiceURI"].endswith("/ns/%s/dc/dc1/svc/%s"
                                                        % (mesh or "default", service)))
        return leaf

    def roots(self, mesh=None, query=""):
        q = "?" + ("mesh=%s&" % mesh if mesh else "") + query
        r = self.req("GET", "/v1/connect/ca/roots" + q)
        self.assertEqual(r.status, 200, r)
        return r

    def save_leaf(self, name, leaf):
        return self.write(name + ".pem", leaf["CertPEM"]), self.write(name + "-chain.pem",
                                                                       leaf["ChainPEM"])

    def verify(self, cafile, leaf, untrusted=None):
        cmd = [OPENSSL, "verify", "-CAfile", cafile]
        if untrusted and os.path.getsize(untrusted) > 0:
            cmd += ["-untrusted", untrusted]
        p = run(cmd + [leaf])
        return p.returncode == 0 and p.stdout.decode().strip().endswith(": OK"), \
            p.stdout.decode() + p.stderr.decode()

    def assertVerifies(self, cafile, leaf, untrusted=None):
        ok, out = self.verify(cafile, leaf, untrusted)
        self.assertTrue(ok, out)

    def sans(self, cert_path):
        p = run([OPENSSL, "x509", "-in", cert_path, "-noout", "-text"])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        text = p.stdout.decode()
        m = re.search(r"X509v3 Subject Alternative Name:.*?\n\s*(.*)\n", text)
        self.assertIsNotNone(m, text)
        return [s.strip() for s in m.group(1).split(",")], text

    def pem_bundle(self, mesh=None):
        r = self.roots(mesh, "pem=true")
        self.assertIn("pem", r.headers.get("Content-Type", ""))
        return r.body

    # ---- roots ----

    def test_roots_shape(self):
        r = self.roots()
        self.assertGreater(r.index, 0)
        doc = r.json()
        td = self.req("GET", "/v1/meshes/default").json()["TrustDomain"]
        self.assertEqual(doc["TrustDomain"], td)
        self.assertEqual(len(doc["Roots"]), 1)
        root = doc["Roots"][0]
        for k in ("ID", "Name", "SerialNumber", "SigningKeyID", "NotBefore", "NotAfter",
                  "RootCert", "IntermediateCerts", "Active", "CreateIndex", "ModifyIndex"):
            self.assertIn(k, root)
        self.assertEqual(doc["ActiveRootID"], root["ID"])
        self.assertTrue(root["Active"])
        self.assertRegex(root["ID"], r"^([0-9a-f]{2}:){19}[0-9a-f]{2}$")
        self.assertIsInstance(root["SerialNumber"], int)
        self.assertTrue(root["RootCert"].startswith("-----BEGIN CERTIFICATE-----"))
        # The ID is the SHA-1 fingerprint of the certificate, as Consul's.
        path = self.write("root-shape.pem", root["RootCert"])
        p = run([OPENSSL, "x509", "-in", path, "-noout", "-fingerprint", "-sha1"])
        fp = p.stdout.decode().strip().split("=", 1)[1].lower()
        self.assertEqual(fp, root["ID"])
        # 10 years, EC P-256
        self.assertTrue(root["NotAfter"].startswith(str(int(root["NotBefore"][:4]) + 10)))
        self.assertEqual((root["PrivateKeyType"], root["PrivateKeyBits"]), ("ec", 256))
        # the agent alias answers the same
        r2 = self.req("GET", "/v1/agent/connect/ca/roots")
        self.assertEqual(r2.json()["ActiveRootID"], root["ID"])
        # the PEM form is the root's certificate; pem is a boolean as in Go
        self.assertEqual(self.pem_bundle().strip(), root["RootCert"].strip())
        self.assertEqual(self.roots(query="pem=false").json()["ActiveRootID"], root["ID"])
        r = self.req("GET", "/v1/connect/ca/roots?pem=maybe")
        self.assertEqual(r.status, 400, r)
        self.assertIn("pem", r.json()["error"])

    def test_roots_blocking(self):
        self.mesh("block")
        r = self.roots("block")
        idx = r.index
        out = {}

        def wait():
            t0 = time.monotonic()
            out["r"] = self.srv.get("/v1/connect/ca/roots?mesh=block&index=%d&wait=10s" % idx)
            out["t"] = time.monotonic() - t0
        th = threading.Thread(target=wait)
        th.start()
        time.sleep(0.5)
        self.assertTrue(th.is_alive(), "the blocking query returned at once")
        u = self.req("PUT", "/v1/connect/ca/configuration?mesh=block", {"RotateRoot": True})
        self.assertEqual(u.status, 200, u)
        th.join(15)
        self.assertFalse(th.is_alive())
        self.assertLess(out["t"], 8)
        self.assertGreater(out["r"].index, idx)
        self.assertEqual(len(out["r"].json()["Roots"]), 2)

    def test_unknown_mesh(self):
        r = self.req("GET", "/v1/connect/ca/roots?mesh=nosuch")
        self.assertEqual(r.status, 404, r)
        r = self.req("GET", "/v1/connect/ca/roots?mesh=Bad_Name")
        self.assertEqual(r.status, 400, r)

    def test_deleted_mesh_takes_its_ca(self):
        self.mesh("gone")
        first = self.roots("gone").json()["ActiveRootID"]
        self.assertEqual(self.req("DELETE", "/v1/meshes/gone").status, 200)
        self.assertEqual(self.req("GET", "/v1/connect/ca/roots?mesh=gone").status, 404)
        _, csr = self.csr()
        r = self.req("POST", "/v1/connect/ca/sign?mesh=gone", {"Service": "web", "CSR": csr})
        self.assertEqual(r.status, 404, r)
        self.mesh("gone")
        doc = self.roots("gone").json()
        self.assertNotEqual(doc["ActiveRootID"], first)
        self.assertEqual(len(doc["Roots"]), 1)

    # ---- signing ----

    def test_sign_verify_and_san(self):
        key, csr = self.csr()
        leaf = self.sign("web", csr)
        td = self.roots().json()["TrustDomain"]
        uri = "spiffe://%s/ns/default/dc/dc1/svc/web" % td
        self.assertEqual(leaf["ServiceURI"], uri)
        self.assertEqual(leaf["Service"], "web")
        for k in ("SerialNumber", "CertPEM", "ChainPEM", "ValidAfter", "ValidBefore",
                  "CreateIndex", "ModifyIndex"):
            self.assertIn(k, leaf)
        cert, chain = self.save_leaf("web", leaf)
        bundle = self.write("bundle-web.pem", self.pem_bundle())
        self.assertVerifies(bundle, cert, chain)
        sans, text = self.sans(cert)
        self.assertEqual(sans, ["URI:" + uri])
        self.assertIn("Subject: CN = web", text)
        # RSA keys are accepted too
        _, csr = self.csr(key="rsa")
        cert, chain = self.save_leaf("web-rsa", self.sign("web", csr))
        self.assertVerifies(bundle, cert, chain)

    def test_csr_asking_for_another_san_gets_the_right_one(self):
        td = self.roots().json()["TrustDomain"]
        _, csr = self.csr(san="URI:spiffe://%s/ns/default/dc/dc1/svc/admin,DNS:evil.example"
                          % td, cn="admin")
        leaf = self.sign("web", csr)
        cert, chain = self.save_leaf("evil", leaf)
        sans, text = self.sans(cert)
        self.assertEqual(sans, ["URI:spiffe://%s/ns/default/dc/dc1/svc/web" % td])
        self.assertNotIn("evil.example", text)
        self.assertNotIn("svc/admin", text)
        self.assertIn("Subject: CN = web", text)

    def test_service_token_only_for_its_service(self):
        tok = self.token(Kind="service", ServiceName="alpha")
        _, csr = self.csr()
        leaf = self.sign("alpha", csr, token=tok)
        self.assertTrue(leaf["ServiceURI"].endswith("/svc/alpha"))
        r = self.req("POST", "/v1/connect/ca/sign", {"Service": "beta", "CSR": csr}, token=tok)
        self.assertEqual(r.status, 403, r)
        self.assertIn("service:write", r.json()["error"])
        self.assertIn("beta", r.json()["error"])
        ro = self.token(Kind="read-only")
        r = self.req("POST", "/v1/connect/ca/sign", {"Service": "alpha", "CSR": csr}, token=ro)
        self.assertEqual(r.status, 403, r)
        r = self.req("POST", "/v1/connect/ca/sign", {"Service": "alpha", "CSR": csr}, token=None)
        self.assertEqual(r.status, 403, r)

    def test_agent_token_signs_for_its_nodes_services(self):
        tok = self.token(Kind="agent", NodeName="n-ca")
        r = self.req("PUT", "/v1/catalog/register",
                     {"Node": "n-ca", "Address": "10.0.0.9",
                      "Service": {"Service": "gamma", "Port": 80}}, token=tok)
        self.assertEqual(r.status, 200, r)
        _, csr = self.csr()
        leaf = self.sign("gamma", csr, token=tok)
        self.assertTrue(leaf["ServiceURI"].endswith("/svc/gamma"))
        r = self.req("POST", "/v1/connect/ca/sign", {"Service": "delta", "CSR": csr}, token=tok)
        self.assertEqual(r.status, 403, r)
        self.assertIn('"delta"', r.json()["error"])
        self.assertIn("n-ca", r.json()["error"])

    def test_malformed_csr(self):
        _, csr = self.csr()
        for bad in ("", "junk", csr.replace("A", "B", 5), csr[:len(csr) // 2],
                    "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"):
            r = self.req("POST", "/v1/connect/ca/sign", {"Service": "web", "CSR": bad})
            self.assertEqual(r.status, 400, (bad[:40], r))
            self.assertTrue(r.json()["error"].startswith("CSR"), r)
        # a CSR whose signature does not match its key (tampered body)
        r = self.req("POST", "/v1/connect/ca/sign", {"Service": "web"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("CSR", r.json()["error"])
        r = self.req("POST", "/v1/connect/ca/sign", {"Service": "no/slash", "CSR": csr})
        self.assertEqual(r.status, 400, r)
        self.assertTrue(r.json()["error"].startswith("Service"), r)
        r = self.req("POST", "/v1/connect/ca/sign", "not json")
        self.assertEqual(r.status, 400, r)

    def test_sign_in_another_mesh(self):
        td = self.mesh("payments")
        _, csr = self.csr()
        leaf = self.sign("api", csr, mesh="payments")
        self.assertEqual(leaf["ServiceURI"], "spiffe://%s/ns/payments/dc/dc1/svc/api" % td)
        cert, chain = self.save_leaf("pay", leaf)
        self.assertVerifies(self.write("pay-bundle.pem", self.pem_bundle("payments")), cert, chain)
        # not by the default mesh's root
        ok, out = self.verify(self.write("def-bundle.pem", self.pem_bundle()), cert, chain)
        self.assertFalse(ok, out)

    # ---- configuration ----

    def test_configuration(self):
        self.mesh("cfg")
        r = self.req("GET", "/v1/connect/ca/configuration?mesh=cfg")
        self.assertEqual(r.status, 200, r)
        c = r.json()
        self.assertEqual(c["Provider"], "weft")
        self.assertEqual(c["Config"]["LeafCertTTL"], "24h0m0s")
        root_id = self.roots("cfg").json()["ActiveRootID"]
        r = self.req("PUT", "/v1/connect/ca/configuration?mesh=cfg",
                     {"Provider": "consul", "Config": {"LeafCertTTL": "1h"}})
        self.assertEqual(r.status, 200, r)
        c = self.req("GET", "/v1/connect/ca/configuration?mesh=cfg").json()
        self.assertEqual(c["Config"]["LeafCertTTL"], "1h0m0s")
        # a TTL change is not a rotation
        self.assertEqual(self.roots("cfg").json()["ActiveRootID"], root_id)
        _, csr = self.csr()
        leaf = self.sign("api", csr, mesh="cfg")
        cert, _ = self.save_leaf("cfg", leaf)
        p = run([OPENSSL, "x509", "-in", cert, "-noout", "-checkend", "3500"])
        self.assertEqual(p.returncode, 0)
        p = run([OPENSSL, "x509", "-in", cert, "-noout", "-checkend", "3700"])
        self.assertNotEqual(p.returncode, 0)
        for body, field in (({"Provider": "vault"}, "Provider"),
                            ({"Config": {"LeafCertTTL": "forever"}}, "Config.LeafCertTTL"),
                            ({"Config": {"LeafCertTTL": "500ms"}}, "Config.LeafCertTTL"),
                            ({"Config": {"Bogus": 1}}, "Config.Bogus"),
                            ({"Config": {"RootCert": "x"}}, "Config.RootCert"),
                            ({"Provider": "provided"}, "Config.RootCert")):
            r = self.req("PUT", "/v1/connect/ca/configuration?mesh=cfg", body)
            self.assertEqual(r.status, 400, (body, r))
            self.assertTrue(r.json()["error"].startswith(field), (body, r))
        ro = self.token(Kind="read-only")
        r = self.req("PUT", "/v1/connect/ca/configuration?mesh=cfg", {"RotateRoot": True},
                     token=ro)
        self.assertEqual(r.status, 403, r)
        self.assertEqual(self.roots("cfg").json()["ActiveRootID"], root_id)
        # What Consul's Go client (api.CAConfig) sends, and a GET sent back as it is:
        # accepted, no rotation.
        r = self.req("PUT", "/v1/connect/ca/configuration?mesh=cfg",
                     {"Provider": "consul", "Config": {"LeafCertTTL": "72h",
                                                       "RotationPeriod": "2160h",
                                                       "IntermediateCertTTL": "8760h",
                                                       "CSRMaxPerSecond": 50},
                      "State": None, "ForceWithoutCrossSigning": False,
                      "CreateIndex": 0, "ModifyIndex": 0})
        self.assertEqual(r.status, 200, r)
        got = self.req("GET", "/v1/connect/ca/configuration?mesh=cfg").json()
        self.assertEqual(got["Config"]["LeafCertTTL"], "72h0m0s")
        r = self.req("PUT", "/v1/connect/ca/configuration?mesh=cfg", got)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.roots("cfg").json()["ActiveRootID"], root_id)
        # RootCertTTL applies to the root a rotation makes
        r = self.req("PUT", "/v1/connect/ca/configuration?mesh=cfg",
                     {"RotateRoot": True, "Config": {"RootCertTTL": "8760h"}})
        self.assertEqual(r.status, 200, r)
        doc = self.roots("cfg").json()
        new = [x for x in doc["Roots"] if x["Active"]][0]
        self.assertNotEqual(new["ID"], root_id)
        self.assertEqual(int(new["NotAfter"][:4]), int(new["NotBefore"][:4]) + 1)

    def test_provided_ca(self):
        td = self.mesh("prov")
        key = self.f("prov-root.key")
        cert = self.f("prov-root.pem")
        p = run([OPENSSL, "req", "-x509", "-new", "-nodes", "-newkey", "ec",
                 "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", key, "-out", cert,
                 "-days", "365", "-subj", "/CN=Operator Root",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-addext", "subjectAltName=URI:spiffe://" + td])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        with open(cert) as a, open(key) as b:
            cert_pem, key_pem = a.read(), b.read()
        CATest.provided_key = key_pem
        _, csr = self.csr()
        old_cert, old_chain = self.save_leaf("prov-old", self.sign("api", csr, mesh="prov"))
        old_bundle = self.write("prov-old-bundle.pem", self.pem_bundle("prov"))
        r = self.req("PUT", "/v1/connect/ca/configuration?mesh=prov",
                     {"Provider": "provided", "Config": {"RootCert": cert_pem,
                                                         "PrivateKey": key_pem}})
        self.assertEqual(r.status, 200, r)
        doc = self.roots("prov").json()
        active = [x for x in doc["Roots"] if x["Active"]]
        self.assertEqual(len(active), 1)
        self.assertEqual(active[0]["RootCert"].strip(), cert_pem.strip())
        self.assertEqual(active[0]["Name"], "Operator Root")
        self.assertEqual(len(doc["Roots"]), 2)
        c = self.req("GET", "/v1/connect/ca/configuration?mesh=prov").json()
        self.assertEqual(c["Provider"], "provided")
        self.assertEqual(c["Config"]["RootCert"].strip(), cert_pem.strip())
        self.assertNotIn("PrivateKey", c["Config"])
        # the GET sent back (no key): no change
        r = self.req("PUT", "/v1/connect/ca/configuration?mesh=prov", c)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.roots("prov").json()["Roots"]), 2)
        _, csr = self.csr()
        leaf = self.sign("api", csr, mesh="prov")
        new_cert, new_chain = self.save_leaf("prov-new", leaf)
        self.assertVerifies(cert, new_cert, new_chain)
        # holders of the previous (generated) root accept it through the cross-signed cert
        self.assertVerifies(old_bundle, new_cert, new_chain)
        self.assertVerifies(self.write("prov-bundle.pem", self.pem_bundle("prov")), old_cert,
                            old_chain)
        # The same root again is no rotation; a key that does not match is refused.
        r = self.req("PUT", "/v1/connect/ca/configuration?mesh=prov",
                     {"Provider": "provided", "Config": {"RootCert": cert_pem,
                                                         "PrivateKey": key_pem}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.roots("prov").json()["Roots"]), 2)
        other_key = self.f("other.key")
        run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", other_key])
        with open(other_key) as src:
            other = src.read()
        gen = self.f("gen-root.pem")
        run([OPENSSL, "req", "-x509", "-new", "-key", other_key, "-out", gen, "-days", "30",
             "-subj", "/CN=Mismatch", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        with open(gen) as src:
            gen_pem = src.read()
        r = self.req("PUT", "/v1/connect/ca/configuration?mesh=prov",
                     {"Provider": "provided", "Config": {"RootCert": gen_pem, "PrivateKey": key_pem}})
        self.assertEqual(r.status, 400, r)
        self.assertTrue(r.json()["error"].startswith("Config."), r)
        self.assertNotIn("PRIVATE KEY", r.body)

    # ---- rotation ----

    def handshake(self, server_cert, server_key, server_chain, server_trust, client_cert,
                  client_key, client_trust):
        port = harness.free_port()
        cmd = [OPENSSL, "s_server", "-accept", "127.0.0.1:%d" % port, "-www",
               "-cert", server_cert, "-key", server_key, "-CAfile", server_trust,
               "-Verify", "3", "-verify_return_error"]
        if os.path.getsize(server_chain) > 0:
            cmd += ["-cert_chain", server_chain]
        server = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
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
            client = run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port,
                          "-cert", client_cert, "-key", client_key, "-CAfile", client_trust,
                          "-verify", "3", "-verify_return_error", "-ign_eof"],
                         input=b"GET / HTTP/1.0\r\n\r\n")
            out = client.stdout.decode(errors="replace") + client.stderr.decode(errors="replace")
            return (client.returncode == 0 and "Verify return code: 0 (ok)" in out
                    and "HTTP/1.0 200 ok" in out), out
        finally:
            server.kill()
            server.wait(timeout=10)
            server.stdout.close()

    def test_rotation(self):
        self.mesh("rot")
        r = self.req("PUT", "/v1/connect/ca/configuration?mesh=rot",
                     {"Config": {"LeafCertTTL": "3s"}})
        self.assertEqual(r.status, 200, r)
        before = self.roots("rot").json()
        old_id = before["ActiveRootID"]
        old_root = self.write("rot-old-root.pem", self.pem_bundle("rot"))
        ckey, csr = self.csr()
        client_cert, client_chain = self.save_leaf("rot-client", self.sign("web", csr, mesh="rot"))

        r = self.req("PUT", "/v1/connect/ca/configuration?mesh=rot", {"RotateRoot": True})
        self.assertEqual(r.status, 200, r)
        t_rot = time.monotonic()
        doc = self.roots("rot").json()
        self.assertNotEqual(doc["ActiveRootID"], old_id)
        ids = {x["ID"]: x for x in doc["Roots"]}
        self.assertEqual(set(ids), {old_id, doc["ActiveRootID"]})
        self.assertFalse(ids[old_id]["Active"])
        new = ids[doc["ActiveRootID"]]
        self.assertTrue(new["Active"])
        self.assertEqual(len(new["IntermediateCerts"]), 1)   # cross-signed by the old root
        cross = self.write("rot-cross.pem", new["IntermediateCerts"][0])
        self.assertVerifies(old_root, cross)
        new_root = self.write("rot-new-root.pem", new["RootCert"])

        skey, csr = self.csr()
        server_cert, server_chain = self.save_leaf("rot-server", self.sign("api", csr, mesh="rot"))
        # leaves signed after the rotation chain to the new root
        self.assertVerifies(new_root, server_cert)
        ok, out = self.verify(old_root, server_cert)
        self.assertFalse(ok, out)
        self.assertVerifies(old_root, server_cert, server_chain)
        bundle = self.write("rot-bundle.pem", self.pem_bundle("rot"))
        self.assertVerifies(bundle, client_cert, client_chain)
        self.assertVerifies(bundle, server_cert, server_chain)
        # mTLS during the transition: the server (new leaf) trusts the bundle,
        # the client (old leaf) knows only the old root.
        ok, out = self.handshake(server_cert, skey, server_chain, bundle, client_cert, ckey,
                                 old_root)
        self.assertTrue(ok, out)
        # After the longest leaf TTL the old root leaves the bundle.
        deadline = t_rot + 3 + 5
        while time.monotonic() < deadline:
            doc = self.roots("rot").json()
            if len(doc["Roots"]) == 1:
                break
            time.sleep(0.2)
        self.assertGreaterEqual(time.monotonic() - t_rot, 2.5)
        self.assertEqual([x["ID"] for x in doc["Roots"]], [new["ID"]])
        bundle2 = self.write("rot-bundle2.pem", self.pem_bundle("rot"))
        ok, out = self.verify(bundle2, client_cert, client_chain)
        self.assertFalse(ok, out)
        ok, out = self.handshake(server_cert, skey, server_chain, bundle2, client_cert, ckey,
                                 old_root)
        self.assertFalse(ok, out)

    # ---- secrets (runs last: alphabetical order) ----

    def test_zz_no_private_key_anywhere(self):
        # create, rotate and sign once more so that the run covers it all
        self.mesh("secret")
        self.req("PUT", "/v1/connect/ca/configuration?mesh=secret", {"RotateRoot": True})
        _, csr = self.csr()
        self.sign("web", csr, mesh="secret")
        self.req("GET", "/v1/connect/ca/configuration?mesh=secret")
        self.roots("secret")
        metrics = self.req("GET", "/metrics")
        self.assertIn('weft_ca_leaves_signed_total{mesh="secret"} 1', metrics.body)
        self.assertIn("weft_ca_root_expiry_seconds", metrics.body)
        self.assertIn("weft_ca_sign_errors_total", metrics.body)
        texts = list(CATest.bodies) + [self.srv.read_log(), metrics.body]
        for t in texts:
            self.assertNotIn("PRIVATE KEY", t)
        # the provided key's material (base64 body) appears nowhere either
        key_pem = getattr(CATest, "provided_key", None)
        if key_pem:
            b64 = "".join(l for l in key_pem.splitlines() if not l.startswith("-----"))
            p = run([OPENSSL, "pkey", "-noout", "-text"], input=key_pem.encode())
            m = re.search(r"priv:\n((?:\s+[0-9a-f:]+\n)+)", p.stdout.decode())
            self.assertIsNotNone(m, p.stdout.decode())
            scalar = bytes.fromhex(re.sub(r"[\s:]", "", m.group(1)))[-32:]
            for t in texts:
                flat = t.replace("\n", "").replace("\\n", "")
                self.assertNotIn(b64[10:60], flat)
                self.assertNotIn(scalar.hex(), flat.replace(":", "").lower())
                self.assertNotIn(base64.b64encode(scalar).decode()[:24], flat)
        # in the store, keys are sealed; the sealing key file is private
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.srv.data_dir, "weft.db"),
                             uri=True)
        try:
            rows = db.execute("SELECT sealed_key FROM ca_roots").fetchall()
        finally:
            db.close()
        self.assertGreater(len(rows), 3)
        for (sealed,) in rows:
            self.assertTrue(sealed.startswith("weftseal1."), sealed[:20])
        for name in os.listdir(self.srv.data_dir):
            if name.startswith("weft.db"):
                with open(os.path.join(self.srv.data_dir, name), "rb") as src:
                    self.assertNotIn(b"PRIVATE KEY", src.read())
        mode = os.stat(os.path.join(self.srv.data_dir, "ca-seal.key")).st_mode & 0o777
        self.assertEqual(mode, 0o600)


if __name__ == "__main__":
    harness.main()
