"""weftctl intention, config and mesh commands against a real weft-server,
loading examples/policy/ as the README does.

The server endpoints (/v1/connect/intentions..., /v1/config..., /v1/meshes)
land in another branch: wire this file into tests/Makefile.inc once both
are merged."""
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CTL_BIN, ServerTest, free_port  # noqa: E402

SRCDIR = os.environ.get("WEFT_SRCDIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXAMPLES = os.path.join(SRCDIR, "examples", "policy")
# Entries a later one depends on come first: protocols before routers and
# splitters, the resolver's subsets before the routes that use them.
EXAMPLE_ORDER = [
    "proxy-defaults.yaml",
    "service-defaults-api.yaml",
    "service-defaults-web.yaml",
    "service-resolver-api.yaml",
    "service-splitter-api.yaml",
    "service-router-api.yaml",
    "service-intentions-api.yaml",
    "mesh.yaml",
]


def run_ctl(*args, addr, input=None, timeout=30):
    env = {k: v for k, v in os.environ.items() if k not in ("WEFT_HTTP_ADDR", "WEFT_HTTP_TOKEN")}
    return subprocess.run([CTL_BIN, "--address", addr] + list(args), capture_output=True,
                          text=True, env=env, input=input, timeout=timeout)


class PolicyTest(ServerTest):
    dev = True

    def ctl(self, *args, **kw):
        return run_ctl(*args, addr=self.srv.addr, **kw)

    def ok(self, *args, **kw):
        r = self.ctl(*args, **kw)
        self.assertEqual(r.returncode, 0, "weftctl %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r

    def write(self, name, text):
        path = os.path.join(self.srv.data_dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def new_mesh(self, name, action="deny"):
        self.ok("mesh", "create", name, "-default-action", action)

    def load_examples(self, mesh):
        for name in EXAMPLE_ORDER:
            self.ok("--mesh", mesh, "config", "write", os.path.join(EXAMPLES, name))


class ConfigTest(PolicyTest):
    def test_write_every_example_then_read_list_delete(self):
        # Every example file is covered by EXAMPLE_ORDER (the README loads them all).
        self.assertEqual(sorted(os.path.basename(p) for p in glob.glob(EXAMPLES + "/*.yaml")),
                         sorted(EXAMPLE_ORDER))
        self.new_mesh("cfg")
        for name in EXAMPLE_ORDER:
            path = os.path.join(EXAMPLES, name)
            r = self.ok("--mesh", "cfg", "config", "write", path)
            self.assertRegex(r.stdout, r"^Config entry written: [a-z-]+/[a-z-]+\n$")
        r = self.ok("--mesh", "cfg", "config", "list", "-kind", "service-defaults")
        self.assertEqual(r.stdout, "api\nweb\n")
        r = self.ok("--mesh", "cfg", "config", "list", "-kind", "service-defaults",
                    "--output", "json")
        self.assertEqual([e["Name"] for e in json.loads(r.stdout)], ["api", "web"])
        # read prints the stored entry as JSON, in Consul's casing.
        r = self.ok("--mesh", "cfg", "config", "read", "-kind", "service-router", "-name", "api")
        entry = json.loads(r.stdout)
        self.assertEqual(entry["Kind"], "service-router")
        self.assertEqual(entry["Routes"][0]["Destination"]["ServiceSubset"], "v2")
        self.assertEqual(entry["Routes"][0]["Destination"]["RequestTimeout"], "10s")
        # What weftctl wrote is what the API serves, in that mesh only.
        r = self.srv.get("/v1/config/service-splitter/api?mesh=cfg")
        self.assertEqual(r.status, 200)
        self.assertEqual([s["Weight"] for s in r.json()["Splits"]], [90, 10])
        self.assertEqual(self.srv.get("/v1/config/service-splitter/api?mesh=default").status, 404)
        # Delete the router, then the splitter; the entry is gone.
        r = self.ok("--mesh", "cfg", "config", "delete", "-kind", "service-router", "-name", "api")
        self.assertEqual(r.stdout, "Config entry deleted: service-router/api\n")
        r = self.ctl("--mesh", "cfg", "config", "read", "-kind", "service-router", "-name", "api")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("weftctl: "), r.stderr)
        self.assertEqual(r.stdout, "")

    def test_bad_file_is_refused_before_anything_is_sent(self):
        path = self.write("split.yaml", "Kind: service-splitter\n"
                                        "Name: cart\n"
                                        "Splits:\n"
                                        "  - Weight: 90\n"
                                        "    ServiceSubset: v1\n"
                                        "  - Weight: 20\n"
                                        "    ServiceSubset: v2\n")
        r = self.ctl("config", "write", path)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr,
                         "weftctl: %s:3:1: Splits: the weights must add up to 100, not 110.00\n"
                         % path)
        self.assertEqual(self.srv.get("/v1/config/service-splitter/cart").status, 404)
        # A misspelt field, in JSON: the line and column of the field.
        path = self.write("web.json", '{"Kind": "service-defaults",\n "Name": "web",\n'
                                      ' "Protocl": "http"}\n')
        r = self.ctl("config", "write", path)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("weftctl: %s:3:2: Protocl: " % path), r.stderr)
        # Validation is local: no server is needed to find the error.
        dead = "127.0.0.1:%d" % free_port()
        r = run_ctl("config", "write", path, addr=dead)
        self.assertTrue(r.stderr.startswith("weftctl: %s:3:2: Protocl: " % path), r.stderr)
        # A valid file and no server: the connection error.
        good = self.write("ok.yaml", "Kind: service-defaults\nName: web\nProtocol: http\n")
        r = run_ctl("config", "write", good, addr=dead)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot reach weft-server at %s" % dead, r.stderr)

    def test_server_refusal_is_reported(self):
        # A router for a service whose protocol is tcp: valid alone, refused
        # by the server's cross-entry check.
        path = self.write("router.yaml", "Kind: service-router\nName: tcpsvc\nRoutes:\n"
                                         "  - Match: {HTTP: {PathPrefix: /a}}\n")
        r = self.ctl("config", "write", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("(HTTP 400)", r.stderr)
        self.assertIn("protocol", r.stderr)
        self.assertEqual(self.srv.get("/v1/config/service-router/tcpsvc").status, 404)

    def test_cas(self):
        path = self.write("cas.yaml", "Kind: service-defaults\nName: cas\nProtocol: http\n")
        # -cas with index 0: only if it does not exist.
        r = self.ok("config", "write", "-cas", "-modify-index", "0", path)
        self.assertEqual(r.stdout, "Config entry written: service-defaults/cas\n")
        r = self.ctl("config", "write", "-cas", "-modify-index", "0", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("config entry not updated: service-defaults/cas", r.stderr)
        index = json.loads(self.ok("config", "read", "-kind", "service-defaults",
                                   "-name", "cas").stdout)["ModifyIndex"]
        r = self.ok("config", "write", "-cas", "-modify-index", str(index), path)
        index2 = self.srv.get("/v1/config/service-defaults/cas").json()["ModifyIndex"]
        self.assertGreater(index2, index)
        r = self.ctl("config", "delete", "-kind", "service-defaults", "-name", "cas",
                     "-cas", "-modify-index", str(index))
        self.assertEqual(r.returncode, 1)
        self.assertIn("config entry not deleted: service-defaults/cas", r.stderr)
        self.assertEqual(self.srv.get("/v1/config/service-defaults/cas").status, 200)
        r = self.ok("config", "delete", "-kind", "service-defaults", "-name", "cas",
                    "-cas", "-modify-index", str(index2), "--output", "json")
        self.assertEqual(json.loads(r.stdout),
                         {"Kind": "service-defaults", "Name": "cas", "Deleted": True})
        self.assertEqual(self.srv.get("/v1/config/service-defaults/cas").status, 404)

    def test_usage(self):
        for args in (["config", "write"], ["config", "read", "-kind", "service-defaults"],
                     ["config", "list"], ["config", "list", "-kind", "nope"],
                     ["config", "delete", "-kind", "mesh", "-name", "mesh", "-cas"]):
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("Usage: weftctl config", r.stderr)


class IntentionTest(PolicyTest):
    def test_create_file_examples_and_read_them_back(self):
        self.new_mesh("ex")
        files = sorted(glob.glob(os.path.join(EXAMPLES, "intentions", "*")))
        self.assertGreaterEqual(len(files), 2)
        r = self.ok("--mesh", "ex", "intention", "create", "-file", *files)
        self.assertEqual(r.stdout, "Created: * => billing (deny)\n"
                                   "Created: web => billing (allow)\n")
        r = self.ok("--mesh", "ex", "intention", "list")
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "Source", "Action", "Destination", "Precedence"])
        self.assertEqual([ln.split()[1:] for ln in lines[1:]],
                         [["web", "allow", "billing", "9"], ["*", "deny", "billing", "8"]])
        r = self.ok("--mesh", "ex", "intention", "get", "web", "billing")
        self.assertIn("Source:       web\n", r.stdout)
        self.assertIn("Destination:  billing\n", r.stdout)
        self.assertIn("Action:       allow\n", r.stdout)
        self.assertIn("Description:  web starts checkouts\n", r.stdout)
        self.assertIn("Meta[owner]:  payments\n", r.stdout)
        # By ID, as consul intention get ID.
        ixid = json.loads(self.ok("--mesh", "ex", "intention", "get", "web", "billing",
                                  "--output", "json").stdout)["ID"]
        self.assertEqual(self.ok("--mesh", "ex", "intention", "get", ixid).stdout, r.stdout)
        # check: consul's exit status (0 allowed, 1 denied) and who decided.
        r = self.ctl("--mesh", "ex", "intention", "check", "web", "billing")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[:2],
                         ["Allowed", "Decided by: intention web => billing (allow), precedence 9"])
        r = self.ctl("--mesh", "ex", "intention", "check", "api", "billing")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout.splitlines()[:2],
                         ["Denied", "Decided by: intention * => billing (deny), precedence 8"])
        r = self.ctl("--mesh", "ex", "intention", "check", "web", "nobody")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout.splitlines()[:2], ["Denied", "Decided by: the default action"])
        r = self.ctl("--mesh", "ex", "intention", "check", "web", "billing", "--output", "json")
        self.assertTrue(json.loads(r.stdout)["Allowed"])
        # match, in evaluation order.
        r = self.ok("--mesh", "ex", "intention", "match", "billing")
        self.assertEqual(r.stdout, "web => billing (allow)\n* => billing (deny)\n")
        r = self.ok("--mesh", "ex", "intention", "match", "-source", "web")
        self.assertEqual(r.stdout, "web => billing (allow)\n* => billing (deny)\n")
        r = self.ok("--mesh", "ex", "intention", "match", "-source", "api")
        self.assertEqual(r.stdout, "* => billing (deny)\n")
        # The default mesh has none of them.
        r = self.ok("intention", "list", "--output", "json")
        self.assertEqual([i for i in json.loads(r.stdout) if i["DestinationName"] == "billing"], [])

    def test_create_replace_delete(self):
        self.new_mesh("crd")
        r = self.ok("--mesh", "crd", "intention", "create", "-deny", "-meta", "team=db",
                    "-meta", "ticket=OPS-1", "-description", "no direct access", "web", "db")
        self.assertEqual(r.stdout, "Created: web => db (deny)\n")
        r = self.srv.get("/v1/connect/intentions/exact?source=web&destination=db&mesh=crd")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["Meta"], {"team": "db", "ticket": "OPS-1"})
        self.assertEqual(r.json()["Description"], "no direct access")
        # Again: refused (Consul), unless -replace.
        r = self.ctl("--mesh", "crd", "intention", "create", "web", "db")
        self.assertEqual(r.returncode, 1)
        self.assertIn("(HTTP", r.stderr)
        self.assertIn("weftctl: intention web => db (allow) was not created", r.stderr)
        r = self.ok("--mesh", "crd", "intention", "create", "-replace", "-allow", "web", "db")
        self.assertEqual(r.stdout, "Replaced: web => db (allow)\n")
        ix = self.srv.get("/v1/connect/intentions/exact?source=web&destination=db&mesh=crd").json()
        self.assertEqual(ix["Action"], "allow")
        # The old intention's metadata is not kept (consul intention create -replace).
        self.assertFalse(ix.get("Meta"))
        # -replace of an intention that does not exist creates it.
        r = self.ok("--mesh", "crd", "intention", "create", "-replace", "api", "db")
        self.assertEqual(r.stdout, "Created: api => db (allow)\n")
        r = self.ok("--mesh", "crd", "intention", "delete", "web", "db")
        self.assertEqual(r.stdout, "Intention deleted.\n")
        r = self.ctl("--mesh", "crd", "intention", "get", "web", "db")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("weftctl: "), r.stderr)
        # Delete by ID.
        ixid = self.srv.get(
            "/v1/connect/intentions/exact?source=api&destination=db&mesh=crd").json()["ID"]
        self.ok("--mesh", "crd", "intention", "delete", ixid)
        self.assertEqual(self.srv.get(
            "/v1/connect/intentions/exact?source=api&destination=db&mesh=crd").status, 404)
        r = self.ctl("--mesh", "crd", "intention", "delete", ixid)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, 'weftctl: no intention with ID "%s"\n' % ixid)

    def test_bad_intentions_are_refused_locally(self):
        path = self.write("bad.yaml", "- SourceName: web\n"
                                      "  DestinationName: api\n"
                                      "  Action: allow\n"
                                      "- SourceName: api\n"
                                      "  DestinationName: db\n"
                                      "  Action: permit\n")
        good = os.path.join(EXAMPLES, "intentions", "web-to-billing.json")
        r = self.ctl("intention", "create", "-file", good, path)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, 'weftctl: %s:6:3: [1].Action: "permit": must be "allow" or '
                                   '"deny"\n' % path)
        # Nothing was sent, not even the good file's intention.
        self.assertEqual(self.srv.get(
            "/v1/connect/intentions/exact?source=web&destination=billing").status, 404)
        r = self.ctl("intention", "create", "web*", "db")
        self.assertEqual(r.returncode, 1)
        self.assertIn("SourceName", r.stderr)
        for args in (["intention", "create", "web"], ["intention", "create", "-allow", "-deny",
                                                      "a", "b"],
                     ["intention", "create", "-meta", "novalue", "a", "b"],
                     ["intention", "create", "-file"], ["intention", "check", "web"],
                     ["intention", "create", "-file", "-deny", good],
                     ["intention", "match", "-source", "-destination", "x"],
                     ["intention", "get", "a", "b", "c"], ["intention", "explain", "web"],
                     ["intention", "check", "-header", "novalue", "a", "b"]):
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn("Usage: weftctl intention", r.stderr)

    def test_stdin_yaml(self):
        self.new_mesh("stdin")
        r = self.ok("--mesh", "stdin", "intention", "create", "-file", "-",
                    input="SourceName: ops\nDestinationName: '*'\nAction: allow\n")
        self.assertEqual(r.stdout, "Created: ops => * (allow)\n")
        r = self.ok("--mesh", "stdin", "intention", "create", "-file", "-", "--output", "json",
                    input="- {SourceName: a, DestinationName: b, Action: deny}\n")
        out = json.loads(r.stdout)
        self.assertEqual(out[0]["Result"], "created")
        self.assertEqual(out[0]["Intention"]["SourceName"], "a")
        self.assertTrue(out[0]["ID"])

    def test_config_and_intentions_are_one_source(self):
        self.new_mesh("one")
        self.load_examples("one")
        # service-intentions written as a config entry shows as intentions.
        r = self.ok("--mesh", "one", "intention", "match", "api")
        # Equal precedences in source name order (Consul's sorter).
        self.assertEqual(r.stdout, "billing => api (allow)\n"
                                   "web => api (1 permission)\n"
                                   "* => api (deny)\n")
        # And an intention written with weftctl shows in the config entry.
        self.ok("--mesh", "one", "intention", "create", "-deny", "ops", "api")
        entry = json.loads(self.ok("--mesh", "one", "config", "read", "-kind",
                                   "service-intentions", "-name", "api").stdout)
        self.assertIn("ops", [s["Name"] for s in entry["Sources"]])

    def test_l7_check_and_explain(self):
        self.new_mesh("l7", action="deny")
        self.load_examples("l7")
        # A connection: web's intention is L7, so a connection is denied.
        r = self.ctl("--mesh", "l7", "intention", "check", "web", "api")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout.splitlines()[0], "Denied")
        # An HTTP request that its permission allows.
        r = self.ctl("--mesh", "l7", "intention", "check", "-method", "GET", "-path", "/v1/items",
                     "web", "api")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[:2],
                         ["Allowed", "Decided by: intention web => api, precedence 9, "
                                     "Permissions[0]"])
        # explain: the local engine, with the server's answer beside it.
        r = self.ok("--mesh", "l7", "intention", "explain", "--method", "POST", "--path",
                    "/v1/items", "--header", "x-api-version=2", "web", "api")
        self.assertIn("Call:       web => api, HTTP POST /v1/items, header x-api-version: 2\n",
                      r.stdout)
        self.assertIn("Decision:   DENIED\n", r.stdout)
        self.assertIn("Decided by: intention web => api (1 permission), precedence 9", r.stdout)
        self.assertIn("none matches the request: the default action applies", r.stdout)
        self.assertIn("Default:    deny\n", r.stdout)
        self.assertIn("  precedence 9  web => api (1 permission)  <- decides\n", r.stdout)
        self.assertIn("  precedence 8  * => api (deny)  (not reached)\n", r.stdout)
        self.assertRegex(r.stdout, r"Server: +/v1/connect/intentions/check answers denied "
                                   r"by intention web => api: agrees\n")
        r = self.ok("--mesh", "l7", "intention", "explain", "-method", "GET", "-path", "/v1/x",
                    "web", "api", "--output", "json")
        out = json.loads(r.stdout)
        self.assertTrue(out["Decision"]["Allowed"])
        self.assertEqual(out["Decision"]["Permission"], 0)
        self.assertTrue(out["Agree"])
        self.assertTrue(out["Server"]["Allowed"])
        # No intention: the mesh's default, in either mesh setting.
        r = self.ok("--mesh", "l7", "intention", "explain", "api", "web")
        self.assertIn("Decided by: the default action (deny)\n", r.stdout)
        self.assertIn("agrees\n", r.stdout)
        self.ok("mesh", "create", "l7", "-default-action", "allow")
        r = self.ok("--mesh", "l7", "intention", "explain", "api", "web")
        self.assertIn("Decision:   ALLOWED\n", r.stdout)
        self.assertIn("agrees\n", r.stdout)
        r = self.ctl("--mesh", "l7", "intention", "check", "api", "web")
        self.assertEqual(r.returncode, 0)

    def test_analyze(self):
        self.new_mesh("an")
        r = self.ok("--mesh", "an", "intention", "analyze")
        self.assertEqual(r.stdout, "No findings: every intention can decide some call.\n")
        # default/* => db covers every call that */* => db matches (the only
        # namespace is default): the second can never decide, and says so.
        self.ok("--mesh", "an", "intention", "create", "-deny", "*", "db")
        r = self.ok("--mesh", "an", "intention", "create", "*/*", "db")
        self.assertIn("WARNING: ", r.stderr)
        # A permission that an earlier one always decides first.
        path = self.write("l7.yaml", "Kind: service-defaults\nName: api\nProtocol: http\n")
        self.ok("--mesh", "an", "config", "write", path)
        path = self.write("ixn.yaml", "SourceName: web\nDestinationName: api\nPermissions:\n"
                                      "  - Action: allow\n    HTTP: {PathPrefix: /v1}\n"
                                      "  - Action: deny\n    HTTP: {PathPrefix: /v1/admin}\n")
        self.ok("--mesh", "an", "intention", "create", "-file", path)
        r = self.ok("--mesh", "an", "intention", "analyze")
        self.assertRegex(r.stdout, r"(?m)^shadowed: \*/\* => db")
        self.assertRegex(r.stdout, r"(?m)^permission-preempted: web => api Permissions\[1\]")
        r = self.ok("--mesh", "an", "intention", "analyze", "--output", "json")
        body = json.loads(r.stdout)
        findings = body if isinstance(body, list) else body["Findings"]
        self.assertEqual(sorted(f["Kind"] for f in findings),
                         ["permission-preempted", "shadowed"])


class MeshTest(PolicyTest):
    def test_mesh_commands(self):
        r = self.ok("mesh", "list")
        self.assertEqual(r.stdout.splitlines()[0].split(),
                         ["Name", "mTLS", "DefaultAction", "TrustDomain"])
        self.assertIn("default", [ln.split()[0] for ln in r.stdout.splitlines()[1:]])
        r = self.ok("mesh", "create", "shop", "-mtls", "permissive", "-trust-domain",
                    "shop.example", "-default-action", "allow", "-meta", "owner=retail")
        self.assertEqual(r.stdout, "Mesh written: shop\n")
        r = self.ok("mesh", "get", "shop")
        self.assertEqual(r.stdout.splitlines()[:5],
                         ["%-18s%s" % kv for kv in (("Name:", "shop"), ("mTLS Mode:", "permissive"),
                                                    ("Trust Domain:", "shop.example"),
                                                    ("Default Action:", "allow"),
                                                    ("Meta[owner]:", "retail"))])
        # Settings not given keep their value.
        self.ok("mesh", "create", "shop", "-default-action", "deny")
        m = json.loads(self.ok("mesh", "get", "shop", "--output", "json").stdout)
        self.assertEqual((m["MTLSMode"], m["TrustDomain"], m["DefaultIntentionAction"]),
                         ("permissive", "shop.example", "deny"))
        names = [x["Name"] for x in json.loads(self.ok("mesh", "list", "--output",
                                                       "json").stdout)]
        self.assertIn("shop", names)
        self.assertEqual(self.srv.get("/v1/meshes/shop").json()["MTLSMode"], "permissive")
        r = self.ok("mesh", "delete", "shop")
        self.assertEqual(r.stdout, "Mesh deleted: shop\n")
        r = self.ctl("mesh", "get", "shop")
        self.assertEqual(r.returncode, 1)
        self.assertIn("(HTTP 404)", r.stderr)
        # A mesh that does not exist holds no policy.
        r = self.ctl("--mesh", "shop", "intention", "create", "a", "b")
        self.assertEqual(r.returncode, 1)
        for args in (["mesh", "create", "x", "-mtls", "sometimes"],
                     ["mesh", "create", "x", "-default-action", "maybe"],
                     ["mesh", "get"], ["mesh", "delete", "a", "b"]):
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("Usage: weftctl mesh", r.stderr)


if __name__ == "__main__":
    harness.main()
