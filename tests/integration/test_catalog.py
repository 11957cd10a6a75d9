"""Catalog and health endpoints against a real weft-server, Consul's shapes."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def reg(node, addr, svc=None, port=0, tags=(), check=None, meta=None, sid=None, node_meta=None):
    body = {"Node": node, "Address": addr}
    if node_meta:
        body["NodeMeta"] = node_meta
    if svc:
        body["Service"] = {"Service": svc, "Port": port, "Tags": list(tags)}
        if sid:
            body["Service"]["ID"] = sid
        if meta:
            body["Service"]["Meta"] = meta
    if check:
        body["Check"] = check
    return body


class CatalogTest(harness.ServerTest):

    def setUp(self):
        for n in ("web-1", "web-2", "db-1"):
            self.srv.put("/v1/catalog/deregister", {"Node": n})

    def register(self, body):
        r = self.srv.put("/v1/catalog/register", body)
        self.assertEqual(r.status, 200, r.body)
        self.assertIs(r.json(), True)
        return r

    def test_register_and_list(self):
        self.register(reg("web-1", "10.0.0.1", "web", 8080, ["v1", "primary"],
                          meta={"version": "1"}, node_meta={"rack": "r1"}))
        self.register(reg("web-2", "10.0.0.2", "web", 8080, ["v2"]))
        self.register(reg("db-1", "10.0.0.3", "db", 5432))

        r = self.srv.get("/v1/catalog/services")
        self.assertEqual(r.status, 200)
        svcs = r.json()
        self.assertEqual(sorted(svcs["web"]), ["primary", "v1", "v2"])
        self.assertEqual(svcs["db"], [])
        self.assertGreater(r.index, 0)
        self.assertEqual(r.headers["X-Consul-KnownLeader"], "true")

        r = self.srv.get("/v1/catalog/service/web")
        items = r.json()
        self.assertEqual([i["Node"] for i in items], ["web-1", "web-2"])
        first = items[0]
        for field in ("ID", "Node", "Address", "Datacenter", "TaggedAddresses", "NodeMeta",
                      "ServiceID", "ServiceName", "ServiceTags", "ServiceAddress",
                      "ServicePort", "ServiceMeta", "ServiceEnableTagOverride",
                      "CreateIndex", "ModifyIndex"):
            self.assertIn(field, first)
        self.assertEqual(first["ServicePort"], 8080)
        self.assertEqual(first["ServiceMeta"], {"version": "1"})
        self.assertEqual(first["NodeMeta"], {"rack": "r1"})
        self.assertEqual(first["Datacenter"], "dc1")

        r = self.srv.get("/v1/catalog/service/web?tag=v2")
        self.assertEqual([i["Node"] for i in r.json()], ["web-2"])
        r = self.srv.get("/v1/catalog/service/web?tag=v1&tag=primary")
        self.assertEqual([i["Node"] for i in r.json()], ["web-1"])
        r = self.srv.get("/v1/catalog/service/web?node-meta=rack:r1")
        self.assertEqual([i["Node"] for i in r.json()], ["web-1"])
        r = self.srv.get("/v1/catalog/service/nothing")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), [])

        nodes = {n["Node"]: n for n in self.srv.get("/v1/catalog/nodes").json()}
        self.assertIn("server-1", nodes)  # the server's own node
        self.assertEqual(nodes["db-1"]["Address"], "10.0.0.3")

        node = self.srv.get("/v1/catalog/node/web-1").json()
        self.assertEqual(node["Node"]["Node"], "web-1")
        self.assertEqual(node["Services"]["web"]["Port"], 8080)
        ns = self.srv.get("/v1/catalog/node-services/web-1").json()
        self.assertEqual(ns["Services"][0]["Service"], "web")
        self.assertEqual(self.srv.get("/v1/catalog/node/nope").json(), None)
        self.assertEqual(self.srv.get("/v1/catalog/datacenters").json(), ["dc1"])

    def test_health(self):
        self.register(reg("web-1", "10.0.0.1", "web", 80, check={
            "CheckID": "web-alive", "Name": "web alive", "ServiceID": "web",
            "Status": "passing"}))
        self.register(reg("web-2", "10.0.0.2", "web", 80, check={
            "CheckID": "web-alive", "Name": "web alive", "ServiceID": "web",
            "Status": "critical", "Output": "connection refused"}))
        r = self.srv.get("/v1/health/service/web")
        entries = r.json()
        self.assertEqual(len(entries), 2)
        self.assertEqual(set(entries[0]), {"Node", "Service", "Checks"})
        self.assertEqual(entries[1]["Checks"][0]["Output"], "connection refused")
        r = self.srv.get("/v1/health/service/web?passing")
        self.assertEqual([e["Node"]["Node"] for e in r.json()], ["web-1"])
        r = self.srv.get("/v1/health/service/web?passing=1")
        self.assertEqual(len(r.json()), 1)
        checks = self.srv.get("/v1/health/checks/web").json()
        self.assertEqual(sorted(c["Status"] for c in checks), ["critical", "passing"])
        crit = self.srv.get("/v1/health/state/critical").json()
        self.assertEqual([(c["Node"], c["CheckID"]) for c in crit], [("web-2", "web-alive")])
        node = self.srv.get("/v1/health/node/web-2").json()
        self.assertEqual(node[0]["ServiceName"], "web")
        anyc = self.srv.get("/v1/health/state/any").json()
        self.assertIn("serfHealth", [c["CheckID"] for c in anyc])
        r = self.srv.get("/v1/health/state/bogus")
        self.assertEqual(r.status, 400)

        # A node-level critical check takes every service on the node out.
        self.register({"Node": "web-1", "Address": "10.0.0.1",
                       "Check": {"CheckID": "disk", "Name": "disk", "Status": "critical"}})
        self.assertEqual(self.srv.get("/v1/health/service/web?passing").json(), [])

    def test_deregister(self):
        self.register(reg("web-1", "10.0.0.1", "web", 80, sid="web-a"))
        self.register(reg("web-1", "10.0.0.1", "web", 81, sid="web-b", check={
            "CheckID": "b-alive", "Name": "b", "ServiceID": "web-b", "Status": "passing"}))
        self.assertEqual(len(self.srv.get("/v1/catalog/service/web").json()), 2)
        r = self.srv.put("/v1/catalog/deregister", {"Node": "web-1", "ServiceID": "web-b"})
        self.assertEqual((r.status, r.json()), (200, True))
        self.assertEqual([s["ServiceID"] for s in self.srv.get("/v1/catalog/service/web").json()],
                         ["web-a"])
        self.assertEqual(self.srv.get("/v1/health/checks/web").json(), [])
        r = self.srv.put("/v1/catalog/deregister", {"Node": "web-1"})
        self.assertEqual(r.status, 200)
        self.assertEqual(self.srv.get("/v1/catalog/service/web").json(), [])
        self.assertIsNone(self.srv.get("/v1/catalog/node/web-1").json())

    def test_bad_input(self):
        cases = [
            ({"Address": "1.2.3.4"}, "Node"),
            ({"Node": "n1"}, "Address"),
            ({"Node": "n1", "Address": "a", "Service": {"Service": "w", "Port": "80"}},
             "Service.Port"),
            ({"Node": "n1", "Address": "a", "Service": {"Service": "w", "Tags": "x"}},
             "Service.Tags"),
            ({"Node": "n1", "Address": "a", "Check": {"Name": "c", "Status": "ok"}},
             "Check.Status"),
            ({"Node": "n1", "Address": "a", "Check": {"Name": "c", "ServiceID": "ghost"}},
             "ServiceID"),
        ]
        for body, field in cases:
            r = self.srv.put("/v1/catalog/register", body)
            self.assertIn(r.status, (400, 404), (body, r))
            self.assertTrue(r.json()["error"].startswith(field), r.body)
        r = self.srv.put("/v1/catalog/register", b'{"Node": "n1", ')
        self.assertEqual(r.status, 400)
        self.assertIn("invalid JSON", r.json()["error"])
        r = self.srv.put("/v1/catalog/register", b"")
        self.assertEqual(r.status, 400)
        # Nothing was written by any of these.
        self.assertIsNone(self.srv.get("/v1/catalog/node/n1").json())

    def test_methods_paths_and_limits(self):
        r = self.srv.get("/v1/catalog/register")
        self.assertEqual(r.status, 405)
        self.assertIn("error", r.json())
        r = self.srv.get("/v1/no/such/thing")
        self.assertEqual(r.status, 404)
        r = self.srv.get("/v1/catalog/nodes?dc=elsewhere")
        self.assertEqual(r.status, 400)
        self.assertIn("dc", r.json()["error"])
        r = self.srv.get("/v1/catalog/nodes?index=abc")
        self.assertEqual(r.status, 400)
        self.assertTrue(r.json()["error"].startswith("index"))
        big = {"Node": "n1", "Address": "a", "NodeMeta": {"k": "x" * 4000}}
        big["Service"] = {"Service": "w", "Meta": {("k%d" % i): "v" * 3000 for i in range(400)}}
        r = self.srv.put("/v1/catalog/register", big)
        self.assertEqual(r.status, 413, r.body)
        self.assertIsNone(self.srv.get("/v1/catalog/node/n1").json())


class StatusTest(harness.ServerTest):

    def test_leader_and_peers(self):
        self.assertEqual(self.srv.get("/v1/status/leader").json(), self.srv.addr)
        self.assertEqual(self.srv.get("/v1/status/peers").json(), [self.srv.addr])


if __name__ == "__main__":
    harness.main()
