"""weft-agent's certificates (agent/certs.c, docs/agent.md "Certificates"),
run by tests/tools/certs-driver against a real weft-server with
authentication on and an agent token for node vm1: keys made locally,
0600, matching their leaf; the leaf's only URI SAN is the service's SPIFFE
ID and it chains to roots.pem; Consul's leaf and roots answers; renewal
at about half the lifetime (short LeafCertTTL) with the changed callback,
files never seen half-written; a service not yet registered is retried
until it is; the set replaces (files of removed services deleted); with
the server stopped the files stay and a restarted agent serves from them;
a leaf past its renewal point at start is renewed; a root rotation
rewrites roots.pem and renews the leaves from the new root."""
import json
import os
import queue
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DRIVER = os.path.join(harness.BUILDDIR, "tests", "tools", "certs-driver")
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n")


def wall(rfc3339):
    """Seconds since the epoch of "2026-11-26T08:50:32.010Z" or "...:32Z"."""
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in rfc3339 else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.strptime(rfc3339, fmt).replace(tzinfo=timezone.utc).timestamp()


def openssl(*args, data=None):
    r = subprocess.run([OPENSSL] + list(args), input=data, capture_output=True, timeout=30)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


class Driver:
    """The certs module in its own process; commands on stdin, answers and
    "event ..." lines on stdout, the module's log in DIR/../driver.log."""

    def __init__(self, test, srv, certs_dir, services, token_file):
        self.log_path = certs_dir.rstrip("/") + "-driver-%d.log" % time.monotonic_ns()
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [DRIVER, "--dir", certs_dir, "--server", srv.addr, "--token-file", token_file]
            + list(services),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.events = []            # (monotonic time, "changed web" / "changed-bundle")
        self.answers = queue.Queue()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        test.addCleanup(self.close)
        self.expect("started")

    def read(self):
        for raw in self.proc.stdout:
            line = raw.decode().rstrip("\n")
            if line.startswith("event "):
                with self.lock:
                    self.events.append((time.monotonic(), line[6:]))
            else:
                self.answers.put(line)

    def expect(self, prefix, timeout=15):
        try:
            line = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("certs-driver: no answer; log:\n" + self.text())
        if not line.startswith(prefix):
            raise AssertionError("certs-driver: %r, wanted %r" % (line, prefix))
        return line[len(prefix):].strip()

    def cmd(self, line, prefix=None):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        try:
            return self.answers.get(timeout=15)
        except queue.Empty:
            raise AssertionError("certs-driver: no answer to %r; log:\n%s" % (line, self.text()))

    def leaf(self, service):
        line = self.cmd("leaf " + service)
        return json.loads(line[5:]) if line.startswith("leaf ") else None

    def roots(self):
        line = self.cmd("roots")
        return json.loads(line[6:]) if line.startswith("roots ") else None

    def ready(self):
        return self.cmd("ready") == "ready 1"

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def changed(self, what):
        with self.lock:
            return [t for t, e in self.events if e == what]

    def wait_event(self, what, count=1, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.changed(what)) >= count:
                return self.changed(what)
            time.sleep(0.05)
        raise AssertionError("no %d x %r in %ss (got %r); log:\n%s" % (
            count, what, timeout, self.events, self.text()[-3000:]))

    def wait_ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            time.sleep(0.05)
        raise AssertionError("not ready in %ss; log:\n%s" % (timeout, self.text()[-3000:]))

    def quit(self):
        if self.proc.poll() is None:
            self.proc.stdin.write(b"quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=15)
        self.reader.join(timeout=5)
        log = self.text()
        if self.proc.returncode != 0 or "Sanitizer" in log or "runtime error:" in log:
            raise AssertionError("certs-driver exited %s; log:\n%s" % (self.proc.returncode, log))
        return log

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.log.close()


class CertsTestBase(unittest.TestCase):
    leaf_ttl = None             # the CA's LeafCertTTL, or None for the default (24h)

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="weft-certs-")
        os.mkdir(os.path.join(cls.tmp, "server"))
        cls.srv = harness.Server(data_dir=os.path.join(cls.tmp, "server"))
        cls.register("web")
        cls.register("api")
        r = cls.srv.put("/v1/acl/token", {"Kind": "agent", "NodeName": "vm1"})
        assert r.status == 200, r
        cls.token_file = os.path.join(cls.tmp, "agent.token")
        with open(cls.token_file, "w") as f:
            f.write(r.json()["SecretID"] + "\n")
        if cls.leaf_ttl:
            r = cls.srv.put("/v1/connect/ca/configuration", {"Config": {"LeafCertTTL": cls.leaf_ttl}})
            assert r.status == 200, r

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        log = cls.srv.read_log()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if rc != 0 or "Sanitizer" in log or "runtime error:" in log:
            raise AssertionError("weft-server exited %s; log:\n%s" % (rc, log[-4000:]))

    @classmethod
    def register(cls, service):
        r = cls.srv.put("/v1/catalog/register", {
            "Node": "vm1", "Address": "127.0.0.1",
            "Service": {"Service": service, "ID": service + "-1", "Port": 8080}})
        assert r.status == 200, r

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="certs-", dir=self.tmp)

    def driver(self, *services):
        return Driver(self, self.srv, self.dir, services, self.token_file)

    def f(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.f(name)) as fh:
            return fh.read()

    def server_roots(self):
        r = self.srv.get("/v1/connect/ca/roots")
        self.assertEqual(r.status, 200, r)
        return r.json()

    def spiffe(self, service):
        return "spiffe://%s/ns/default/dc/dc1/svc/%s" % (self.server_roots()["TrustDomain"], service)

    def assertLeafGood(self, service):
        """The key is 0600 and matches the certificate, whose only SAN is the
        service's SPIFFE ID and which chains to roots.pem."""
        crt, key, bundle = self.f(service + ".crt"), self.f(service + ".key"), self.f("roots.pem")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        rc, pub_key = openssl("pkey", "-in", key, "-pubout")
        self.assertEqual(rc, 0, pub_key)
        rc, pub_crt = openssl("x509", "-in", crt, "-noout", "-pubkey")
        self.assertEqual(rc, 0, pub_crt)
        self.assertEqual(pub_key, pub_crt)
        rc, san = openssl("x509", "-in", crt, "-noout", "-ext", "subjectAltName")
        self.assertEqual(rc, 0, san)
        self.assertEqual(re.findall(r"(?:URI|DNS|IP Address|email):\S+", san),
                         ["URI:" + self.spiffe(service)])
        rc, out = openssl("verify", "-CAfile", bundle, "-untrusted", crt, crt)
        self.assertEqual(rc, 0, out)
        self.assertIn(": OK", out)

    def akid(self, service):
        rc, out = openssl("x509", "-in", self.f(service + ".crt"), "-noout", "-ext",
                          "authorityKeyIdentifier")
        self.assertEqual(rc, 0, out)
        return re.search(r"([0-9A-F]{2}(?::[0-9A-F]{2})+)", out).group(1).lower()


class LeafTest(CertsTestBase):
    leaf_ttl = "3s"

    def test_leaf_files_and_answers(self):
        d = self.driver("web")
        d.wait_ready()
        self.assertLeafGood("web")
        self.assertEqual(d.cmd("paths web"), "paths %s %s %s" % (
            self.f("web.crt"), self.f("web.key"), self.f("roots.pem")))
        self.assertEqual(d.cmd("paths nope"), "enoent")
        # Consul's leaf answer, consistent with the files
        leaf = d.leaf("web")
        for _ in range(50):     # the files and the answer of one leaf (it renews every ~1.5 s)
            crt, key = self.read("web.crt"), self.read("web.key")
            if leaf["CertPEM"] == crt and leaf["PrivateKeyPEM"] == key:
                break
            leaf = d.leaf("web")
        self.assertEqual(leaf["CertPEM"], crt)
        self.assertEqual(leaf["PrivateKeyPEM"], key)
        self.assertEqual(leaf["Service"], "web")
        self.assertEqual(leaf["ServiceURI"], self.spiffe("web"))
        self.assertRegex(leaf["SerialNumber"], r"^[0-9a-f]{2}(:[0-9a-f]{2}){15}$")
        self.assertRegex(leaf["ValidAfter"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertGreater(leaf["ValidBefore"], leaf["ValidAfter"])
        roots = self.server_roots()
        active = [r for r in roots["Roots"] if r["Active"]][0]
        self.assertEqual(leaf["ModifyIndex"], active["ModifyIndex"])
        self.assertEqual(leaf["CreateIndex"], active["ModifyIndex"])
        rc, serial = openssl("x509", "-noout", "-serial", data=leaf["CertPEM"].encode())
        self.assertEqual(serial.strip().split("=")[1].lower(), leaf["SerialNumber"].replace(":", ""))
        self.assertIsNone(d.leaf("nope"))
        # the roots answer is the server's, and roots.pem is its PEM form
        self.assertEqual(d.roots(), roots)
        self.assertEqual(self.read("roots.pem"), self.srv.get("/v1/connect/ca/roots?pem=true").body)
        self.assertEqual(len(d.changed("changed-bundle")), 1)
        log = d.quit()
        self.assertNotIn("PRIVATE KEY", log)

    def test_renewal_at_half_life(self):
        d = self.driver("web")
        d.wait_event("changed web")
        # a reader never sees half a file while the leaf is replaced
        stop, seen, bad = threading.Event(), set(), []

        def reader():
            while not stop.is_set():
                text = self.read("web.crt")
                if PEM_CERT.fullmatch(text) is None:
                    bad.append(text)
                seen.add(text)
        t = threading.Thread(target=reader)
        t.start()
        try:
            times = d.wait_event("changed web", count=4, timeout=15)
        finally:
            stop.set()
            t.join()
        self.assertEqual(bad, [])
        self.assertGreaterEqual(len(seen), 3)
        # each leaf replaced at 40-60 % of the life it had when it came
        # (plus the time to sign one), never waiting for its expiry
        signed = [(wall(t), wall(vb)) for t, vb in re.findall(
            r"(\S+) level=info sub=certs leaf signed: service=web \S+ \S+ valid_before=(\S+)",
            d.text())]
        fractions = [(b[0] - a[0]) / (a[1] - a[0]) for a, b in zip(signed, signed[1:])]
        self.assertGreaterEqual(len(fractions), 3, d.text())
        for f in fractions:
            self.assertGreater(f, 0.38, fractions)
            self.assertLess(f, 0.75, fractions)
        self.assertGreaterEqual(len(signed), len(times))      # a callback per new leaf
        self.assertLeafGood("web")
        serials = re.findall(r"leaf signed: service=web serial=(\S+)", d.text())
        self.assertEqual(len(set(serials)), len(serials))
        self.assertGreaterEqual(len(serials), 4)
        d.quit()

    def test_unregistered_service_is_retried_until_registered(self):
        d = self.driver("db")
        deadline = time.monotonic() + 10
        while "HTTP 403" not in d.text() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertRegex(d.text(), r"leaf not signed: service=db error=\"permission denied.*"
                         r"\"db\" has no instance there.*\(HTTP 403\)\" retry_in_ms=\d+ \(no leaf yet\)")
        self.assertFalse(d.ready())
        self.assertIsNone(d.leaf("db"))
        self.assertFalse(os.path.exists(self.f("db.key")))
        time.sleep(1.5)
        self.register("db")
        self.addCleanup(self.srv.put, "/v1/catalog/deregister", {"Node": "vm1", "ServiceID": "db-1"})
        d.wait_event("changed db", timeout=20)
        d.wait_ready()
        self.assertLeafGood("db")
        # the waits grew (1 s doubling, each between half and all of it)
        waits = [int(x) for x in re.findall(r"service=db .*retry_in_ms=(\d+)", d.text())]
        self.assertGreaterEqual(len(waits), 2, d.text())
        self.assertLessEqual(waits[0], 1000)
        self.assertGreaterEqual(max(waits), 1000)
        d.quit()

    def test_set_replaces_and_deletes(self):
        d = self.driver("web", "api")
        d.wait_ready()
        self.assertTrue(os.path.exists(self.f("api.key")))
        self.assertEqual(d.cmd("set web web"), "ok")
        self.assertFalse(os.path.exists(self.f("api.key")))
        self.assertFalse(os.path.exists(self.f("api.crt")))
        self.assertEqual(d.cmd("paths api"), "enoent")
        self.assertIsNone(d.leaf("api"))
        self.assertTrue(d.ready())
        self.assertTrue(os.path.exists(self.f("web.key")))
        self.assertTrue(d.cmd("set web ../etc").startswith("error certs: service \"../etc\""))
        self.assertTrue(os.path.exists(self.f("web.key")))       # a refused set changes nothing
        self.assertEqual(d.cmd("set"), "ok")
        self.assertFalse(os.path.exists(self.f("web.key")))
        self.assertTrue(d.ready())                              # nothing needed, a bundle
        self.assertEqual(sorted(n for n in os.listdir(self.dir) if ".tmp." not in n),
                         ["roots.json", "roots.pem"])
        d.quit()
        self.assertEqual([n for n in os.listdir(self.dir) if ".tmp." in n], [])


class StaticStabilityTest(CertsTestBase):
    """Default leaf TTL (24 h): nothing renews during the test."""

    def test_files_serve_while_the_server_is_down(self):
        d = self.driver("web")
        d.wait_ready()
        leaf = d.leaf("web")
        roots = d.roots()
        files = {n: self.read(n) for n in ("web.crt", "web.key", "roots.pem")}
        d.quit()
        self.srv.stop()
        try:
            d = self.driver("web")
            # ready at once from the disk, with the same leaf and roots
            self.assertTrue(d.ready())
            self.assertEqual(d.leaf("web"), leaf)
            self.assertEqual(d.roots(), roots)
            self.assertRegex(d.text(), r"leaf loaded from disk: service=web serial=%s"
                             % re.escape(leaf["SerialNumber"]))
            deadline = time.monotonic() + 10
            while d.text().count("roots not fetched") < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertIn("cannot reach weft-server at %s" % self.srv.addr, d.text())
            self.assertGreaterEqual(d.text().count("roots not fetched"), 2)
            self.assertEqual({n: self.read(n) for n in files}, files)
            self.assertEqual(d.events, [])
        finally:
            self.srv.start()
        # the server back: followed again; same roots, so no change
        deadline = time.monotonic() + 20
        while "answers again" not in d.text() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("roots: weft-server at %s answers again" % self.srv.addr, d.text())
        self.assertEqual(d.events, [])
        self.assertEqual({n: self.read(n) for n in files}, files)
        d.quit()

    def test_unusable_files_are_replaced(self):
        d = self.driver("web")
        d.wait_ready()
        d.quit()
        os.chmod(self.f("web.key"), 0o644)              # a key others could read
        d = self.driver("web")
        d.wait_event("changed web")
        self.assertIn("group or others may read it", d.text())
        self.assertLeafGood("web")
        d.quit()
        with open(self.f("web.key"), "w") as fh:         # a key of another certificate
            fh.write(self.read("roots.pem"))
        os.chmod(self.f("web.key"), 0o600)
        d = self.driver("web")
        d.wait_event("changed web")
        self.assertIn("leaf on disk not used: service=web", d.text())
        self.assertLeafGood("web")
        d.quit()


class NearExpiryTest(CertsTestBase):
    leaf_ttl = "8s"

    def test_leaf_past_its_renewal_point_renewed_at_start(self):
        d = self.driver("web")
        d.wait_event("changed web")
        t_signed = time.monotonic()
        serial = d.leaf("web")["SerialNumber"]
        d.quit()
        # past 60 % of its 8 s, not expired
        time.sleep(max(0, t_signed + 5.2 - time.monotonic()))
        d = self.driver("web")
        self.assertTrue(d.ready())
        d.wait_event("changed web", timeout=5)
        self.assertRegex(d.text(), r"leaf loaded from disk: service=web serial=%s" % re.escape(serial))
        self.assertNotEqual(d.leaf("web")["SerialNumber"], serial)
        self.assertLeafGood("web")
        d.quit()


class RotationTest(CertsTestBase):
    leaf_ttl = "20s"

    def test_root_rotation(self):
        d = self.driver("web", "api")
        d.wait_ready()
        d.wait_event("changed web")
        old = self.server_roots()
        old_root = [r for r in old["Roots"] if r["Active"]][0]
        self.assertEqual(self.akid("web"), old_root["SigningKeyID"])
        n_web = len(d.changed("changed web"))
        r = self.srv.put("/v1/connect/ca/configuration", {"RotateRoot": True})
        self.assertEqual(r.status, 200, r)
        t_rot = time.monotonic()
        d.wait_event("changed-bundle", count=2)
        new = self.server_roots()
        new_root = [r for r in new["Roots"] if r["Active"]][0]
        self.assertNotEqual(new_root["ID"], old_root["ID"])
        # both roots and the cross-signed one, as the server's PEM answer
        bundle = self.read("roots.pem")
        self.assertEqual(bundle, self.srv.get("/v1/connect/ca/roots?pem=true").body)
        self.assertEqual(bundle.count("BEGIN CERTIFICATE"), 3)
        self.assertIn(old_root["RootCert"].strip(), bundle)
        self.assertIn(new_root["RootCert"].strip(), bundle)
        self.assertEqual(d.roots(), new)
        # the leaves follow the new root within min(30 s, a quarter of
        # what they have left): here under 5 s, before their renewal
        # point (8-12 s)
        d.wait_event("changed web", count=n_web + 1, timeout=8)
        d.wait_event("changed api", count=2, timeout=8)
        self.assertLess(time.monotonic() - t_rot, 7.5)
        self.assertIn("root changed: service=web", d.text())
        self.assertEqual(self.akid("web"), new_root["SigningKeyID"])
        self.assertEqual(self.akid("api"), new_root["SigningKeyID"])
        self.assertLeafGood("web")
        self.assertLeafGood("api")
        # a peer that still trusts only the old root accepts the new leaf
        # (through the cross-signed certificate in the .crt file)
        only_old = os.path.join(self.tmp, "only-old.pem")
        with open(only_old, "w") as fh:
            fh.write(old_root["RootCert"])
        rc, out = openssl("verify", "-CAfile", only_old, "-untrusted", self.f("web.crt"),
                          self.f("web.crt"))
        self.assertEqual(rc, 0, out)
        d.quit()


if __name__ == "__main__":
    harness.main()
