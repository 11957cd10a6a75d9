"""/v1/kv and /v1/session against a real weft-server: Consul's JSON, status
codes, locks, sessions and blocking queries (wake on a change under what is
watched, and only then)."""
import base64
import concurrent.futures
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, ServerTest, main  # noqa: E402


def start_server():
    """Token mode when this build has tokens, else --dev."""
    try:
        return Server()
    except RuntimeError as e:
        if "tokens are not available" not in str(e):
            raise
        return Server(dev=True)


class KVServerTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.srv = start_server()
        cls.pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)

    @classmethod
    def tearDownClass(cls):
        cls.pool.shutdown(wait=True)
        super().tearDownClass()

    def put(self, path, body=b""):
        r = self.srv.put(path, body)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def timed_get(self, path):
        t0 = time.monotonic()
        r = self.srv.get(path)
        return r, time.monotonic() - t0, time.monotonic()


class KVTest(KVServerTest):
    def test_put_get_entry_shape(self):
        self.assertIs(self.put("/v1/kv/shape/a?flags=42", b"hello"), True)
        r = self.srv.get("/v1/kv/shape/a")
        self.assertEqual(r.status, 200)
        [e] = r.json()
        self.assertEqual(list(e), ["LockIndex", "Key", "Flags", "Value", "CreateIndex",
                                   "ModifyIndex"])
        self.assertEqual(e["Key"], "shape/a")
        self.assertEqual(e["Flags"], 42)
        self.assertEqual(base64.b64decode(e["Value"]), b"hello")
        self.assertEqual(e["LockIndex"], 0)
        self.assertEqual(e["CreateIndex"], e["ModifyIndex"])
        self.assertEqual(r.index, e["ModifyIndex"])
        # Binary values survive; an empty body stores no value (null).
        blob = bytes(range(256))
        self.put("/v1/kv/shape/bin", blob)
        self.assertEqual(base64.b64decode(self.srv.get("/v1/kv/shape/bin").json()[0]["Value"]),
                         blob)
        self.put("/v1/kv/shape/empty")
        self.assertIsNone(self.srv.get("/v1/kv/shape/empty").json()[0]["Value"])

    def test_raw_and_missing(self):
        self.put("/v1/kv/raw/k", b"<b>raw</b>")
        r = self.srv.get("/v1/kv/raw/k?raw")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "<b>raw</b>")
        self.assertEqual(r.headers["Content-Type"], "text/plain")
        self.assertEqual(r.headers["X-Content-Type-Options"], "nosniff")
        for path in ("/v1/kv/raw/none", "/v1/kv/raw/none?raw", "/v1/kv/nothing/?recurse",
                     "/v1/kv/nothing/?keys"):
            r = self.srv.get(path)
            self.assertEqual(r.status, 404, path)
            self.assertEqual(r.body, "", path)
            self.assertIn("X-Consul-Index", r.headers)

    def test_recurse_keys_separator(self):
        for k in ("tree/a", "tree/b/c", "tree/b/d", "treetop"):
            self.put("/v1/kv/" + k, b"v")
        r = self.srv.get("/v1/kv/tree/?recurse")
        self.assertEqual([e["Key"] for e in r.json()], ["tree/a", "tree/b/c", "tree/b/d"])
        self.assertEqual(r.index, max(e["ModifyIndex"] for e in r.json()))
        self.assertEqual(self.srv.get("/v1/kv/tree?keys").json(),
                         ["tree/a", "tree/b/c", "tree/b/d", "treetop"])
        self.assertEqual(self.srv.get("/v1/kv/tree/?keys&separator=/").json(),
                         ["tree/a", "tree/b/"])
        self.assertEqual(self.srv.get("/v1/kv/tree?keys&separator=/").json(),
                         ["tree/", "treetop"])

    def test_cas(self):
        self.assertIs(self.put("/v1/kv/cas/k?cas=0", b"1"), True)
        self.assertIs(self.put("/v1/kv/cas/k?cas=0", b"2"), False)
        mi = self.srv.get("/v1/kv/cas/k").json()[0]["ModifyIndex"]
        self.assertIs(self.put("/v1/kv/cas/k?cas=%d" % (mi + 1000), b"3"), False)
        self.assertIs(self.put("/v1/kv/cas/k?cas=%d" % mi, b"4"), True)
        e = self.srv.get("/v1/kv/cas/k").json()[0]
        self.assertEqual(base64.b64decode(e["Value"]), b"4")
        self.assertIs(self.srv.delete("/v1/kv/cas/k?cas=%d" % mi).json(), False)
        self.assertIs(self.srv.delete("/v1/kv/cas/k?cas=%d" % e["ModifyIndex"]).json(), True)
        self.assertEqual(self.srv.get("/v1/kv/cas/k").status, 404)

    def test_delete_recurse(self):
        for k in ("del/a", "del/b/c", "delta"):
            self.put("/v1/kv/" + k, b"v")
        self.assertIs(self.srv.delete("/v1/kv/del/?recurse").json(), True)
        self.assertEqual(self.srv.get("/v1/kv/del/?recurse").status, 404)
        self.assertEqual(self.srv.get("/v1/kv/delta").status, 200)
        self.assertIs(self.srv.delete("/v1/kv/delta").json(), True)
        self.assertEqual(self.srv.get("/v1/kv/delta").status, 404)

    def test_bad_requests(self):
        self.assertEqual(self.srv.put("/v1/kv/", b"x").status, 400)
        self.assertEqual(self.srv.get("/v1/kv/").status, 400)
        self.assertEqual(self.srv.delete("/v1/kv/").status, 400)
        r = self.srv.put("/v1/kv/" + "k" * 513, b"x")
        self.assertEqual(r.status, 400)
        self.assertIn("512", r.json()["error"])
        self.assertEqual(self.srv.put("/v1/kv/" + "k" * 512, b"x").status, 200)
        r = self.srv.put("/v1/kv/big", b"x" * (512 * 1024 + 1))
        self.assertEqual(r.status, 413)
        self.assertIn("too large", r.json()["error"])
        self.assertEqual(self.srv.put("/v1/kv/big", b"x" * (512 * 1024)).status, 200)
        r = self.srv.put("/v1/kv/c?cas=1&acquire=x", b"x")
        self.assertEqual(r.status, 400)
        self.assertIn("Conflicting flags", r.json()["error"])
        self.assertEqual(self.srv.delete("/v1/kv/c?cas=1&recurse").status, 400)
        r = self.srv.put("/v1/kv/c?flags=abc", b"x")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["field"], "flags")
        self.assertEqual(self.srv.request("POST", "/v1/kv/c", b"x").status, 405)

    def test_requires_token(self):
        if not self.srv.token:
            self.skipTest("this build has no tokens (--dev)")
        self.put("/v1/kv/auth/k", b"v")
        for method, path in (("GET", "/v1/kv/auth/k"), ("PUT", "/v1/kv/auth/k"),
                             ("DELETE", "/v1/kv/auth/k"), ("GET", "/v1/kv/auth/?recurse"),
                             ("PUT", "/v1/session/create")):
            r = self.srv.request(method, path, body=b"" if method == "PUT" else None, token=None)
            self.assertEqual(r.status, 403, (method, path))
        self.assertEqual(self.srv.get("/v1/kv/auth/k").status, 200)

    def test_key_with_escapes(self):
        key = "space key/ü"
        path = "/v1/kv/" + urllib.parse.quote(key)
        self.put(path, b"v")
        self.assertEqual(self.srv.get(path).json()[0]["Key"], key)


class SessionTest(KVServerTest):
    def create(self, body=None):
        r = self.srv.put("/v1/session/create", body if body is not None else b"")
        self.assertEqual(r.status, 200, r)
        return r.json()["ID"]

    def test_defaults_and_shape(self):
        sid = self.create()
        r = self.srv.get("/v1/session/info/" + sid)
        self.assertEqual(r.status, 200)
        [s] = r.json()
        self.assertEqual(s["ID"], sid)
        self.assertEqual(s["Node"], "server-1")
        self.assertEqual(s["LockDelay"], 15 * 10**9)
        self.assertEqual(s["Behavior"], "release")
        self.assertEqual(s["TTL"], "")
        self.assertEqual(s["NodeChecks"], ["serfHealth"])
        self.assertEqual(s["CreateIndex"], s["ModifyIndex"])
        self.assertIn(sid, [x["ID"] for x in self.srv.get("/v1/session/list").json()])
        self.assertIn(sid, [x["ID"] for x in self.srv.get("/v1/session/node/server-1").json()])
        self.assertEqual(self.srv.get("/v1/session/node/elsewhere").json(), [])
        self.assertIs(self.srv.put("/v1/session/destroy/" + sid).json(), True)
        self.assertEqual(self.srv.get("/v1/session/info/" + sid).json(), [])

    def test_create_options_and_renew(self):
        sid = self.create({"Name": "job", "TTL": "10s", "LockDelay": "250ms",
                           "Behavior": "delete", "Checks": []})
        [s] = self.srv.get("/v1/session/info/" + sid).json()
        self.assertEqual((s["Name"], s["TTL"], s["LockDelay"], s["Behavior"]),
                         ("job", "10s", 250 * 10**6, "delete"))
        self.assertIsNone(s["NodeChecks"])
        r = self.srv.put("/v1/session/renew/" + sid)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()[0]["ID"], sid)
        self.srv.put("/v1/session/destroy/" + sid)
        r = self.srv.put("/v1/session/renew/" + sid)
        self.assertEqual(r.status, 404)
        self.assertIn("not found", r.body)

    def test_create_refused(self):
        for body, field in (({"TTL": "5s"}, "TTL"), ({"TTL": "86401s"}, "TTL"),
                            ({"Behavior": "keep"}, "Behavior"), ({"LockDelay": "x"}, "LockDelay"),
                            ({"Node": "no-such-node"}, "Node"),
                            ({"NodeChecks": ["no-such-check"]}, "NodeChecks")):
            r = self.srv.put("/v1/session/create", body)
            self.assertEqual(r.status, 400, body)
            self.assertEqual(r.json()["field"], field, r.json())
        self.assertEqual(self.srv.put("/v1/session/create", b"{").status, 400)

    def test_lock_acquire_release_delay(self):
        s1 = self.create({"LockDelay": "1s"})
        s2 = self.create({"LockDelay": "0s"})
        self.assertIs(self.put("/v1/kv/lk/leader?acquire=" + s1, b"one"), True)
        self.assertIs(self.put("/v1/kv/lk/leader?acquire=" + s2, b"two"), False)
        e = self.srv.get("/v1/kv/lk/leader").json()[0]
        self.assertEqual((e["Session"], e["LockIndex"]), (s1, 1))
        self.assertEqual(list(e), ["LockIndex", "Key", "Flags", "Value", "Session",
                                   "CreateIndex", "ModifyIndex"])
        self.assertIs(self.put("/v1/kv/lk/leader?release=" + s2), False)
        self.assertIs(self.put("/v1/kv/lk/leader?release=" + s1), True)
        self.assertIs(self.put("/v1/kv/lk/leader?acquire=" + s1, b"again"), True)
        self.assertEqual(self.srv.get("/v1/kv/lk/leader").json()[0]["LockIndex"], 2)
        r = self.srv.put("/v1/kv/lk/leader?acquire=not-a-session", b"x")
        self.assertEqual(r.status, 400)
        # Destroying the holder releases the key and starts its lock-delay.
        t0 = time.monotonic()
        self.srv.put("/v1/session/destroy/" + s1)
        e = self.srv.get("/v1/kv/lk/leader").json()[0]
        self.assertNotIn("Session", e)
        self.assertEqual(e["LockIndex"], 2)
        self.assertIs(self.put("/v1/kv/lk/leader?acquire=" + s2, b"two"), False)
        deadline = t0 + 3
        while time.monotonic() < deadline:
            if self.put("/v1/kv/lk/leader?acquire=" + s2, b"two"):
                break
            time.sleep(0.05)
        else:
            self.fail("the lock-delay never ended")
        self.assertGreaterEqual(time.monotonic() - t0, 1.0 - 0.05)

    def test_behavior_delete(self):
        sid = self.create({"Behavior": "delete", "LockDelay": "0s"})
        self.put("/v1/kv/eph/node?acquire=" + sid, b"x")
        self.srv.put("/v1/session/destroy/" + sid)
        self.assertEqual(self.srv.get("/v1/kv/eph/node").status, 404)

    def test_critical_check_invalidates(self):
        reg = {"Node": "worker", "Address": "10.1.1.1",
               "Check": {"CheckID": "alive", "Name": "alive", "Status": "passing"}}
        self.assertEqual(self.srv.put("/v1/catalog/register", reg).status, 200)
        sid = self.create({"Node": "worker", "NodeChecks": ["alive"], "LockDelay": "0s"})
        self.assertIs(self.put("/v1/kv/crit/lock?acquire=" + sid, b"x"), True)
        reg["Check"]["Status"] = "critical"
        self.assertEqual(self.srv.put("/v1/catalog/register", reg).status, 200)
        self.assertEqual(self.srv.get("/v1/session/info/" + sid).json(), [])
        self.assertNotIn("Session", self.srv.get("/v1/kv/crit/lock").json()[0])
        r = self.srv.put("/v1/session/create", {"Node": "worker", "NodeChecks": ["alive"]})
        self.assertEqual(r.status, 400)
        self.assertIn("critical", r.json()["error"])
        # Deregistering the node takes its sessions with it.
        sid = self.create({"Node": "worker", "Checks": []})
        self.srv.put("/v1/catalog/deregister", {"Node": "worker"})
        self.assertEqual(self.srv.get("/v1/session/info/" + sid).json(), [])


class BlockingTest(KVServerTest):
    WAIT = 1.0        # seconds a non-woken query waits
    SLACK = 0.05      # the 50 ms precision the checks allow

    def watch(self, path, index, wait="5s"):
        sep = "&" if "?" in path else "?"
        return self.pool.submit(self.timed_get, "%s%sindex=%d&wait=%s" % (path, sep, index, wait))

    def test_key_watch_wakes_on_its_key(self):
        self.put("/v1/kv/bw/a", b"1")
        idx = self.srv.get("/v1/kv/bw/a").index
        fut = self.watch("/v1/kv/bw/a", idx)
        time.sleep(0.2)
        t_write = time.monotonic()
        self.put("/v1/kv/bw/a", b"2")
        r, elapsed, t_end = fut.result(timeout=10)
        self.assertEqual(r.status, 200)
        self.assertEqual(base64.b64decode(r.json()[0]["Value"]), b"2")
        self.assertGreater(r.index, idx)
        # Woken by the write, far sooner than the 5 s wait.
        self.assertLess(t_end - t_write, 1.0)
        self.assertLess(elapsed, 2.5)

    def test_prefix_watch_wakes_below_and_not_elsewhere(self):
        self.put("/v1/kv/bp/app/x", b"1")
        idx = self.srv.get("/v1/kv/bp/app/?recurse").index
        # Writes that are not under bp/app/ must not wake it.
        fut = self.watch("/v1/kv/bp/app/?recurse", idx, wait="%gs" % self.WAIT)
        time.sleep(0.1)
        self.put("/v1/kv/bp/other/x", b"1")
        self.put("/v1/kv/bp/apple", b"1")
        self.put("/v1/kv/bp/app", b"1")
        r, elapsed, _ = fut.result(timeout=10)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.index, idx)
        self.assertGreaterEqual(elapsed, self.WAIT - self.SLACK)
        # A write deep below the prefix wakes it.
        fut = self.watch("/v1/kv/bp/app/?recurse", idx)
        time.sleep(0.2)
        t_write = time.monotonic()
        self.put("/v1/kv/bp/app/deep/er/y", b"2")
        r, elapsed, t_end = fut.result(timeout=10)
        self.assertGreater(r.index, idx)
        self.assertLess(t_end - t_write, 1.0)
        self.assertIn("bp/app/deep/er/y", [e["Key"] for e in r.json()])
        # So does a delete under it (keys listing).
        idx = r.index
        fut = self.watch("/v1/kv/bp/app/?keys", idx)
        time.sleep(0.2)
        t_write = time.monotonic()
        self.srv.delete("/v1/kv/bp/app/x")
        r, elapsed, t_end = fut.result(timeout=10)
        self.assertLess(t_end - t_write, 1.0)
        self.assertEqual(r.json(), ["bp/app/deep/er/y"])

    def test_key_watch_ignores_siblings_and_children(self):
        self.put("/v1/kv/bs/a", b"1")
        idx = self.srv.get("/v1/kv/bs/a").index
        fut = self.watch("/v1/kv/bs/a", idx, wait="%gs" % self.WAIT)
        time.sleep(0.1)
        self.put("/v1/kv/bs/b", b"1")
        self.put("/v1/kv/bs/a/child", b"1")
        self.put("/v1/kv/bs/ab", b"1")
        r, elapsed, _ = fut.result(timeout=10)
        self.assertEqual(r.index, idx)
        self.assertGreaterEqual(elapsed, self.WAIT - self.SLACK)

    def test_missing_key_blocks_until_created(self):
        r = self.srv.get("/v1/kv/bm/later")
        self.assertEqual(r.status, 404)
        fut = self.watch("/v1/kv/bm/later", r.index)
        time.sleep(0.2)
        t_write = time.monotonic()
        self.put("/v1/kv/bm/later", b"here")
        r, elapsed, t_end = fut.result(timeout=10)
        self.assertEqual(r.status, 200)
        self.assertLess(t_end - t_write, 1.0)

    def test_session_list_wakes_on_create(self):
        idx = self.srv.get("/v1/session/list").index
        fut = self.watch("/v1/session/list", idx)
        time.sleep(0.2)
        t_write = time.monotonic()
        sid = self.srv.put("/v1/session/create", b"").json()["ID"]
        r, elapsed, t_end = fut.result(timeout=10)
        self.assertLess(t_end - t_write, 1.0)
        self.assertIn(sid, [s["ID"] for s in r.json()])
        self.assertGreater(r.index, idx)


if __name__ == "__main__":
    main()
