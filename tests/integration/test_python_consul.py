"""KV, sessions and locks through Debian's python-consul (0.7.1), unchanged,
against a real weft-server: what a tool built on that library sees."""
import concurrent.futures
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, ServerTest, main  # noqa: E402

import consul  # noqa: E402


def start_server():
    """Token mode when this build has tokens, else --dev."""
    try:
        return Server()
    except RuntimeError as e:
        if "tokens are not available" not in str(e):
            raise
        return Server(dev=True)


class PythonConsulKVTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.srv = start_server()

    def client(self):
        c = consul.Consul(host="127.0.0.1", port=self.srv.port)
        if self.srv.token:
            c.http.session.headers["X-Consul-Token"] = self.srv.token
        return c

    def test_put_get_recurse_delete(self):
        c = self.client()
        self.assertTrue(c.kv.put("pc/a", "alpha"))
        self.assertTrue(c.kv.put("pc/b/c", b"\x00\xffbin", flags=7))
        index, e = c.kv.get("pc/a")
        self.assertEqual(e["Value"], b"alpha")
        self.assertEqual(e["Key"], "pc/a")
        self.assertEqual(int(index), e["ModifyIndex"])
        _, e = c.kv.get("pc/b/c")
        self.assertEqual((e["Value"], e["Flags"]), (b"\x00\xffbin", 7))
        _, none = c.kv.get("pc/missing")
        self.assertIsNone(none)
        _, entries = c.kv.get("pc/", recurse=True)
        self.assertEqual([x["Key"] for x in entries], ["pc/a", "pc/b/c"])
        _, keys = c.kv.get("pc/", keys=True, separator="/")
        self.assertEqual(keys, ["pc/a", "pc/b/"])
        self.assertTrue(c.kv.delete("pc/a"))
        self.assertIsNone(c.kv.get("pc/a")[1])
        self.assertTrue(c.kv.delete("pc/", recurse=True))
        self.assertIsNone(c.kv.get("pc/", recurse=True)[1])

    def test_cas(self):
        c = self.client()
        self.assertTrue(c.kv.put("pcas/k", "1", cas=0))
        self.assertFalse(c.kv.put("pcas/k", "2", cas=0))
        _, e = c.kv.get("pcas/k")
        self.assertFalse(c.kv.put("pcas/k", "3", cas=e["ModifyIndex"] + 1))
        self.assertTrue(c.kv.put("pcas/k", "4", cas=e["ModifyIndex"]))
        self.assertEqual(c.kv.get("pcas/k")[1]["Value"], b"4")
        self.assertFalse(c.kv.delete("pcas/k", cas=e["ModifyIndex"]))
        self.assertTrue(c.kv.delete("pcas/k", cas=c.kv.get("pcas/k")[1]["ModifyIndex"]))

    def test_sessions(self):
        c = self.client()
        sid = c.session.create(name="worker", ttl=10, lock_delay=1)
        _, s = c.session.info(sid)
        self.assertEqual((s["Name"], s["TTL"], s["LockDelay"]), ("worker", "10s", 10**9))
        self.assertEqual(c.session.renew(sid)["ID"], sid)
        _, sessions = c.session.list()
        self.assertIn(sid, [x["ID"] for x in sessions])
        _, sessions = c.session.node("server-1")
        self.assertIn(sid, [x["ID"] for x in sessions])
        self.assertTrue(c.session.destroy(sid))
        self.assertIsNone(c.session.info(sid)[1])
        with self.assertRaises(consul.NotFound):
            c.session.renew(sid)
        # Old-style checks=[] creates a session tied to no check.
        sid = c.session.create(checks=[], behavior="delete")
        _, s = c.session.info(sid)
        self.assertEqual(s["Behavior"], "delete")
        self.assertFalse(s["NodeChecks"])
        c.session.destroy(sid)

    def test_lock_contention(self):
        a, b = self.client(), self.client()
        sa = a.session.create(name="a", lock_delay=1)
        sb = b.session.create(name="b", lock_delay=1)
        # Both contend at once: exactly one wins.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            fa = pool.submit(a.kv.put, "service/leader", "a", acquire=sa)
            fb = pool.submit(b.kv.put, "service/leader", "b", acquire=sb)
            wins = [fa.result(timeout=10), fb.result(timeout=10)]
        self.assertEqual(sorted(wins), [False, True])
        winner, loser = (sa, sb) if wins[0] else (sb, sa)
        wc, lc = (a, b) if wins[0] else (b, a)
        _, e = lc.kv.get("service/leader")
        self.assertEqual((e["Session"], e["LockIndex"]), (winner, 1))
        self.assertFalse(lc.kv.put("service/leader", "x", acquire=loser))
        # The winner's session ends: the loser may take over only once the
        # 1 s lock-delay has passed.
        t0 = time.monotonic()
        self.assertTrue(wc.session.destroy(winner))
        self.assertFalse(lc.kv.put("service/leader", "x", acquire=loser))
        deadline = t0 + 5
        while time.monotonic() < deadline:
            if lc.kv.put("service/leader", "x", acquire=loser):
                break
            time.sleep(0.1)
        else:
            self.fail("the loser never acquired the lock")
        self.assertGreaterEqual(time.monotonic() - t0, 1.0 - 0.05)
        _, e = lc.kv.get("service/leader")
        self.assertEqual((e["Session"], e["LockIndex"], e["Value"]), (loser, 2, b"x"))
        self.assertTrue(lc.kv.put("service/leader", "x", release=loser))
        self.assertNotIn("Session", lc.kv.get("service/leader")[1])
        lc.session.destroy(loser)

    def test_long_poll(self):
        c, w = self.client(), self.client()
        c.kv.put("poll/key", "v1")
        index, _ = c.kv.get("poll/key")
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            t0 = time.monotonic()
            fut = pool.submit(c.kv.get, "poll/key", index=index, wait="10s")
            time.sleep(0.3)
            self.assertFalse(fut.done(), "the long poll returned without a change")
            w.kv.put("poll/key", "v2")
            new_index, e = fut.result(timeout=15)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(e["Value"], b"v2")
        self.assertGreater(int(new_index), int(index))


if __name__ == "__main__":
    main()
