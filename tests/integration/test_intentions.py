#!/usr/bin/env python3
"""Intentions, meshes and zones against a real weft-server.

Intentions are stored as service-intentions config entries; the tests read
the entries in the server's SQLite file (data_dir/weft.db) to show the one
source of truth, since /v1/config is not served by this branch.
"""
import json
import os
import sqlite3
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

Q = urllib.parse.quote


def exact(src, dst, mesh=None):
    p = "/v1/connect/intentions/exact?source=%s&destination=%s" % (Q(src), Q(dst))
    return p + ("&mesh=" + mesh if mesh else "")


class IntentionsTest(harness.ServerTest):

    def entry(self, dst, mesh="default"):
        """The stored service-intentions entry for dst (or None)."""
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.srv.data_dir, "weft.db"),
                              uri=True, timeout=5)
        try:
            row = con.execute("SELECT body FROM config_entries WHERE mesh = ? AND kind = ?"
                              " AND name = ?", (mesh, "service-intentions", dst)).fetchone()
        finally:
            con.close()
        return json.loads(row[0]) if row else None

    def ok(self, r, status=200):
        self.assertEqual(r.status, status, r)
        return r.json()

    def check(self, src, dst, extra=""):
        return self.ok(self.srv.get("/v1/connect/intentions/check?source=%s&destination=%s%s"
                                    % (Q(src), Q(dst), extra)))

    def token(self, kind, **more):
        body = dict(Kind=kind, **more)
        return self.ok(self.srv.put("/v1/acl/token", body))["SecretID"]

    # ---- one source of truth ----

    def test_post_then_exact_list_and_entry(self):
        r = self.ok(self.srv.request("POST", "/v1/connect/intentions", {
            "SourceName": "p-web", "DestinationName": "p-db", "Action": "allow",
            "Description": "web reads db", "Meta": {"team": "a"}}))
        ixid = r["ID"]
        self.assertEqual(len(ixid), 36)
        self.assertNotIn("Warnings", r)
        self.assertNotIn("Findings", r)
        got = self.ok(self.srv.get(exact("p-web", "p-db")))
        self.assertEqual(got["ID"], ixid)
        self.assertEqual(got["Action"], "allow")
        self.assertEqual(got["Precedence"], 9)
        self.assertEqual(got["Meta"], {"team": "a"})
        lst = self.ok(self.srv.get("/v1/connect/intentions"))
        self.assertEqual([i["ID"] for i in lst if i["DestinationName"] == "p-db"], [ixid])
        by_id = self.ok(self.srv.get("/v1/connect/intentions/" + ixid))
        self.assertEqual(by_id["SourceName"], "p-web")
        e = self.entry("p-db")
        self.assertEqual(e["Kind"], "service-intentions")
        self.assertEqual([(s["Name"], s["Action"], s.get("LegacyID")) for s in e["Sources"]],
                         [("p-web", "allow", ixid)])
        # A second create of the same pair is refused, naming the existing ID.
        r = self.srv.request("POST", "/v1/connect/intentions", {
            "SourceName": "p-web", "DestinationName": "p-db", "Action": "deny"})
        self.assertEqual(r.status, 409, r)
        self.assertIn(ixid, r.json()["error"])
        # Update by ID, then delete by ID.
        self.ok(self.srv.put("/v1/connect/intentions/" + ixid, {
            "SourceName": "p-web", "DestinationName": "p-db", "Action": "deny"}))
        self.assertEqual(self.ok(self.srv.get(exact("p-web", "p-db")))["Action"], "deny")
        self.assertEqual(self.entry("p-db")["Sources"][0]["Action"], "deny")
        self.ok(self.srv.delete("/v1/connect/intentions/" + ixid))
        self.assertEqual(self.srv.get("/v1/connect/intentions/" + ixid).status, 404)
        self.assertEqual(self.srv.get(exact("p-web", "p-db")).status, 404)
        self.assertIsNone(self.entry("p-db"))

    def test_exact_put_shows_in_entry_and_delete(self):
        self.assertIs(self.ok(self.srv.put(exact("e-api", "e-db"), {"Action": "allow"})), True)
        self.assertIs(self.ok(self.srv.put(exact("*", "e-db"), {"Action": "deny"})), True)
        e = self.entry("e-db")
        self.assertEqual(sorted((s["Name"], s["Action"]) for s in e["Sources"]),
                         [("*", "deny"), ("e-api", "allow")])
        self.assertNotIn("LegacyID", e["Sources"][0])
        got = self.ok(self.srv.get(exact("e-api", "e-db")))
        self.assertEqual(got["ID"], "")
        # Upsert replaces by pair.
        self.ok(self.srv.put(exact("e-api", "e-db"), {"Action": "deny"}))
        self.assertEqual(self.ok(self.srv.get(exact("e-api", "e-db")))["Action"], "deny")
        self.assertEqual(len(self.entry("e-db")["Sources"]), 2)
        self.ok(self.srv.delete(exact("e-api", "e-db")))
        self.assertEqual(self.srv.delete(exact("e-api", "e-db")).status, 404)
        self.assertEqual([s["Name"] for s in self.entry("e-db")["Sources"]], ["*"])
        self.ok(self.srv.delete(exact("*", "e-db")))
        self.assertIsNone(self.entry("e-db"))

    # ---- decisions ----

    def test_check_and_match_with_wildcards(self):
        self.ok(self.srv.put(exact("c-web", "c-db"), {"Action": "allow"}))
        self.ok(self.srv.put(exact("*", "c-db"), {"Action": "deny"}))
        self.ok(self.srv.put(exact("c-web", "*"), {"Action": "allow"}))
        d = self.check("c-web", "c-db")
        self.assertEqual((d["Allowed"], d["DecidedBy"]), (True, "intention"))
        self.assertEqual(d["Intention"]["SourceName"], "c-web")
        self.assertTrue(d["Reason"])
        d = self.check("c-other", "c-db")
        self.assertFalse(d["Allowed"])
        self.assertEqual(d["Intention"]["SourceName"], "*")
        # c-web -> anything: the wildcard destination (precedence 6).
        d = self.check("c-web", "c-cache")
        self.assertTrue(d["Allowed"])
        self.assertEqual(d["Intention"]["DestinationName"], "*")
        # Nothing matches: the mesh default (deny).
        d = self.check("c-x", "c-y")
        self.assertEqual((d["Allowed"], d["DecidedBy"]), (False, "default"))
        self.assertNotIn("Intention", d)
        m = self.ok(self.srv.get("/v1/connect/intentions/match?by=destination&name=c-db"))
        self.assertEqual([(i["SourceName"], i["DestinationName"]) for i in m["c-db"]
                          if "c-" in i["SourceName"] + i["DestinationName"]],
                         [("c-web", "c-db"), ("*", "c-db"), ("c-web", "*")])
        m = self.ok(self.srv.get("/v1/connect/intentions/match?by=source&name=c-web"))
        pairs = [(i["SourceName"], i["DestinationName"]) for i in m["c-web"]
                 if "c-" in i["SourceName"] + i["DestinationName"]]
        self.assertEqual(pairs[:2], [("c-web", "c-db"), ("*", "c-db")])
        self.assertIn(("c-web", "*"), pairs)
        r = self.srv.get("/v1/connect/intentions/match?by=sideways&name=c-db")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["field"], "by")
        r = self.srv.get("/v1/connect/intentions/check?source=c-web")
        self.assertEqual((r.status, r.json()["field"]), (400, "destination"))

    def test_l7_needs_http_protocol(self):
        # As Consul: L7 permissions only for a service whose protocol is
        # http-like, whichever API writes them.
        body = {"Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/"}}]}
        r = self.srv.put(exact("p-web", "p-api"), body)
        self.assertEqual(r.status, 400, r)
        self.assertIn("protocol", r.json()["error"])
        self.ok(self.srv.put("/v1/config", {"Kind": "service-defaults", "Name": "p-api",
                                            "Protocol": "http"}))
        self.ok(self.srv.put(exact("p-web", "p-api"), body))

    def test_l7_check(self):
        self.ok(self.srv.put("/v1/config", {"Kind": "service-defaults", "Name": "l-api",
                                            "Protocol": "http"}))
        self.ok(self.srv.put(exact("l-web", "l-api"), {"Permissions": [
            {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
            {"Action": "allow", "HTTP": {"PathPrefix": "/v1", "Methods": ["GET"]}},
            {"Action": "allow", "HTTP": {"Header": [{"Name": "x-debug", "Exact": "1"}]}}]}))
        d = self.check("l-web", "l-api", "&method=GET&path=/v1/items")
        self.assertEqual((d["Allowed"], d["ReasonKind"], d["Permission"]), (True, "permission", 1))
        d = self.check("l-web", "l-api", "&method=POST&path=/v1/items")
        self.assertEqual((d["Allowed"], d["ReasonKind"]), (False, "no-permission"))
        d = self.check("l-web", "l-api", "&method=GET&path=/admin/x")
        self.assertEqual((d["Allowed"], d["Permission"]), (False, 0))
        d = self.check("l-web", "l-api", "&method=POST&path=/x&header=" + Q("X-Debug:1"))
        self.assertEqual((d["Allowed"], d["Permission"]), (True, 2))
        # Without a request, an L7 intention denies (Consul's check).
        d = self.check("l-web", "l-api")
        self.assertEqual((d["Allowed"], d["ReasonKind"]), (False, "l7-not-http"))
        r = self.srv.get("/v1/connect/intentions/check?source=l-web&destination=l-api&header=nocolon")
        self.assertEqual((r.status, r.json()["field"]), (400, "header"))

    def test_analysis_and_warnings(self):
        self.ok(self.srv.put(exact("*", "a-db"), {"Action": "deny"}))
        # */* -> a-db can never decide: default/* -> a-db covers every call.
        r = self.srv.put(exact("*/*", "a-db"), {"Action": "allow"})
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json(), True)
        warn = json.loads(r.headers["X-Weft-Warnings"])
        self.assertEqual(len(warn), 1)
        self.assertIn("never decides a call", warn[0])
        found = json.loads(r.headers["X-Weft-Findings"])
        self.assertEqual(found[0]["Kind"], "shadowed")
        self.assertEqual(found[0]["SourceNS"], "*")
        self.assertEqual(found[0]["Message"], warn[0])
        self.assertIn("default/* -> default/a-db", found[0]["ByRules"])
        a = self.ok(self.srv.get("/v1/connect/intentions/analysis"))
        self.assertEqual(a["Namespaces"], ["default"])
        shadowed = [f for f in a["Findings"] if f["DestinationName"] == "a-db"]
        self.assertEqual([(f["Kind"], f["SourceNS"]) for f in shadowed], [("shadowed", "*")])
        # POST answers {"ID", "Warnings"}: a permission preempted by an earlier one.
        self.ok(self.srv.put("/v1/config", {"Kind": "service-defaults", "Name": "a-db",
                                            "Protocol": "http"}))
        r = self.ok(self.srv.request("POST", "/v1/connect/intentions", {
            "SourceName": "a-web", "DestinationName": "a-db", "Permissions": [
                {"Action": "allow", "HTTP": {"PathPrefix": "/"}},
                {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}}]}))
        self.assertEqual(len(r["ID"]), 36)
        self.assertEqual([f["Kind"] for f in r["Findings"]], ["permission-preempted"])
        self.assertEqual(r["Warnings"], [r["Findings"][0]["Message"]])
        # A rule without findings gets no header.
        r = self.srv.put(exact("a-api", "a-db"), {"Action": "allow"})
        self.assertIsNone(r.headers.get("X-Weft-Warnings"))
        self.assertIsNone(r.headers.get("X-Weft-Findings"))
        self.ok(self.srv.delete(exact("*/*", "a-db")))
        self.ok(self.srv.delete(exact("*", "a-db")))
        a = self.ok(self.srv.get("/v1/connect/intentions/analysis"))
        self.assertEqual([f for f in a["Findings"] if f["Kind"] == "shadowed"], [])

    def test_bad_bodies_name_the_field(self):
        cases = [
            ({"SourceName": "b-web", "DestinationName": "b-db", "Action": "maybe"}, "Action"),
            ({"SourceName": "b-web", "DestinationName": "b-db"}, "Action"),
            ({"SourceName": "b*", "DestinationName": "b-db", "Action": "allow"}, "SourceName"),
            ({"SourceName": "b-web", "DestinationName": "b-db", "Permissions": [
                {"Action": "allow", "HTTP": {"PathRegex": "/user/(a)\\1"}}]},
             "Permissions[0].HTTP.PathRegex"),
            ({"SourceName": "b-web", "DestinationName": "b-db", "DestinationNS": "other",
              "Action": "allow"}, "DestinationNS"),
            ({"ID": "x", "SourceName": "b-web", "DestinationName": "b-db", "Action": "allow"},
             "ID"),
        ]
        for body, field in cases:
            r = self.srv.request("POST", "/v1/connect/intentions", body)
            self.assertEqual(r.status, 400, (body, r))
            self.assertEqual(r.json().get("field"), field, (body, r))
        r = self.srv.put(exact("b-web", "b-db"), {"SourceName": "other", "Action": "allow"})
        self.assertEqual((r.status, r.json()["field"]), (400, "SourceName"))
        r = self.srv.request("POST", "/v1/connect/intentions", b"{nope")
        self.assertEqual(r.status, 400)
        self.assertIsNone(self.entry("b-db"))

    # ---- blocking ----

    def blocking(self, path, index, out):
        t0 = time.time()
        r = self.srv.get("%s&index=%d&wait=4s" % (path, index), timeout=10)
        out.append((time.time() - t0, r))

    def wakes_only_for_its_side(self, by, name, unrelated, related):
        path = "/v1/connect/intentions/match?by=%s&name=%s" % (by, name)
        r0 = self.srv.get(path)
        self.assertEqual(r0.status, 200)
        out = []
        t = threading.Thread(target=self.blocking, args=(path, r0.index, out))
        t.start()
        time.sleep(0.3)
        self.ok(self.srv.put(exact(*unrelated), {"Action": "allow"}))
        time.sleep(0.7)
        self.assertEqual(out, [], "woke on a change to another %s" % by)
        self.ok(self.srv.put(exact(*related), {"Action": "deny"}))
        t.join(10)
        self.assertEqual(len(out), 1)
        elapsed, r = out[0]
        self.assertGreater(elapsed, 0.9)
        self.assertLess(elapsed, 2.5, "did not wake in time")
        self.assertGreater(r.index, r0.index)
        return r.json()

    def test_blocking_match_by_destination(self):
        got = self.wakes_only_for_its_side("destination", "k-web", ("k-x", "k-other"),
                                           ("k-api", "k-web"))
        self.assertEqual([i["SourceName"] for i in got["k-web"]], ["k-api"])
        # A wildcard destination concerns every destination.
        got = self.wakes_only_for_its_side("destination", "k-web", ("k-y", "k-other"),
                                           ("k-z", "*"))
        self.assertIn("k-z", [i["SourceName"] for i in got["k-web"]])
        self.ok(self.srv.delete(exact("k-z", "*")))

    def test_blocking_match_by_source(self):
        got = self.wakes_only_for_its_side("source", "s-web", ("s-other", "s-db"),
                                           ("s-web", "s-db"))
        self.assertEqual([i["DestinationName"] for i in got["s-web"]
                          if i["DestinationName"].startswith("s-")], ["s-db"])

    # ---- permissions ----

    def test_operator_writes_service_token_cannot(self):
        op = self.token("operator")
        svc = self.token("service", ServiceName="t-db")
        ro = self.token("read-only")
        r = self.srv.put(exact("t-web", "t-db"), {"Action": "allow"}, token=op)
        self.assertEqual(r.status, 200, r)
        for tok in (svc, ro):
            r = self.srv.put(exact("t-web", "t-db"), {"Action": "deny"}, token=tok)
            self.assertEqual(r.status, 403, r)
            self.assertIn("policy:write", r.json()["error"])
            r = self.srv.request("POST", "/v1/connect/intentions", {
                "SourceName": "t-api", "DestinationName": "t-db", "Action": "allow"}, token=tok)
            self.assertEqual(r.status, 403, r)
            self.assertIn("policy:write", r.json()["error"])
            r = self.srv.delete(exact("t-web", "t-db"), token=tok)
            self.assertEqual(r.status, 403, r)
        self.assertEqual(self.ok(self.srv.get(exact("t-web", "t-db"), token=ro))["Action"], "allow")
        r = self.srv.get("/v1/connect/intentions/check?source=t-web&destination=t-db", token=None)
        self.assertEqual(r.status, 403)
        self.assertIn("policy:read", r.json()["error"])
        r = self.srv.put("/v1/meshes/t-mesh", {}, token=svc)
        self.assertEqual(r.status, 403)
        self.assertIn("policy:write", r.json()["error"])

    # ---- meshes and zones ----

    def test_meshes(self):
        lst = self.ok(self.srv.get("/v1/meshes"))
        default = [m for m in lst if m["Name"] == "default"][0]
        self.assertEqual(default["MTLSMode"], "strict")
        self.assertEqual(default["DefaultIntentionAction"], "deny")
        self.assertRegex(default["TrustDomain"], r"^[0-9a-f-]{36}\.weft$")
        m = self.ok(self.srv.put("/v1/meshes/m-pay", {"DefaultIntentionAction": "allow",
                                                      "Meta": {"owner": "pay"}}))
        self.assertEqual(m["TrustDomain"], "m-pay." + default["TrustDomain"])
        self.assertEqual((m["MTLSMode"], m["DefaultIntentionAction"]), ("strict", "allow"))
        self.assertEqual(m["CreateIndex"], m["ModifyIndex"])
        # Update keeps what is not given; ?cas as Consul.
        m2 = self.ok(self.srv.put("/v1/meshes/m-pay?cas=%d" % m["ModifyIndex"],
                                  {"MTLSMode": "permissive"}))
        self.assertEqual((m2["MTLSMode"], m2["DefaultIntentionAction"]), ("permissive", "allow"))
        self.assertEqual(m2["Meta"], {"owner": "pay"})
        self.assertIs(self.ok(self.srv.put("/v1/meshes/m-pay?cas=%d" % m["ModifyIndex"],
                                           {"MTLSMode": "strict"})), False)
        self.assertEqual(self.ok(self.srv.get("/v1/meshes/m-pay"))["MTLSMode"], "permissive")
        for body, field in [({"MTLSMode": "loose"}, "MTLSMode"),
                            ({"TrustDomain": "Not A Domain"}, "TrustDomain"),
                            ({"DefaultIntentionAction": "maybe"}, "DefaultIntentionAction"),
                            ({"Name": "other"}, "Name"),
                            ({"Meta": {"k": 1}}, "Meta.k")]:
            r = self.srv.put("/v1/meshes/m-pay", body)
            self.assertEqual(r.status, 400, (body, r))
            self.assertEqual(r.json()["field"], field, (body, r))
        r = self.srv.put("/v1/meshes/Bad_Name", {})
        self.assertEqual((r.status, r.json()["field"]), (400, "Name"))
        self.assertEqual(self.srv.get("/v1/meshes/m-nope").status, 404)

        # Intentions are per mesh; the mesh's default action decides.
        self.ok(self.srv.put(exact("m-web", "m-db", mesh="m-pay"), {"Action": "deny"}))
        self.assertEqual(self.srv.get(exact("m-web", "m-db")).status, 404)
        d = self.check("m-web", "m-db", "&mesh=m-pay")
        self.assertEqual((d["Allowed"], d["DecidedBy"]), (False, "intention"))
        d = self.check("m-x", "m-y", "&mesh=m-pay")
        self.assertEqual((d["Allowed"], d["DecidedBy"]), (True, "default"))
        self.ok(self.srv.put("/v1/meshes/m-pay", {"DefaultIntentionAction": "deny"}))
        self.assertFalse(self.check("m-x", "m-y", "&mesh=m-pay")["Allowed"])
        r = self.srv.get("/v1/connect/intentions/check?source=a&destination=b&mesh=m-none")
        self.assertEqual((r.status, r.json()["field"]), (400, "mesh"))

        # Registration into a mesh that does not exist is refused.
        reg = {"Node": "m-n1", "Address": "10.0.0.9",
               "Service": {"Service": "m-svc", "Port": 80, "Mesh": "m-none"}}
        r = self.srv.put("/v1/catalog/register", reg)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["error"], 'Service.Mesh: no mesh "m-none"')
        reg["Service"]["Mesh"] = "m-pay"
        self.ok(self.srv.put("/v1/catalog/register", reg))

        # Deleting: default never, a mesh in use names what is in it.
        r = self.srv.delete("/v1/meshes/default")
        self.assertEqual(r.status, 400)
        self.assertIn("default mesh cannot be deleted", r.json()["error"])
        r = self.srv.delete("/v1/meshes/m-pay")
        self.assertEqual(r.status, 409, r)
        self.assertIn("m-svc", r.json()["error"])
        self.assertIn("service-intentions/m-db", r.json()["error"])
        self.ok(self.srv.put("/v1/catalog/deregister", {"Node": "m-n1"}))
        self.ok(self.srv.delete(exact("m-web", "m-db", mesh="m-pay")))
        self.ok(self.srv.delete("/v1/meshes/m-pay"))
        self.assertEqual(self.srv.get("/v1/meshes/m-pay").status, 404)
        self.assertEqual(self.srv.delete("/v1/meshes/m-pay").status, 404)

    def test_mesh_get_blocks(self):
        r0 = self.srv.get("/v1/meshes")
        out = []
        t = threading.Thread(target=lambda: out.append(
            self.srv.get("/v1/meshes?index=%d&wait=4s" % r0.index, timeout=10)))
        t.start()
        time.sleep(0.3)
        self.ok(self.srv.put("/v1/meshes/w-mesh", {}))
        t.join(5)
        self.assertEqual(len(out), 1)
        self.assertIn("w-mesh", [m["Name"] for m in out[0].json()])
        self.ok(self.srv.delete("/v1/meshes/w-mesh"))

    def test_zones(self):
        z = self.ok(self.srv.get("/v1/zones"))
        self.assertEqual(len(z), 1)
        self.assertEqual((z[0]["Name"], z[0]["Local"], z[0]["Status"], z[0]["Mode"]),
                         ("dc1", True, "online", "standalone"))
        self.assertGreater(self.srv.get("/v1/zones").index, 0)


class DevDefaultActionTest(harness.ServerTest):
    """As Consul's dev mode: no intention yet, calls allowed; a chosen action holds."""
    dev = True

    def test_dev_allows_until_a_choice(self):
        r = self.srv.get("/v1/connect/intentions/check?source=x&destination=y").json()
        self.assertEqual((r["Allowed"], r["DecidedBy"]), (True, "default"))
        m = self.srv.get("/v1/meshes/default").json()
        self.assertEqual((m["DefaultIntentionAction"], m["DefaultIntentionActionSet"]),
                         ("allow", False))
        self.assertEqual(self.srv.put("/v1/meshes/default",
                                      {"DefaultIntentionAction": "deny"}).status, 200)
        r = self.srv.get("/v1/connect/intentions/check?source=x&destination=y").json()
        self.assertEqual(r["Allowed"], False)
        m = self.srv.get("/v1/meshes/default").json()
        self.assertEqual((m["DefaultIntentionAction"], m["DefaultIntentionActionSet"]),
                         ("deny", True))
        # Another PUT without the field keeps the choice.
        self.assertEqual(self.srv.put("/v1/meshes/default", {"Meta": {"a": "b"}}).status, 200)
        self.assertFalse(self.srv.get(
            "/v1/connect/intentions/check?source=x&destination=y").json()["Allowed"])


class TokenDefaultActionTest(harness.ServerTest):
    def test_default_denies_outside_dev(self):
        r = self.srv.get("/v1/connect/intentions/check?source=x&destination=y").json()
        self.assertEqual((r["Allowed"], r["DecidedBy"]), (False, "default"))
        self.assertFalse(self.srv.get("/v1/meshes/default").json()["DefaultIntentionActionSet"])


if __name__ == "__main__":
    harness.main()
