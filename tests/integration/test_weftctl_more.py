"""weftctl commands whose server endpoints live in other branches:
kv (/v1/kv), lock (/v1/kv + /v1/session), token (/v1/acl/token*) and
members (/v1/agent/members). Wire this file into tests/Makefile.inc once
those endpoints are merged."""
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CTL_BIN, ServerTest  # noqa: E402

LOCK_FLAGS = 0x2ddccbc058a50c18


def ctl_env(env=None):
    full = {k: v for k, v in os.environ.items()
            if k not in ("WEFT_HTTP_ADDR", "WEFT_HTTP_TOKEN")}
    full.update(env or {})
    return full


class CtlMixin:
    def ctl(self, *args, token=None, env=None, input=None, timeout=30, binary=False):
        cmd = [CTL_BIN, "--address", self.srv.addr]
        if token:
            cmd += ["--token", token]
        cmd += list(args)
        return subprocess.run(cmd, capture_output=True, text=not binary, env=ctl_env(env),
                              input=input, timeout=timeout)

    def kv(self, key):
        r = self.srv.get("/v1/kv/" + key)
        return r.json()[0] if r.status == 200 else None


class WeftctlKVTest(CtlMixin, ServerTest):
    dev = True

    def test_put_get_roundtrip(self):
        r = self.ctl("kv", "put", "app/name", "weft mesh")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "Success! Data written to: app/name\n")
        self.assertEqual(base64.b64decode(self.kv("app/name")["Value"]), b"weft mesh")
        r = self.ctl("kv", "get", "app/name")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "weft mesh\n")
        # A leading slash is dropped, as consul kv does.
        self.assertEqual(self.ctl("kv", "get", "/app/name").stdout, "weft mesh\n")

    def test_get_missing_key_fails(self):
        r = self.ctl("kv", "get", "no/such/key")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "weftctl: no key exists at: no/such/key\n")

    def test_put_from_stdin_and_file_byte_for_byte(self):
        data = bytes(range(256)) + b"\n\nend"
        r = self.ctl("kv", "put", "bin/stdin", "-", input=data, binary=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(base64.b64decode(self.kv("bin/stdin")["Value"]), data)
        path = os.path.join(self.srv.data_dir, "value.bin")
        with open(path, "wb") as f:
            f.write(data[::-1])
        r = self.ctl("kv", "put", "bin/file", "@" + path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(base64.b64decode(self.kv("bin/file")["Value"]), data[::-1])
        r = self.ctl("kv", "get", "bin/file", binary=True)
        self.assertEqual(r.stdout, data[::-1] + b"\n")
        r = self.ctl("kv", "put", "bin/missing", "@" + path + ".nope")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "weftctl: %s.nope: No such file or directory\n" % path)
        self.assertIsNone(self.kv("bin/missing"))

    def test_recurse_keys_and_detailed(self):
        for k, v in (("cfg/a", "1"), ("cfg/b", "two"), ("cfg/sub/c", "3"), ("other", "x")):
            self.assertEqual(self.ctl("kv", "put", k, v).returncode, 0)
        r = self.ctl("kv", "get", "-recurse", "cfg")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "cfg/a:1\ncfg/b:two\ncfg/sub/c:3\n")
        r = self.ctl("kv", "get", "cfg/", "--recurse")   # flag after the key
        self.assertEqual(r.stdout, "cfg/a:1\ncfg/b:two\ncfg/sub/c:3\n")
        r = self.ctl("kv", "get", "-keys", "cfg/")
        self.assertEqual(r.stdout, "cfg/a\ncfg/b\ncfg/sub/\n")
        r = self.ctl("kv", "get", "-recurse", "empty/prefix")
        self.assertEqual((r.returncode, r.stdout), (0, ""))

        self.assertEqual(self.ctl("kv", "put", "-flags", "42", "cfg/a", "1").returncode, 0)
        e = self.kv("cfg/a")
        r = self.ctl("kv", "get", "-detailed", "cfg/a")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(), [
            "CreateIndex      %d" % e["CreateIndex"],
            "Flags            42",
            "Key              cfg/a",
            "LockIndex        0",
            "ModifyIndex      %d" % e["ModifyIndex"],
            "Session          -",
            "Value            1"])

        r = self.ctl("kv", "get", "--output=json", "cfg/a")
        self.assertEqual(json.loads(r.stdout), self.srv.get("/v1/kv/cfg/a").json())

    def test_cas(self):
        self.assertEqual(self.ctl("kv", "put", "cas/k", "v1").returncode, 0)
        idx = self.kv("cas/k")["ModifyIndex"]
        r = self.ctl("kv", "put", "-cas", "-modify-index", str(idx + 100), "cas/k", "v2")
        self.assertEqual(r.returncode, 1)
        self.assertIn("did not write to cas/k: the check-and-set failed", r.stderr)
        self.assertEqual(self.ctl("kv", "get", "cas/k").stdout, "v1\n")
        r = self.ctl("kv", "put", "-cas", "-modify-index", str(idx), "cas/k", "v2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.ctl("kv", "get", "cas/k").stdout, "v2\n")
        # -modify-index 0: only when the key does not exist.
        r = self.ctl("kv", "put", "-cas", "-modify-index", "0", "cas/k", "v3")
        self.assertEqual(r.returncode, 1)
        r = self.ctl("kv", "put", "-cas", "-modify-index=0", "cas/new", "n")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ctl("kv", "put", "-cas", "cas/k", "v3")
        self.assertEqual(r.returncode, 2)
        self.assertIn("-cas needs -modify-index N", r.stderr)
        # delete -cas
        idx = self.kv("cas/k")["ModifyIndex"]
        r = self.ctl("kv", "delete", "-cas", "-modify-index", str(idx + 1), "cas/k")
        self.assertEqual(r.returncode, 1)
        self.assertIsNotNone(self.kv("cas/k"))
        r = self.ctl("kv", "delete", "-cas", "-modify-index", str(idx), "cas/k")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(self.kv("cas/k"))

    def test_delete_and_delete_recurse(self):
        for k in ("del/a", "del/b", "del/c/d", "delx"):
            self.ctl("kv", "put", k, "v")
        r = self.ctl("kv", "delete", "del/a")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "Success! Deleted key: del/a\n")
        self.assertIsNone(self.kv("del/a"))
        r = self.ctl("kv", "delete", "-recurse", "del/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "Success! Deleted keys with prefix: del/\n")
        self.assertEqual(self.srv.get("/v1/kv/del/?recurse").status, 404)
        self.assertIsNotNone(self.kv("delx"))
        r = self.ctl("kv", "delete")
        self.assertEqual(r.returncode, 2)


class WeftctlLockTest(CtlMixin, ServerTest):
    dev = True

    def sessions(self):
        return self.srv.get("/v1/session/list").json()

    def wait_held(self, key, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            e = self.kv(key)
            if e and e.get("Session"):
                return e
            time.sleep(0.05)
        self.fail("%s was not acquired" % key)

    def test_runs_command_holding_the_lock(self):
        script = ("echo held=$CONSUL_LOCK_HELD; %s --address %s kv get -detailed jobs/a/.lock; exit 7"
                  % (CTL_BIN, self.srv.addr))
        r = self.ctl("lock", "jobs/a", script)
        self.assertEqual(r.returncode, 7, r.stderr)   # the command's exit status
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "held=true")
        fields = dict((l.split() + [""])[:2] for l in lines[1:])
        self.assertEqual(fields["Flags"], str(LOCK_FLAGS))
        self.assertRegex(fields["Session"], "^[0-9a-f-]{36}$")
        # Released, session destroyed, key deleted.
        self.assertIsNone(self.kv("jobs/a/.lock"))
        self.assertEqual(self.sessions(), [])

    def test_direct_exec_and_arguments(self):
        r = self.ctl("lock", "-shell=false", "jobs/b", "printf", "%s|", "a b", "c")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "a b|c|")
        r = self.ctl("lock", "-shell=false", "jobs/b", "/nonexistent/prog")
        self.assertEqual(r.returncode, 127)
        self.assertIn("cannot run /nonexistent/prog", r.stderr)

    def test_mutual_exclusion(self):
        out = os.path.join(self.srv.data_dir, "order.txt")
        a = subprocess.Popen([CTL_BIN, "--address", self.srv.addr, "lock", "jobs/m",
                              "echo A-start >> %s; sleep 1; echo A-end >> %s" % (out, out)],
                             env=ctl_env())
        try:
            self.wait_held("jobs/m/.lock")
            b = subprocess.run([CTL_BIN, "--address", self.srv.addr, "lock", "jobs/m",
                                "echo B >> %s" % out], env=ctl_env(), timeout=30,
                               capture_output=True, text=True)
            self.assertEqual(b.returncode, 0, b.stderr)
        finally:
            self.assertEqual(a.wait(timeout=30), 0)
        with open(out) as f:
            self.assertEqual(f.read().split(), ["A-start", "A-end", "B"])
        self.assertIsNone(self.kv("jobs/m/.lock"))

    def test_timeout(self):
        a = subprocess.Popen([CTL_BIN, "--address", self.srv.addr, "lock", "jobs/t", "sleep 3"],
                             env=ctl_env())
        try:
            self.wait_held("jobs/t/.lock")
            t0 = time.time()
            r = self.ctl("lock", "-timeout", "500ms", "jobs/t", "echo ran")
            self.assertEqual(r.returncode, 1)
            self.assertLess(time.time() - t0, 2.5)
            self.assertEqual(r.stdout, "")
            self.assertIn("timed out waiting for the lock on jobs/t/.lock", r.stderr)
        finally:
            a.wait(timeout=30)
        self.assertEqual(self.sessions(), [])

    def test_sigterm_is_forwarded_and_lock_released(self):
        out = os.path.join(self.srv.data_dir, "term.txt")
        p = subprocess.Popen([CTL_BIN, "--address", self.srv.addr, "lock", "jobs/s",
                              "trap 'echo got-term > %s; exit 3' TERM; sleep 30 & wait" % out],
                             env=ctl_env())
        self.wait_held("jobs/s/.lock")
        time.sleep(0.2)   # let the shell set its trap
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=15), 3)
        with open(out) as f:
            self.assertEqual(f.read(), "got-term\n")
        self.assertIsNone(self.kv("jobs/s/.lock"))
        self.assertEqual(self.sessions(), [])

    def test_interrupt_while_waiting(self):
        a = subprocess.Popen([CTL_BIN, "--address", self.srv.addr, "lock", "jobs/i", "sleep 3"],
                             env=ctl_env())
        try:
            holder = self.wait_held("jobs/i/.lock")["Session"]
            b = subprocess.Popen([CTL_BIN, "--address", self.srv.addr, "lock", "jobs/i",
                                  "echo ran"], env=ctl_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            deadline = time.time() + 10
            while len(self.sessions()) < 2 and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            b.send_signal(signal.SIGINT)
            out, err = b.communicate(timeout=10)
            self.assertEqual(b.returncode, 1)
            self.assertEqual(out, "")
            self.assertIn("interrupted while waiting for the lock on jobs/i/.lock", err)
            # Its session is gone; the holder's is untouched.
            self.assertEqual([s["ID"] for s in self.sessions()], [holder])
        finally:
            a.wait(timeout=30)

    def test_lost_lock_stops_the_command(self):
        p = subprocess.Popen([CTL_BIN, "--address", self.srv.addr, "lock", "jobs/l", "sleep 30"],
                             env=ctl_env(), stderr=subprocess.PIPE, text=True)
        e = self.wait_held("jobs/l/.lock")
        t0 = time.time()
        self.assertEqual(self.srv.put("/v1/session/destroy/" + e["Session"]).status, 200)
        rc = p.wait(timeout=15)
        err = p.stderr.read()
        p.stderr.close()
        self.assertEqual(rc, 1, err)
        self.assertLess(time.time() - t0, 8)
        self.assertIn("lost the lock on jobs/l/.lock", err)

    def test_key_that_is_not_a_lock(self):
        self.ctl("kv", "put", "-flags", "5", "jobs/x/.lock", "mine")
        r = self.ctl("lock", "jobs/x", "echo ran")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertIn("jobs/x/.lock is not a lock", r.stderr)
        self.assertEqual(self.sessions(), [])

    def test_usage(self):
        r = self.ctl("lock", "jobs/only-prefix")
        self.assertEqual(r.returncode, 2)
        self.assertIn("COMMAND is required", r.stderr)


class WeftctlTokenTest(CtlMixin, ServerTest):
    dev = False

    def create(self, *args):
        r = self.ctl("token", "create", *args, token=self.srv.token)
        self.assertEqual(r.returncode, 0, r.stderr)
        fields = {}
        for line in r.stdout.splitlines():
            k, _, v = line.partition(":")
            fields[k.strip()] = v.strip()
        return fields

    def test_create_read_list_self_revoke(self):
        t = self.create("-kind", "service", "-service", "web", "-description", "web's token",
                        "-ttl", "1h")
        self.assertRegex(t["AccessorID"], "^[0-9a-f-]{36}$")
        self.assertTrue(t["SecretID"])
        self.assertEqual(t["Kind"], "service")
        self.assertEqual(t["Scope"], "service:web")
        self.assertTrue(t["Expiration Time"])

        r = self.ctl("token", "read", t["AccessorID"], token=self.srv.token)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Description:      web's token", r.stdout)
        self.assertIn("Scope:            service:web", r.stdout)

        r = self.ctl("token", "list", token=self.srv.token)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [l.split() for l in r.stdout.splitlines()]
        self.assertEqual(rows[0][:3], ["AccessorID", "Kind", "Scope"])
        self.assertIn(t["AccessorID"], [row[0] for row in rows])

        # token self: the env token, unless --token overrides it.
        r = self.ctl("token", "self", env={"WEFT_HTTP_TOKEN": t["SecretID"]})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("AccessorID:       " + t["AccessorID"], r.stdout)
        r = self.ctl("token", "self", token=self.srv.token, env={"WEFT_HTTP_TOKEN": t["SecretID"]})
        self.assertNotIn(t["AccessorID"], r.stdout)

        # A service token may register its own service, not another one.
        r = self.ctl("catalog", "register", "-node", "n1", "-address", "10.0.0.1",
                     "-service", "db", token=t["SecretID"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("(HTTP 403)", r.stderr)

        r = self.ctl("token", "revoke", t["AccessorID"], token=self.srv.token)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "Token %s revoked\n" % t["AccessorID"])
        r = self.ctl("token", "self", token=t["SecretID"])
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("weftctl: "), r.stderr)

    def test_agent_token_and_usage_errors(self):
        t = self.create("-kind", "agent", "-node", "node-7")
        self.assertEqual(t["Scope"], "node:node-7")
        r = self.ctl("token", "create", "-kind", "service", token=self.srv.token)
        self.assertEqual(r.returncode, 2)
        self.assertIn("-kind service needs -service NAME", r.stderr)
        r = self.ctl("token", "read", token=self.srv.token)
        self.assertEqual(r.returncode, 2)

    def test_no_permission_is_an_error(self):
        t = self.create("-kind", "read-only")
        r = self.ctl("token", "create", "-kind", "admin", token=t["SecretID"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("(HTTP 403)", r.stderr)


class WeftctlMembersTest(CtlMixin, ServerTest):
    dev = True

    def test_members_table(self):
        r = self.ctl("members")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [l.split() for l in r.stdout.splitlines()]
        self.assertEqual(rows[0], ["Node", "Address", "Status"])
        me = [row for row in rows if row[0] == "server-1"]
        self.assertEqual(len(me), 1, r.stdout)
        self.assertEqual(me[0][2], "alive")
        r = self.ctl("members", "-output", "json")
        self.assertEqual(json.loads(r.stdout), self.srv.get("/v1/agent/members").json())


if __name__ == "__main__":
    harness.main()
