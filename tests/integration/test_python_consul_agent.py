"""A real Consul client, Debian's python-consul 0.7.1, against weft-server:
the agent, catalog, health and status calls a service uses."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import consul  # noqa: E402

NODE = "server-1"


class PythonConsulTest(harness.ServerTest):
    dev = True

    def client(self):
        c = consul.Consul(host="127.0.0.1", port=self.srv.port)
        if self.srv.token:
            c.http.session.headers["X-Consul-Token"] = self.srv.token
        return c

    def test_agent_self_and_members(self):
        c = self.client()
        me = c.agent.self()
        self.assertEqual(me["Config"]["Datacenter"], "dc1")
        self.assertEqual(me["Config"]["NodeName"], NODE)
        self.assertEqual(me["Member"]["Name"], NODE)
        self.assertEqual([m["Name"] for m in c.agent.members()], [NODE])

    def test_service_with_ttl_check(self):
        c = self.client()
        self.assertTrue(c.agent.service.register(
            "api", service_id="api-1", address="127.0.0.1", port=8081, tags=["v2"],
            check=consul.Check.ttl("10s")))
        services = c.agent.services()
        self.assertEqual(services["api-1"]["Service"], "api")
        self.assertEqual(services["api-1"]["Port"], 8081)
        self.assertEqual(services["api-1"]["Tags"], ["v2"])
        # The TTL check starts critical: not in the passing list.
        _, nodes = c.health.service("api", passing=True)
        self.assertEqual(nodes, [])
        self.assertTrue(c.agent.check.ttl_pass("service:api-1", "fine"))
        _, nodes = c.health.service("api", passing=True)
        self.assertEqual([n["Service"]["ID"] for n in nodes], ["api-1"])
        self.assertEqual(nodes[0]["Node"]["Node"], NODE)
        self.assertEqual(nodes[0]["Service"]["Address"], "127.0.0.1")
        checks = c.agent.checks()
        self.assertEqual(checks["service:api-1"]["Output"], "fine")
        self.assertTrue(c.agent.check.ttl_warn("service:api-1", "slow"))
        self.assertEqual(c.agent.checks()["service:api-1"]["Status"], "warning")
        self.assertTrue(c.agent.check.ttl_fail("service:api-1"))
        self.assertEqual(c.agent.checks()["service:api-1"]["Status"], "critical")
        # Maintenance through the client.
        self.assertTrue(c.agent.check.ttl_pass("service:api-1"))
        self.assertTrue(c.agent.service.maintenance("api-1", "true", "deploy"))
        self.assertEqual(c.health.service("api", passing=True)[1], [])
        self.assertTrue(c.agent.service.maintenance("api-1", "false"))
        self.assertEqual(len(c.health.service("api", passing=True)[1]), 1)
        self.assertTrue(c.agent.service.deregister("api-1"))
        self.assertNotIn("api-1", c.agent.services())
        self.assertEqual(c.health.service("api")[1], [])

    def test_agent_check_register(self):
        c = self.client()
        self.assertTrue(c.agent.check.register("mem", check=consul.Check.ttl("30s"),
                                               check_id="mem", notes="free -m"))
        chk = c.agent.checks()["mem"]
        self.assertEqual((chk["Name"], chk["Notes"], chk["Status"]), ("mem", "free -m", "critical"))
        self.assertTrue(c.agent.check.ttl_pass("mem"))
        self.assertTrue(c.agent.check.deregister("mem"))
        self.assertNotIn("mem", c.agent.checks())
        # 404 for an unknown check: python-consul's boolean calls say False.
        self.assertFalse(c.agent.check.ttl_pass("mem"))
        with self.assertRaises(consul.base.BadRequest):
            c.agent.check.register("bad", check={"http": "http://127.0.0.1:1/"})

    def test_ttl_expiry_seen_by_blocking_client(self):
        c = self.client()
        c.agent.service.register("hb", service_id="hb-1", check=consul.Check.ttl("1s"))
        c.agent.check.ttl_pass("service:hb-1")
        index, nodes = c.health.service("hb", passing=True)
        self.assertEqual(len(nodes), 1)
        t0 = time.monotonic()
        index2, _ = c.health.service("hb", index=index, wait="5s")
        self.assertLess(time.monotonic() - t0, 3)
        self.assertGreater(int(index2), int(index))
        self.assertEqual(c.health.service("hb", passing=True)[1], [])
        self.assertEqual(c.health.checks("hb")[1][0]["Output"],
                         "TTL expired")
        c.agent.service.deregister("hb-1")

    def test_catalog_health_status(self):
        c = self.client()
        self.assertTrue(c.catalog.register(
            "ext-1", "10.0.0.5",
            service={"Service": "db", "ID": "db-1", "Tags": ["primary"], "Port": 5432},
            check={"CheckID": "db-alive", "Name": "db alive", "Status": "passing",
                   "ServiceID": "db-1"}))
        _, services = c.catalog.services()
        self.assertEqual(services["db"], ["primary"])
        _, nodes = c.catalog.nodes()
        self.assertIn("ext-1", [n["Node"] for n in nodes])
        self.assertIn(NODE, [n["Node"] for n in nodes])
        _, node = c.catalog.node("ext-1")
        self.assertEqual(node["Node"]["Address"], "10.0.0.5")
        self.assertEqual(node["Services"]["db-1"]["Port"], 5432)
        _, svc = c.catalog.service("db")
        self.assertEqual([(s["Node"], s["ServicePort"]) for s in svc], [("ext-1", 5432)])
        _, checks = c.health.checks("db")
        self.assertEqual([ch["CheckID"] for ch in checks], ["db-alive"])
        _, passing = c.health.state("passing")
        self.assertIn("db-alive", [ch["CheckID"] for ch in passing])
        _, node_checks = c.health.node("ext-1")
        self.assertEqual([ch["CheckID"] for ch in node_checks], ["db-alive"])
        _, healthy = c.health.service("db", passing=True)
        self.assertEqual([h["Node"]["Node"] for h in healthy], ["ext-1"])
        self.assertEqual(c.status.leader(), self.srv.addr)
        self.assertEqual(c.status.peers(), [self.srv.addr])
        self.assertEqual(c.catalog.datacenters(), ["dc1"])
        self.assertTrue(c.catalog.deregister("ext-1"))


class PythonConsulTokenTest(PythonConsulTest):
    """The same calls with a token (skipped while the server only runs --dev)."""
    dev = False

    @classmethod
    def setUpClass(cls):
        try:
            super().setUpClass()
        except RuntimeError as e:
            raise harness.unittest.SkipTest("weft-server runs without --dev only with tokens: %s"
                                            % str(e).splitlines()[0])

    def test_no_token_is_refused(self):
        c = consul.Consul(host="127.0.0.1", port=self.srv.port)
        with self.assertRaises(consul.ACLPermissionDenied):
            c.agent.service.register("nope", check=consul.Check.ttl("10s"))
        with self.assertRaises(consul.ACLPermissionDenied):
            c.agent.self()


if __name__ == "__main__":
    harness.main()
