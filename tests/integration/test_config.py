"""/v1/config: Consul's config entries, validated per field and across
entries; service-intentions is one source of truth with the intentions API."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class ConfigTest(harness.ServerTest):
    def put(self, entry, **params):
        q = "&".join("%s=%s" % kv for kv in params.items())
        return self.srv.put("/v1/config" + ("?" + q if q else ""), entry)

    def test_write_read_list_delete(self):
        r = self.put({"Kind": "service-defaults", "Name": "web", "Protocol": "http"})
        self.assertEqual((r.status, r.json()), (200, True))
        r = self.srv.get("/v1/config/service-defaults/web")
        self.assertEqual(r.status, 200)
        e = r.json()
        self.assertEqual((e["Kind"], e["Name"], e["Protocol"]), ("service-defaults", "web", "http"))
        self.assertGreater(e["ModifyIndex"], 0)
        names = [x["Name"] for x in self.srv.get("/v1/config/service-defaults").json()]
        self.assertIn("web", names)
        # Snake case as Consul's decoder takes it.
        r = self.put({"kind": "service-defaults", "name": "snake", "protocol": "grpc"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.srv.get("/v1/config/service-defaults/snake").json()["Protocol"], "grpc")
        self.assertEqual(self.srv.delete("/v1/config/service-defaults/snake").json(), True)
        self.assertEqual(self.srv.get("/v1/config/service-defaults/snake").status, 404)

    def test_cas(self):
        self.assertEqual(self.put({"Kind": "service-defaults", "Name": "cas", "Protocol": "tcp"},
                                  cas=0).json(), True)
        self.assertEqual(self.put({"Kind": "service-defaults", "Name": "cas", "Protocol": "http"},
                                  cas=0).json(), False)
        idx = self.srv.get("/v1/config/service-defaults/cas").json()["ModifyIndex"]
        self.assertEqual(self.put({"Kind": "service-defaults", "Name": "cas", "Protocol": "http"},
                                  cas=idx + 100).json(), False)
        self.assertEqual(self.put({"Kind": "service-defaults", "Name": "cas", "Protocol": "http"},
                                  cas=idx).json(), True)
        self.assertEqual(self.srv.get("/v1/config/service-defaults/cas").json()["Protocol"], "http")
        r = self.srv.delete("/v1/config/service-defaults/cas?cas=1")
        self.assertEqual(r.json(), False)

    def test_field_errors(self):
        cases = [
            ({"Kind": "service-defaults", "Name": "x", "Protocol": "smtp"}, "Protocol"),
            ({"Kind": "nope", "Name": "x"}, "Kind"),
            ({"Kind": "service-splitter", "Name": "x",
              "Splits": [{"Weight": 60}, {"Weight": 30}]}, "Splits"),
            ({"Kind": "proxy-defaults", "Name": "not-global"}, "Name"),
            ({"Kind": "service-intentions", "Name": "db", "Sources": [
                {"Name": "web", "Permissions": [{"Action": "allow",
                                                 "HTTP": {"PathExact": "no-slash"}}]}]},
             "Sources[0].Permissions[0].HTTP.PathExact"),
        ]
        for entry, field in cases:
            r = self.put(entry)
            self.assertEqual(r.status, 400, (entry, r))
            self.assertTrue(r.json()["error"].startswith(field), (field, r.body))
        self.assertEqual(self.srv.get("/v1/config/nope").status, 400)
        self.assertEqual(self.srv.get("/v1/config/service-defaults/x").status, 404)

    def test_regexes_share_one_budget_per_entry(self):
        # Each source alone is within an intention's regex budget; the
        # entry's sources share one, so the third is refused by its field
        # and nothing of the entry is written.
        self.assertEqual(self.put({"Kind": "service-defaults", "Name": "rxdb",
                                   "Protocol": "http"}).status, 200)
        src = [{"Name": "s%d" % i, "Permissions": [
            {"Action": "allow", "HTTP": {"PathRegex": "(a{60}){80}"}}]} for i in range(3)]
        r = self.put({"Kind": "service-intentions", "Name": "rxdb", "Sources": src})
        self.assertEqual(r.status, 400, r.body)
        e = r.json()
        self.assertEqual(e["field"], "Sources[2].Permissions[0].HTTP.PathRegex", e)
        self.assertIn("too complex (with the patterns before it", e["error"])
        self.assertEqual(self.srv.get("/v1/config/service-intentions/rxdb").status, 404)
        r = self.put({"Kind": "service-intentions", "Name": "rxdb", "Sources": src[:2]})
        self.assertEqual(r.status, 200, r.body)

    def test_cross_entry_checks(self):
        self.assertEqual(self.put({"Kind": "service-defaults", "Name": "api",
                                   "Protocol": "http"}).status, 200)
        router = {"Kind": "service-router", "Name": "api", "Routes": [
            {"Match": {"HTTP": {"PathPrefix": "/v2"}}, "Destination": {"ServiceSubset": "v2"}}]}
        r = self.put(router)
        self.assertEqual(r.status, 400)
        self.assertIn("Routes[0].Destination.ServiceSubset", r.json()["error"])
        self.assertEqual(self.put({"Kind": "service-resolver", "Name": "api", "Subsets": {
            "v1": {"Filter": "Service.Meta.version == 1"},
            "v2": {"Filter": "Service.Meta.version == 2"}}}).status, 200)
        self.assertEqual(self.put(router).status, 200)
        # The resolver the router needs cannot go, nor can http.
        r = self.srv.delete("/v1/config/service-resolver/api")
        self.assertEqual(r.status, 400, r.body)
        r = self.put({"Kind": "service-defaults", "Name": "api", "Protocol": "tcp"})
        self.assertEqual(r.status, 400)
        self.assertTrue(r.json()["error"].startswith("Protocol"), r.body)
        # A splitter must sum to 100 and needs http too.
        self.assertEqual(self.put({"Kind": "service-splitter", "Name": "tcp-svc", "Splits": [
            {"Weight": 100}]}).status, 400)

    def test_examples_policy_load(self):
        # Everything in examples/policy/ is accepted, in dependency order.
        import glob
        import json as _j
        sys.path.insert(0, harness.SRCDIR)
        order = ["proxy-defaults", "service-defaults", "service-resolver", "service-splitter",
                 "service-router", "service-intentions", "mesh"]
        files = sorted(glob.glob(os.path.join(harness.SRCDIR, "examples", "policy", "*.yaml")))
        self.assertGreaterEqual(len(files), 5)
        ctl = harness.CTL_BIN
        import subprocess
        env = dict(os.environ, WEFT_HTTP_ADDR=self.srv.addr, WEFT_HTTP_TOKEN=self.srv.token or "")
        for kind in order:
            for f in files:
                if os.path.basename(f).startswith(kind + "-") or os.path.basename(f) == kind + ".yaml":
                    p = subprocess.run([ctl, "config", "write", f], env=env, capture_output=True,
                                       text=True, timeout=20)
                    self.assertEqual(p.returncode, 0, (f, p.stdout, p.stderr))
        lst = self.srv.get("/v1/config/service-router").json()
        self.assertIn("api", [e["Name"] for e in lst])
        _j.dumps(lst)

    def test_one_source_of_truth_with_intentions(self):
        r = self.put({"Kind": "service-intentions", "Name": "orders", "Sources": [
            {"Name": "web", "Action": "allow"}, {"Name": "*", "Action": "deny"}]})
        self.assertEqual(r.status, 200, r.body)
        r = self.srv.get("/v1/connect/intentions/exact?source=web&destination=orders")
        self.assertEqual((r.status, r.json()["Action"]), (200, "allow"))
        r = self.srv.get("/v1/connect/intentions/check?source=batch&destination=orders")
        self.assertEqual(r.json()["Allowed"], False)
        # And the other way: an intention written through the intentions API
        # shows in the entry.
        r = self.srv.put("/v1/connect/intentions/exact?source=billing&destination=orders",
                         {"Action": "allow"})
        self.assertEqual(r.status, 200, r.body)
        srcs = {s["Name"]: s for s in self.srv.get("/v1/config/service-intentions/orders").json()["Sources"]}
        self.assertEqual(srcs["billing"]["Action"], "allow")
        self.assertEqual(srcs["web"]["Action"], "allow")

    def test_blocking_get_wakes_on_its_entry(self):
        self.put({"Kind": "service-defaults", "Name": "blk", "Protocol": "http"})
        idx = self.srv.get("/v1/config/service-defaults/blk").index
        out = {}

        def run():
            out["r"] = self.srv.get("/v1/config/service-defaults/blk?index=%d&wait=10s" % idx)
            out["t"] = time.monotonic()
        th = threading.Thread(target=run)
        th.start()
        time.sleep(0.3)
        self.put({"Kind": "service-defaults", "Name": "other", "Protocol": "http"})
        time.sleep(0.3)
        self.assertNotIn("r", out)
        t0 = time.monotonic()
        self.put({"Kind": "service-defaults", "Name": "blk", "Protocol": "grpc"})
        th.join(5)
        self.assertLess(out["t"] - t0, 1.0)
        self.assertEqual(out["r"].json()["Protocol"], "grpc")

    def test_meshes_are_separate(self):
        r = self.srv.put("/v1/meshes/cfgmesh", {"MTLSMode": "strict"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.put({"Kind": "service-defaults", "Name": "only-there",
                                   "Protocol": "http"}, mesh="cfgmesh").status, 200)
        self.assertEqual(self.srv.get("/v1/config/service-defaults/only-there").status, 404)
        self.assertEqual(self.srv.get("/v1/config/service-defaults/only-there?mesh=cfgmesh").status,
                         200)
        self.assertEqual(self.put({"Kind": "service-defaults", "Name": "x"}, mesh="nomesh").status,
                         400)

    def test_permissions(self):
        r = self.srv.put("/v1/acl/token", {"Kind": "service", "ServiceName": "web"})
        svc = r.json()["SecretID"]
        r = self.srv.put("/v1/acl/token", {"Kind": "operator"})
        op = r.json()["SecretID"]
        entry = {"Kind": "service-defaults", "Name": "perm", "Protocol": "http"}
        r = self.srv.request("PUT", "/v1/config", body=entry, token=svc)
        self.assertEqual(r.status, 403)
        self.assertIn("policy:write", r.json()["error"])
        r = self.srv.request("PUT", "/v1/config", body=entry, token=op)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.srv.request("GET", "/v1/config/service-defaults/perm",
                                          token=None).status, 403)


YAML = {"Content-Type": "application/yaml"}


class ConfigYamlTest(harness.ServerTest):
    """The same entries written and read as YAML, errors at their line."""

    def put_yaml(self, text, ctype="application/yaml"):
        return self.srv.put("/v1/config", text, headers={"Content-Type": ctype})

    def test_yaml_put(self):
        r = self.put_yaml("Kind: service-defaults\nName: yweb\nProtocol: http\n"
                          "Meta:\n  owner: team-a\n  tier: \"1\"\n")
        self.assertEqual((r.status, r.json()), (200, True), r.body)
        e = self.srv.get("/v1/config/service-defaults/yweb").json()
        self.assertEqual((e["Protocol"], e["Meta"]), ("http", {"owner": "team-a", "tier": "1"}))
        # text/yaml with a charset, snake_case keys, a "---" start.
        r = self.put_yaml("---\nkind: service-resolver\nname: yweb\nconnect_timeout: 5s\n",
                          "text/yaml; charset=utf-8")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.srv.get("/v1/config/service-resolver/yweb").json()["ConnectTimeout"],
                         "5s")
        # One entry per request.
        r = self.put_yaml("Kind: mesh\nName: mesh\n---\nKind: mesh\nName: mesh\n",
                          "application/x-yaml")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["field"], "body")
        self.assertIn("one config entry", r.json()["error"])
        # Without a YAML content type, the body is JSON.
        r = self.srv.put("/v1/config", "Kind: mesh\nName: mesh\n")
        self.assertEqual(r.status, 400)
        self.assertIn("invalid JSON", r.json()["error"])

    def test_yaml_error_line_column(self):
        text = ("Kind: service-intentions\n"
                "Name: ydb\n"
                "Sources:\n"
                "  - Name: web\n"
                "    Action: allow\n"
                "  - Name: api\n"
                "    Action: maybe\n")
        r = self.put_yaml(text)
        self.assertEqual(r.status, 400, r.body)
        e = r.json()
        self.assertEqual(e["field"], "Sources[1].Action")
        self.assertTrue(e["error"].startswith("Sources[1].Action: "), e)
        self.assertEqual((e["line"], e["column"]), (7, 5))
        # A syntax error at its position.
        r = self.put_yaml("Kind: service-defaults\nName: [unclosed\n")
        self.assertEqual(r.status, 400)
        e = r.json()
        self.assertEqual(e["field"], "body")
        self.assertIn("invalid YAML", e["error"])
        self.assertGreaterEqual(e["line"], 2)
        # JSON bodies get positions too: for a field, and for a syntax error.
        r = self.srv.put("/v1/config", '{\n  "Kind": "service-defaults",\n  "Name": "x",\n'
                                       '  "Protocol": "smtp"\n}')
        self.assertEqual(r.status, 400)
        e = r.json()
        self.assertEqual((e["field"], e["line"], e["column"]), ("Protocol", 4, 3))
        r = self.srv.put("/v1/config", '{\n  "Kind": "mesh",\n  "Name" "mesh"\n}')
        self.assertEqual(r.status, 400)
        self.assertEqual((r.json()["field"], r.json()["line"]), ("body", 3))

    def test_accept_yaml_round_trip(self):
        entry = {"Kind": "service-router", "Name": "yapi", "Routes": [
            {"Match": {"HTTP": {"PathPrefix": "/admin", "Methods": ["GET", "POST"]}},
             "Destination": {"Service": "admin", "RequestTimeout": "2s"}}]}
        self.assertEqual(self.srv.put("/v1/config", {"Kind": "service-defaults", "Name": "yapi",
                                                     "Protocol": "http"}).status, 200)
        self.assertEqual(self.srv.put("/v1/config", {"Kind": "service-defaults", "Name": "admin",
                                                     "Protocol": "http"}).status, 200)
        self.assertEqual(self.srv.put("/v1/config", entry).status, 200)
        as_json = self.srv.get("/v1/config/service-router/yapi").json()
        r = self.srv.get("/v1/config/service-router/yapi",
                         headers={"Accept": "application/yaml, application/json;q=0.5"})
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("application/yaml"))
        self.assertTrue(r.body.startswith("Kind: service-router\nName: yapi\n"), r.body)
        self.assertIn("PathPrefix: /admin", r.body)
        # Written back as it was read: the same entry.
        r = self.put_yaml(r.body.replace("RequestTimeout: 2s", "RequestTimeout: 3s"))
        self.assertEqual(r.status, 200, r.body)
        again = self.srv.get("/v1/config/service-router/yapi").json()
        self.assertEqual(again["Routes"][0]["Destination"]["RequestTimeout"], "3s")
        again["Routes"][0]["Destination"]["RequestTimeout"] = "2s"
        for k in ("CreateIndex", "ModifyIndex"):
            self.assertEqual(again.pop(k) >= as_json.pop(k), True)
        self.assertEqual(again, as_json)
        # JSON stays the answer unless YAML is preferred.
        for accept in ("application/json", "*/*", "application/json, application/yaml",
                       "application/yaml;q=0.1, application/json"):
            r = self.srv.get("/v1/config/service-router/yapi", headers={"Accept": accept})
            self.assertTrue(r.headers["Content-Type"].startswith("application/json"), accept)
            self.assertEqual(r.json()["Name"], "yapi")


if __name__ == "__main__":
    harness.main()
