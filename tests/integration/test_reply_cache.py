#!/usr/bin/env python3
"""The reply cache behind GET /v1/catalog/service/NAME never serves a stale
answer: every kind of write that changes what the service's instances look
like is visible in the next read, and questions with parameters are not
answered with the plain question's cached body."""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class ReplyCacheTest(harness.ServerTest):
    dev = True

    def register(self, node, address, sid=None, tags=(), svc="cweb"):
        body = {"Node": node, "Address": address}
        if sid:
            body["Service"] = {"ID": sid, "Service": svc, "Tags": list(tags), "Port": 80}
        resp = self.srv.put("/v1/catalog/register", body)
        self.assertEqual(resp.status, 200, resp)

    def read(self, query="", svc="cweb"):
        resp = self.srv.get("/v1/catalog/service/" + svc + query)
        self.assertEqual(resp.status, 200, resp)
        return resp

    def ids(self, resp):
        return sorted(e["ServiceID"] for e in resp.json())

    def test_every_write_is_seen_by_the_next_read(self):
        self.register("cn1", "10.0.0.1", "cweb-1", tags=["blue"])
        first, again = self.read(), self.read()
        self.assertEqual(first.body, again.body)
        self.assertEqual(first.index, again.index)
        self.assertEqual(self.ids(first), ["cweb-1"])

        # A new instance.
        self.register("cn2", "10.0.0.2", "cweb-2", tags=["green"])
        resp = self.read()
        self.assertEqual(self.ids(resp), ["cweb-1", "cweb-2"])
        self.assertGreater(resp.index, first.index)

        # The node under an instance changes: a node-level write.
        self.register("cn1", "10.9.9.9")
        resp = self.read()
        addr = {e["ServiceID"]: e["Address"] for e in resp.json()}
        self.assertEqual(addr["cweb-1"], "10.9.9.9")

        # Parameters get their own answer, not the cached plain one, while
        # those that change nothing get the same answer.
        self.assertEqual(self.ids(self.read("?tag=green")), ["cweb-2"])
        self.assertEqual(self.ids(self.read("?dc=dc1&stale")), ["cweb-1", "cweb-2"])
        self.assertEqual(self.ids(self.read()), ["cweb-1", "cweb-2"])

        # Deregistration of the instance, then of a whole node.
        resp = self.srv.put("/v1/catalog/deregister", {"Node": "cn1", "ServiceID": "cweb-1"})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.ids(self.read()), ["cweb-2"])
        resp = self.srv.put("/v1/catalog/deregister", {"Node": "cn2"})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.ids(self.read()), [])

    def test_blocking_query_at_the_cached_index_gets_the_fresh_answer(self):
        self.register("bn1", "10.0.1.1", "bweb-1", svc="bweb")
        idx = self.read(svc="bweb").index
        self.read(svc="bweb")   # cached now
        got = {}

        def watch():
            got["resp"] = self.srv.get("/v1/catalog/service/bweb?index=%d&wait=20s" % idx)
        th = threading.Thread(target=watch)
        th.start()
        th.join(0.3)
        self.assertTrue(th.is_alive(), "the blocking query did not wait")
        self.register("bn2", "10.0.1.2", "bweb-2", svc="bweb")
        th.join(15)
        resp = got["resp"]
        self.assertEqual(resp.status, 200)
        self.assertGreater(resp.index, idx)
        self.assertEqual(self.ids(resp), ["bweb-1", "bweb-2"])
        self.assertEqual(resp.body, self.read(svc="bweb").body)


if __name__ == "__main__":
    harness.main()
