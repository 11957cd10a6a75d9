"""Blocking queries: a watcher wakes within 50 ms of a write that concerns it,
and only then; ?wait bounds the wait; the index is Consul's X-Consul-Index."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class BlockingTest(harness.ServerTest):

    def register(self, node, svc, port):
        r = self.srv.put("/v1/catalog/register", {
            "Node": node, "Address": "10.0.0.1", "Service": {"Service": svc, "Port": port}})
        self.assertEqual(r.status, 200, r.body)

    def watch(self, path, index, wait="10s"):
        """Starts a blocking GET in a thread; returns (thread, result dict)."""
        out = {}

        def run():
            t0 = time.monotonic()
            sep = "&" if "?" in path else "?"
            out["resp"] = self.srv.get("%s%sindex=%d&wait=%s" % (path, sep, index, wait))
            out["at"] = time.monotonic()
            out["took"] = out["at"] - t0
        th = threading.Thread(target=run)
        th.start()
        time.sleep(0.3)  # let it park
        return th, out

    def test_wakes_on_relevant_write_only(self):
        self.register("n1", "web", 80)
        idx = self.srv.get("/v1/catalog/service/web").index
        th, out = self.watch("/v1/catalog/service/web", idx)
        self.register("n2", "api", 81)          # another service: must not wake it
        time.sleep(0.4)
        self.assertNotIn("resp", out, "an unrelated write woke the watcher")
        t_write = time.monotonic()
        self.register("n3", "web", 82)
        th.join(5)
        self.assertIn("resp", out)
        latency = out["at"] - t_write
        self.assertLess(latency, 0.25)  # the server wakes within 50 ms; leave room for Python
        resp = out["resp"]
        self.assertEqual(resp.status, 200)
        self.assertGreater(resp.index, idx)
        self.assertEqual(sorted(i["Node"] for i in resp.json()), ["n1", "n3"])

    def test_wait_times_out_with_same_index(self):
        self.register("n1", "cache", 6379)
        idx = self.srv.get("/v1/catalog/service/cache").index
        t0 = time.monotonic()
        r = self.srv.get("/v1/catalog/service/cache?index=%d&wait=1s" % idx)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200)
        self.assertEqual(r.index, idx)
        self.assertGreaterEqual(took, 0.95)
        self.assertLess(took, 1.0 + 1.0 / 16 + 0.5)

    def test_old_index_returns_at_once(self):
        self.register("n1", "old", 1)
        t0 = time.monotonic()
        r = self.srv.get("/v1/catalog/service/old?index=1&wait=5s")
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(len(r.json()), 1)

    def test_health_wakes_on_check_change(self):
        self.srv.put("/v1/catalog/register", {
            "Node": "h1", "Address": "10.0.0.9", "Service": {"Service": "hs", "Port": 1},
            "Check": {"CheckID": "c1", "Name": "c1", "ServiceID": "hs", "Status": "passing"}})
        idx = self.srv.get("/v1/health/service/hs?passing").index
        th, out = self.watch("/v1/health/service/hs?passing", idx)
        self.srv.put("/v1/catalog/register", {
            "Node": "h1", "Address": "10.0.0.9",
            "Check": {"CheckID": "c1", "Name": "c1", "ServiceID": "hs", "Status": "critical"}})
        th.join(5)
        self.assertEqual(out["resp"].json(), [])
        self.assertLess(out["took"], 2)

    def test_many_watchers_one_wake(self):
        self.register("m1", "many", 1)
        idx = self.srv.get("/v1/catalog/service/many").index
        watchers = [self.watch_nosleep("/v1/catalog/service/many", idx) for _ in range(50)]
        time.sleep(0.5)
        self.assertTrue(all("resp" not in out for _, out in watchers))
        self.register("m2", "many", 2)
        for th, _ in watchers:
            th.join(5)
        self.assertTrue(all(out["resp"].status == 200 and len(out["resp"].json()) == 2
                            for _, out in watchers))

    def watch_nosleep(self, path, index):
        out = {}

        def run():
            out["resp"] = self.srv.get("%s?index=%d&wait=20s" % (path, index))
        th = threading.Thread(target=run)
        th.start()
        return th, out

    def test_shutdown_answers_parked_queries(self):
        srv = harness.Server(dev=self.srv.dev)
        try:
            idx = srv.get("/v1/catalog/nodes").index
            out = {}

            def run():
                out["resp"] = srv.get("/v1/catalog/nodes?index=%d&wait=60s" % idx)
            th = threading.Thread(target=run)
            th.start()
            time.sleep(0.3)
            t0 = time.monotonic()
            self.assertEqual(srv.stop(), 0)
            th.join(5)
            self.assertLess(time.monotonic() - t0, 5)
            self.assertEqual(out["resp"].status, 200)
        finally:
            srv.close()


if __name__ == "__main__":
    harness.main()
