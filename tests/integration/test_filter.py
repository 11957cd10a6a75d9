"""?filter= on the catalog and health endpoints, against a real weft-server."""
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ServerTest, main  # noqa: E402


def q(expr):
    return urllib.parse.quote(expr, safe="")


class FilterTest(ServerTest):
    dev = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        regs = [
            {"Node": "node-a", "Address": "10.0.0.1", "NodeMeta": {"rack": "r1", "os": "linux"},
             "Service": {"ID": "web-1", "Service": "web", "Tags": ["primary", "v2"],
                         "Port": 8080, "Meta": {"version": "1.2.3", "env": "prod"}},
             "Checks": [{"CheckID": "web-1-http", "Name": "http", "Status": "passing",
                         "ServiceID": "web-1"}]},
            {"Node": "node-b", "Address": "10.0.0.2", "NodeMeta": {"rack": "r2", "os": "linux"},
             "Service": {"ID": "web-2", "Service": "web", "Tags": ["secondary"],
                         "Port": 8081, "Meta": {"version": "1.3.0", "env": "prod"}},
             "Checks": [{"CheckID": "web-2-http", "Name": "http", "Status": "critical",
                         "ServiceID": "web-2"}]},
            {"Node": "node-c", "Address": "10.0.0.3", "NodeMeta": {"rack": "r1", "os": "bsd"},
             "Service": {"ID": "web-3", "Service": "web", "Tags": [], "Port": 9090,
                         "Meta": {"version": "2.0.0", "env": "staging"}},
             "Checks": [{"CheckID": "mem", "Name": "memory", "Status": "warning"}]},
            {"Node": "node-c", "Address": "10.0.0.3", "NodeMeta": {"rack": "r1", "os": "bsd"},
             "Service": {"ID": "db-1", "Service": "db", "Tags": ["primary"], "Port": 5432}},
        ]
        for reg in regs:
            r = cls.srv.put("/v1/catalog/register", reg)
            if r.status != 200:
                raise AssertionError("register %s: %r" % (reg["Service"]["ID"], r))

    def ids(self, path, expr, key="ServiceID"):
        sep = "&" if "?" in path else "?"
        r = self.srv.get("%s%sfilter=%s" % (path, sep, q(expr)))
        self.assertEqual(r.status, 200, r)
        out = []
        for e in r.json():
            out.append(e["Service"]["ID"] if key == "Service.ID" else e[key])
        return sorted(out)

    def cat(self, expr):
        return self.ids("/v1/catalog/service/web", expr)

    def health(self, expr):
        return self.ids("/v1/health/service/web", expr, key="Service.ID")

    def test_catalog_service(self):
        self.assertEqual(self.cat('ServiceMeta.version == "1.2.3"'), ["web-1"])
        self.assertEqual(self.cat("ServiceMeta.version != `1.2.3`"), ["web-2", "web-3"])
        self.assertEqual(self.cat('"primary" in ServiceTags'), ["web-1"])
        self.assertEqual(self.cat("ServiceTags not contains primary"), ["web-2", "web-3"])
        self.assertEqual(self.cat("ServiceTags is empty"), ["web-3"])
        self.assertEqual(self.cat("ServicePort == 8081"), ["web-2"])
        self.assertEqual(self.cat(r"ServiceMeta.version matches `^1\.\d+\.`"), ["web-1", "web-2"])
        self.assertEqual(self.cat("NodeMeta.rack == r1"), ["web-1", "web-3"])
        self.assertEqual(self.cat("NodeMeta.rack == r1 and not ServiceTags is empty"), ["web-1"])
        self.assertEqual(
            self.cat("ServiceMeta.env == staging or (NodeMeta.rack == r2 and ServicePort == 8081)"),
            ["web-2", "web-3"])
        self.assertEqual(self.cat('ServiceMeta["env"] == prod and Node matches "^node-[ab]$"'),
                         ["web-1", "web-2"])
        self.assertEqual(self.cat("ServiceMeta.missing == x"), [])
        self.assertEqual(self.cat("ServiceMeta.missing is empty"), ["web-1", "web-2", "web-3"])

    def test_catalog_services(self):
        # Consul filters the instances, then lists their services and tags
        r = self.srv.put("/v1/catalog/register", {
            "Node": "node-a", "SkipNodeUpdate": True,
            "Service": {"Service": "web-sidecar-proxy", "ID": "web-1-sidecar", "Port": 21000,
                        "Kind": "connect-proxy", "Proxy": {"DestinationServiceName": "web"}}})
        self.assertEqual(r.status, 200, r)
        try:
            def services(expr):
                r = self.srv.get("/v1/catalog/services?filter=%s" % q(expr))
                self.assertEqual(r.status, 200, r)
                return r.json()
            everything = self.srv.get("/v1/catalog/services").json()
            self.assertIn("web-sidecar-proxy", everything)
            got = services('ServiceKind != "connect-proxy"')
            self.assertNotIn("web-sidecar-proxy", got)
            self.assertEqual(sorted(got["web"]), sorted(everything["web"]))
            self.assertEqual(list(services('ServiceKind == "connect-proxy"')), ["web-sidecar-proxy"])
            # tags of the instances that match only
            self.assertEqual(services('ServiceName == web and "primary" in ServiceTags'),
                             {"web": [t for t in everything["web"] if t in
                                      self.srv.get("/v1/catalog/service/web?filter=%s" % q(
                                          '"primary" in ServiceTags')).json()[0]["ServiceTags"]]})
            self.assertEqual(self.srv.get("/v1/catalog/services?filter=%s" % q("ServiceKind ==")).status,
                             400)
        finally:
            self.srv.put("/v1/catalog/deregister", {"Node": "node-a", "ServiceID": "web-1-sidecar"})

    def test_filter_with_other_parameters(self):
        # ?tag= narrows first, then the filter.
        r = self.srv.get("/v1/catalog/service/db?tag=primary&filter=" + q("ServicePort == 5432"))
        self.assertEqual([e["ServiceID"] for e in r.json()], ["db-1"])
        r = self.srv.get("/v1/catalog/service/web?tag=primary&filter=" + q("ServicePort == 8081"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), [])
        # An empty filter is no filter.
        r = self.srv.get("/v1/catalog/service/web?filter=")
        self.assertEqual(len(r.json()), 3)

    def test_health_service(self):
        self.assertEqual(self.health("Checks.Status == critical"), ["web-2"])
        # Any check not passing: web-2's service check, web-3's node check.
        self.assertEqual(self.health("Checks.Status != passing"), ["web-2", "web-3"])
        self.assertEqual(self.health("not Checks.Status != passing"), ["web-1"])
        self.assertEqual(self.health("Checks.CheckID == mem"), ["web-3"])
        self.assertEqual(self.health("Service.Meta.version == `2.0.0`"), ["web-3"])
        self.assertEqual(self.health("secondary in Service.Tags"), ["web-2"])
        self.assertEqual(self.health("Node.Meta.os == bsd"), ["web-3"])
        self.assertEqual(self.health('Node.Node == "node-a" or Service.Port == 9090'),
                         ["web-1", "web-3"])
        # With ?passing the filter sees only what passing leaves.
        r = self.srv.get("/v1/health/service/web?passing=1&filter=" + q("Node.Meta.rack == r1"))
        self.assertEqual([e["Service"]["ID"] for e in r.json()], ["web-1"])

    def test_catalog_nodes(self):
        self.assertEqual(self.ids("/v1/catalog/nodes", "Meta.rack == r1", key="Node"),
                         ["node-a", "node-c"])
        self.assertEqual(self.ids("/v1/catalog/nodes", 'Meta.os != "linux" and Node matches `^node`',
                                  key="Node"), ["node-c"])
        self.assertEqual(self.ids("/v1/catalog/nodes", 'Address == "10.0.0.2"', key="Node"),
                         ["node-b"])
        self.assertEqual(self.ids("/v1/catalog/nodes", '"rack" not in Meta and Node == "node-a"',
                                  key="Node"), [])

    def test_health_checks_and_node_services(self):
        r = self.srv.get("/v1/health/state/any?filter=" + q("Status != passing"))
        self.assertEqual(sorted(c["CheckID"] for c in r.json()), ["mem", "web-2-http"])
        r = self.srv.get("/v1/catalog/node/node-c?filter=" + q("Port == 5432"))
        self.assertEqual(r.status, 200)
        self.assertEqual(sorted(r.json()["Services"]), ["db-1"])

    def test_blocking_query_with_filter(self):
        f = q('ServiceMeta.track == "canary"')
        r = self.srv.get("/v1/catalog/service/api?filter=" + f)
        self.assertEqual((r.status, r.json()), (200, []))
        idx = r.index
        result = {}

        def wait():
            result["r"] = self.srv.get("/v1/catalog/service/api?index=%d&wait=10s&filter=%s"
                                       % (idx, f))

        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.3)
        reg = {"Node": "other-d", "Address": "10.0.0.4",
               "Service": {"ID": "api-1", "Service": "api", "Meta": {"track": "canary"}}}
        self.assertEqual(self.srv.put("/v1/catalog/register", reg).status, 200)
        t.join(15)
        self.assertFalse(t.is_alive())
        r = result["r"]
        self.assertEqual(r.status, 200)
        self.assertGreater(r.index, idx)
        self.assertEqual([e["ServiceID"] for e in r.json()], ["api-1"])
        # A bad filter on a blocking query is refused at once, not after the wait.
        start = time.time()
        r = self.srv.get("/v1/catalog/service/api?index=%d&wait=10s&filter=%s"
                         % (r.index, q("ServiceMeta.track ==")))
        self.assertEqual(r.status, 400)
        self.assertLess(time.time() - start, 5)

    def check_bad(self, path, expr, want):
        r = self.srv.get(path + "?filter=" + q(expr))
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.headers.get("Content-Type", "").split(";")[0], "application/json")
        body = r.json()
        self.assertTrue(body["error"].startswith("filter: "), body)
        self.assertIn(want, body["error"])
        self.assertEqual(body.get("field"), "filter")

    def test_bad_expressions(self):
        self.check_bad("/v1/catalog/service/web", "ServicePort ==",
                       'filter: position 15: expected a value after "=="')
        self.check_bad("/v1/health/service/web", "(Checks.Status == passing",
                       'expected ")" to close the "(" at position 1')
        self.check_bad("/v1/catalog/nodes", "Meta.rack = r1", "position 11: expected an operator")
        self.check_bad("/v1/catalog/nodes", "Node matches `(`", "invalid regular expression")
        self.check_bad("/v1/catalog/nodes", 'Node == "unterminated', "unterminated string")
        # Bytes that are not UTF-8 come back escaped, in valid JSON.
        r = self.srv.get("/v1/catalog/nodes?filter=Node%20%3D%3D%20x%20%FF")
        self.assertEqual(r.status, 400)
        self.assertIn("\\xff", r.json()["error"])
        # Deep nesting and long expressions are refused, not crashed on.
        self.check_bad("/v1/catalog/nodes", "(" * 40 + "Node == x" + ")" * 40, "nests deeper")
        # An expression past the filter's own limit cannot even arrive: the
        # request line is over the server's header memory (test_http_limits).
        r = self.srv.get("/v1/catalog/nodes?filter=" + q("Node == x or " * 700 + "Node == y"))
        self.assertEqual(r.status, 414, r)


if __name__ == "__main__":
    main()
