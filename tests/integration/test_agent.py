"""The /v1/agent endpoints at the server's address, TTL expiry and metrics."""
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NODE = "server-1"


def q(s):
    return urllib.parse.quote(s, safe="")


class AgentTest(harness.ServerTest):
    dev = True

    def put_ok(self, path, body=None):
        r = self.srv.put(path, body)
        self.assertEqual(r.status, 200, r)
        return r

    def node_check(self, body):
        """Registers a node-level check, removed when the test ends (a node
        check counts in the health of every service of the node)."""
        self.put_ok("/v1/agent/check/register", body)
        cid = body.get("CheckID") or body.get("ID") or body["Name"]
        self.addCleanup(self.srv.put, "/v1/agent/check/deregister/" + q(cid))

    def agent_checks(self):
        r = self.srv.get("/v1/agent/checks")
        self.assertEqual(r.status, 200, r)
        return r.json()

    def health(self, service, passing=False):
        r = self.srv.get("/v1/health/service/%s%s" % (service, "?passing" if passing else ""))
        self.assertEqual(r.status, 200, r)
        return r.json()

    def wait_status(self, check_id, status, timeout=5.0):
        """Polls until the check has the status; returns the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            c = self.agent_checks().get(check_id)
            if c and c["Status"] == status:
                return time.monotonic() - start
            time.sleep(0.05)
        self.fail("check %s did not become %s in %ss: %r" % (
            check_id, status, timeout, self.agent_checks().get(check_id)))

    # ---- views ----

    def test_self(self):
        r = self.srv.get("/v1/agent/self")
        self.assertEqual(r.status, 200, r)
        d = r.json()
        self.assertEqual(d["Config"]["Datacenter"], "dc1")
        self.assertEqual(d["Config"]["NodeName"], NODE)
        self.assertTrue(d["Config"]["Server"])
        self.assertRegex(d["Config"]["NodeID"], r"^[0-9a-f-]{36}$")
        self.assertTrue(d["Config"]["Version"])
        self.assertEqual(d["Member"]["Name"], NODE)
        self.assertEqual(d["Member"]["Status"], 1)
        self.assertEqual(d["Member"]["Tags"]["dc"], "dc1")
        self.assertEqual(d["Meta"], {"weft-role": "server"})

    def test_members(self):
        r = self.srv.get("/v1/agent/members")
        self.assertEqual(r.status, 200, r)
        members = r.json()
        self.assertEqual(len(members), 1)
        m = members[0]
        self.assertEqual(m["Name"], NODE)
        self.assertEqual(m["Addr"], "127.0.0.1")
        self.assertEqual(m["Port"], self.srv.port)
        self.assertEqual(m["Status"], 1)   # serf's "alive"
        self.assertEqual(m["Tags"]["role"], "consul")

    # ---- services ----

    def test_service_register_and_views(self):
        self.put_ok("/v1/agent/service/register", {
            "Name": "web", "ID": "web-1", "Tags": ["v1", "blue"], "Address": "127.0.0.2",
            "Port": 8080, "Meta": {"version": "1"}, "Weights": {"Passing": 3, "Warning": 1},
            "EnableTagOverride": True,
            "Check": {"TTL": "30s"},
            "Checks": [{"Name": "http", "HTTP": "http://127.0.0.2:8080/health",
                        "Interval": "10s", "Timeout": "1s", "Header": {"X-A": ["b"]}}],
        })
        svcs = self.srv.get("/v1/agent/services").json()
        s = svcs["web-1"]
        self.assertEqual(s["Service"], "web")
        self.assertEqual(s["Tags"], ["v1", "blue"])
        self.assertEqual(s["Address"], "127.0.0.2")
        self.assertEqual(s["Port"], 8080)
        self.assertEqual(s["Meta"], {"version": "1"})
        self.assertEqual(s["Weights"], {"Passing": 3, "Warning": 1})
        self.assertTrue(s["EnableTagOverride"])
        self.assertEqual(s["Datacenter"], "dc1")
        one = self.srv.get("/v1/agent/service/web-1")
        self.assertEqual(one.status, 200, one)
        self.assertEqual(one.json()["ID"], "web-1")
        self.assertEqual(self.srv.get("/v1/agent/service/nope").status, 404)
        # It is in the catalog, on the server's node.
        cat = self.srv.get("/v1/catalog/service/web").json()
        self.assertEqual([(e["Node"], e["ServiceID"]) for e in cat], [(NODE, "web-1")])
        # Consul's default check IDs and names; checks start critical.
        checks = self.agent_checks()
        ttl, http = checks["service:web-1:1"], checks["service:web-1:2"]
        self.assertEqual(ttl["Type"], "ttl")
        self.assertEqual(ttl["Status"], "critical")
        self.assertEqual(ttl["Name"], "Service 'web' check")
        self.assertEqual(ttl["ServiceID"], "web-1")
        self.assertEqual(ttl["ServiceName"], "web")
        self.assertEqual(http["Type"], "http")
        self.assertEqual(http["Name"], "http")
        self.assertEqual(http["Definition"]["HTTP"], "http://127.0.0.2:8080/health")
        self.assertEqual(http["Definition"]["Interval"], "10s")
        self.assertEqual(http["Definition"]["Timeout"], "1s")
        self.assertEqual(http["Definition"]["Header"], {"X-A": ["b"]})

    def test_filter(self):
        self.put_ok("/v1/agent/service/register",
                    {"Name": "flt", "ID": "flt-1", "Meta": {"env": "prod"},
                     "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": "10s"}})
        self.put_ok("/v1/agent/service/register", {"Name": "flt2", "ID": "flt-2"})
        r = self.srv.get("/v1/agent/services?filter=" + q('Meta.env == "prod"'))
        if r.status == 400 and "not supported yet" in r.body:
            self.skipTest("the ?filter= engine has not landed in this build")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(list(r.json()), ["flt-1"])
        r = self.srv.get("/v1/agent/checks?filter=" + q('ServiceID == "flt-1"'))
        self.assertEqual(list(r.json()), ["service:flt-1"])
        self.assertEqual(self.srv.get("/v1/agent/checks?filter=" + q("((")).status, 400)

    def test_single_check_id_and_lowercase_fields(self):
        # python-consul sends lowercase keys; one check gets "service:ID".
        self.put_ok("/v1/agent/service/register",
                    {"name": "lower", "id": "lower-1", "port": 81, "check": {"ttl": "10s"}})
        c = self.agent_checks()["service:lower-1"]
        self.assertEqual(c["Type"], "ttl")
        self.assertEqual(self.srv.get("/v1/agent/service/lower-1").json()["Port"], 81)

    def test_service_register_validation(self):
        cases = [
            ({"Port": 80}, "Name"),
            ({"Name": "bad name!"}, "Name"),
            ({"Name": "x", "Port": 70000}, "Port"),
            ({"Name": "x", "Tags": "a"}, "Tags"),
            ({"Name": "x", "Kind": "sidecar"}, "Kind"),
            ({"Name": "x", "Check": {"Notes": "no kind"}}, "Check.TTL"),
            ({"Name": "x", "Check": {"HTTP": "http://a/"}}, "Check.Interval"),
            ({"Name": "x", "Checks": [{"TTL": "10s"}, {"TTL": "soon"}]}, "Checks[1].TTL"),
            ({"Name": "x", "Check": {"TTL": "10s", "Status": "fine"}}, "Check.Status"),
        ]
        for body, field in cases:
            r = self.srv.put("/v1/agent/service/register", body)
            self.assertEqual(r.status, 400, (body, r))
            self.assertTrue(r.json()["error"].startswith(field + ":"), (body, r))
        r = self.srv.put("/v1/agent/service/register", "[1]")
        self.assertEqual(r.status, 400)
        self.assertNotIn("x", self.srv.get("/v1/agent/services").json())

    def test_replace_existing_checks(self):
        svc = {"Name": "rep", "ID": "rep-1", "Checks": [
            {"CheckID": "rep-a", "TTL": "30s"}, {"CheckID": "rep-b", "TTL": "30s"}]}
        self.put_ok("/v1/agent/service/register", svc)
        self.put_ok("/v1/agent/service/maintenance/rep-1?enable=true")
        svc["Checks"] = [{"CheckID": "rep-a", "TTL": "30s"}]
        self.put_ok("/v1/agent/service/register", svc)
        ids = {k for k, v in self.agent_checks().items() if v["ServiceID"] == "rep-1"}
        self.assertEqual(ids, {"rep-a", "rep-b", "_service_maintenance:rep-1"})
        self.put_ok("/v1/agent/service/register?replace-existing-checks", svc)
        ids = {k for k, v in self.agent_checks().items() if v["ServiceID"] == "rep-1"}
        # Maintenance mode is not part of the definition: it stays.
        self.assertEqual(ids, {"rep-a", "_service_maintenance:rep-1"})

    def test_reregister_keeps_check_status(self):
        svc = {"Name": "keep", "ID": "keep-1", "Check": {"CheckID": "keep-ttl", "TTL": "30s"}}
        self.put_ok("/v1/agent/service/register", svc)
        self.put_ok("/v1/agent/check/pass/keep-ttl?note=fine")
        self.put_ok("/v1/agent/service/register", svc)
        c = self.agent_checks()["keep-ttl"]
        self.assertEqual((c["Status"], c["Output"]), ("passing", "fine"))
        # An explicit Status wins.
        svc["Check"]["Status"] = "warning"
        self.put_ok("/v1/agent/service/register", svc)
        self.assertEqual(self.agent_checks()["keep-ttl"]["Status"], "warning")
        # The same for /v1/agent/check/register.
        self.node_check({"Name": "keep-node", "TTL": "30s"})
        self.put_ok("/v1/agent/check/pass/keep-node")
        self.put_ok("/v1/agent/check/register", {"Name": "keep-node", "TTL": "30s"})
        self.assertEqual(self.agent_checks()["keep-node"]["Status"], "passing")

    def test_service_deregister(self):
        self.put_ok("/v1/agent/service/register",
                    {"Name": "gone", "ID": "gone-1", "Check": {"TTL": "10s"}})
        self.put_ok("/v1/agent/service/deregister/gone-1")
        self.assertNotIn("gone-1", self.srv.get("/v1/agent/services").json())
        self.assertNotIn("service:gone-1", self.agent_checks())
        self.assertEqual(self.srv.get("/v1/catalog/service/gone").json(), [])
        self.assertEqual(self.health("gone"), [])
        r = self.srv.put("/v1/agent/service/deregister/gone-1")
        self.assertEqual(r.status, 404, r)
        self.assertIn("unknown service ID", r.json()["error"])

    # ---- checks ----

    def test_check_register_and_deregister(self):
        self.node_check({"Name": "Disk", "ID": "disk", "TTL": "30s", "Notes": "df -h"})
        c = self.agent_checks()["disk"]
        self.assertEqual((c["Name"], c["Status"], c["Notes"], c["Type"], c["ServiceID"]),
                         ("Disk", "critical", "df -h", "ttl", ""))
        # A node check is in every service's health on the node.
        self.put_ok("/v1/agent/service/register", {"Name": "nodechk", "ID": "nodechk-1"})
        ids = [c["CheckID"] for c in self.health("nodechk")[0]["Checks"]]
        self.assertIn("disk", ids)
        self.put_ok("/v1/agent/check/register",
                    {"Name": "up", "CheckID": "up", "TCP": "127.0.0.1:1", "Interval": "5s",
                     "Status": "passing", "ServiceID": "nodechk-1"})
        c = self.agent_checks()["up"]
        self.assertEqual((c["Status"], c["Type"], c["ServiceName"]), ("passing", "tcp", "nodechk"))
        self.assertEqual(c["Definition"]["TCP"], "127.0.0.1:1")
        self.put_ok("/v1/agent/check/deregister/disk")
        self.assertNotIn("disk", self.agent_checks())
        self.assertEqual(self.srv.put("/v1/agent/check/deregister/disk").status, 404)
        # Validation.
        r = self.srv.put("/v1/agent/check/register", {"TTL": "10s"})
        self.assertEqual(r.status, 400)
        self.assertTrue(r.json()["error"].startswith("Name:"), r)
        r = self.srv.put("/v1/agent/check/register",
                         {"Name": "orphan", "TTL": "10s", "ServiceID": "no-such"})
        self.assertEqual(r.status, 400)
        self.assertTrue(r.json()["error"].startswith("ServiceID:"), r)

    def test_pass_warn_fail_update(self):
        self.node_check({"Name": "pwf", "TTL": "60s"})
        for verb, status in (("pass", "passing"), ("warn", "warning"), ("fail", "critical")):
            self.put_ok("/v1/agent/check/%s/pwf?note=%s" % (verb, q("said " + verb)))
            c = self.agent_checks()["pwf"]
            self.assertEqual((c["Status"], c["Output"]), (status, "said " + verb))
        self.put_ok("/v1/agent/check/update/pwf", {"Status": "passing", "Output": "all good"})
        c = self.agent_checks()["pwf"]
        self.assertEqual((c["Status"], c["Output"]), ("passing", "all good"))
        # Output is kept to 4 KiB, as Consul does.
        self.put_ok("/v1/agent/check/update/pwf", {"Status": "warning", "Output": "é" * 5000})
        out = self.agent_checks()["pwf"]["Output"]
        self.assertLessEqual(len(out.encode()), 4096)
        self.assertGreater(len(out.encode()), 4000)
        r = self.srv.put("/v1/agent/check/update/pwf", {"Status": "fine"})
        self.assertEqual(r.status, 400)
        self.assertTrue(r.json()["error"].startswith("Status:"), r)
        r = self.srv.put("/v1/agent/check/update/pwf", {"Output": "x"})
        self.assertEqual(r.status, 400)
        self.assertEqual(self.srv.put("/v1/agent/check/pass/nope").status, 404)
        # Only TTL checks take updates.
        self.node_check({"Name": "web-http", "HTTP": "http://127.0.0.1:1/", "Interval": "10s"})
        r = self.srv.put("/v1/agent/check/pass/web-http")
        self.assertEqual(r.status, 400, r)
        self.assertIn("not a TTL check", r.json()["error"])

    def test_ttl_expires_on_time(self):
        self.put_ok("/v1/agent/service/register",
                    {"Name": "beat", "ID": "beat-1", "Port": 9,
                     "Check": {"CheckID": "beat-ttl", "TTL": "1s"}})
        self.assertEqual(self.agent_checks()["beat-ttl"]["Status"], "critical")
        self.put_ok("/v1/agent/check/pass/beat-ttl?note=alive")
        self.assertEqual(len(self.health("beat", passing=True)), 1)
        # A heartbeat within the TTL keeps it passing past the first deadline.
        time.sleep(0.6)
        self.put_ok("/v1/agent/check/pass/beat-ttl?note=alive")
        t0 = time.monotonic()
        time.sleep(0.8)
        self.assertEqual(self.agent_checks()["beat-ttl"]["Status"], "passing",
                         "expired before its TTL")
        self.wait_status("beat-ttl", "critical", timeout=3)
        waited = time.monotonic() - t0
        self.assertGreaterEqual(waited, 1.0)
        self.assertLess(waited, 1.0 + 0.8, "expired %.2fs after the last update" % waited)
        c = self.agent_checks()["beat-ttl"]
        self.assertEqual(c["Output"], "TTL expired (last output before timeout follows): alive")
        self.assertEqual(self.health("beat", passing=True), [])
        # Passing again brings it back, and it expires again.
        self.put_ok("/v1/agent/check/pass/beat-ttl")
        self.assertEqual(len(self.health("beat", passing=True)), 1)
        self.wait_status("beat-ttl", "critical", timeout=3)
        self.assertEqual(self.agent_checks()["beat-ttl"]["Output"], "TTL expired")

    def test_ttl_status_given_at_registration(self):
        self.node_check({"Name": "starts-ok", "TTL": "1s", "Status": "passing"})
        self.assertEqual(self.agent_checks()["starts-ok"]["Status"], "passing")
        self.wait_status("starts-ok", "critical", timeout=3)

    def test_blocking_query_sees_expiry(self):
        self.node_check({"Name": "blk", "TTL": "1s", "Status": "passing"})
        r = self.srv.get("/v1/health/node/%s" % NODE)
        t0 = time.monotonic()
        r2 = self.srv.get("/v1/health/node/%s?index=%d&wait=5s" % (NODE, r.index))
        self.assertEqual(r2.status, 200)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertGreater(r2.index, r.index)
        blk = [c for c in r2.json() if c["CheckID"] == "blk"][0]
        self.assertEqual(blk["Status"], "critical")

    def test_local_service_health(self):
        self.put_ok("/v1/agent/service/register",
                    {"Name": "lh", "ID": "lh-1", "Check": {"CheckID": "lh-ttl", "TTL": "60s"}})
        self.put_ok("/v1/agent/service/register",
                    {"Name": "lh", "ID": "lh-2", "Check": {"CheckID": "lh2-ttl", "TTL": "60s",
                                                           "Status": "passing"}})
        r = self.srv.get("/v1/agent/health/service/id/lh-1")
        self.assertEqual(r.status, 503, r)
        d = r.json()
        self.assertEqual(d["AggregatedStatus"], "critical")
        self.assertEqual(d["Service"]["ID"], "lh-1")
        ids = {c["CheckID"] for c in d["Checks"]}
        self.assertIn("lh-ttl", ids)
        self.assertIn("serfHealth", ids)        # the node's checks count too
        self.assertNotIn("lh2-ttl", ids)
        self.put_ok("/v1/agent/check/warn/lh-ttl")
        self.assertEqual(self.srv.get("/v1/agent/health/service/id/lh-1").status, 429)
        self.put_ok("/v1/agent/check/pass/lh-ttl")
        r = self.srv.get("/v1/agent/health/service/id/lh-1?format=text")
        self.assertEqual((r.status, r.body), (200, "passing"))
        r = self.srv.get("/v1/agent/health/service/name/lh")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(x["Service"]["ID"] for x in r.json()), ["lh-1", "lh-2"])
        self.put_ok("/v1/agent/service/maintenance/lh-2?enable=true")
        r = self.srv.get("/v1/agent/health/service/name/lh")
        self.assertEqual(r.status, 503)
        by_id = {x["Service"]["ID"]: x["AggregatedStatus"] for x in r.json()}
        self.assertEqual(by_id, {"lh-1": "passing", "lh-2": "maintenance"})
        self.assertEqual(self.srv.get("/v1/agent/health/service/name/lh?format=text").body,
                         "maintenance")
        self.assertEqual(self.srv.get("/v1/agent/health/service/id/nope").status, 404)
        self.assertEqual(self.srv.get("/v1/agent/health/service/name/nope").status, 404)

    # ---- maintenance ----

    def test_service_maintenance(self):
        self.put_ok("/v1/agent/service/register",
                    {"Name": "maint", "ID": "maint-1", "Port": 1,
                     "Check": {"TTL": "60s", "Status": "passing"}})
        self.assertEqual(len(self.health("maint", passing=True)), 1)
        self.put_ok("/v1/agent/service/maintenance/maint-1?enable=true&reason=%s"
                    % q("new kernel"))
        c = self.agent_checks()["_service_maintenance:maint-1"]
        self.assertEqual((c["Status"], c["Notes"], c["Name"], c["ServiceID"]),
                         ("critical", "new kernel", "Service Maintenance Mode", "maint-1"))
        self.assertEqual(self.health("maint", passing=True), [])
        self.assertEqual(len(self.health("maint")), 1)
        self.put_ok("/v1/agent/service/maintenance/maint-1?enable=false")
        self.assertNotIn("_service_maintenance:maint-1", self.agent_checks())
        self.assertEqual(len(self.health("maint", passing=True)), 1)
        # Without a reason, Consul's default note.
        self.put_ok("/v1/agent/service/maintenance/maint-1?enable=true")
        self.assertIn("no reason was provided",
                      self.agent_checks()["_service_maintenance:maint-1"]["Notes"])
        self.put_ok("/v1/agent/service/maintenance/maint-1?enable=false")
        self.assertEqual(self.srv.put("/v1/agent/service/maintenance/maint-1").status, 400)
        self.assertEqual(
            self.srv.put("/v1/agent/service/maintenance/maint-1?enable=maybe").status, 400)
        self.assertEqual(
            self.srv.put("/v1/agent/service/maintenance/nope?enable=true").status, 404)

    def test_node_maintenance(self):
        self.put_ok("/v1/agent/service/register",
                    {"Name": "nm", "ID": "nm-1", "Check": {"TTL": "60s", "Status": "passing"}})
        self.assertEqual(len(self.health("nm", passing=True)), 1)
        self.put_ok("/v1/agent/maintenance?enable=true&reason=rack+move")
        try:
            c = self.agent_checks()["_node_maintenance"]
            self.assertEqual((c["Status"], c["Notes"], c["ServiceID"]),
                             ("critical", "rack move", ""))
            self.assertEqual(self.health("nm", passing=True), [])
            crit = self.srv.get("/v1/health/state/critical").json()
            self.assertIn("_node_maintenance", [x["CheckID"] for x in crit])
        finally:
            self.put_ok("/v1/agent/maintenance?enable=False")
        self.assertNotIn("_node_maintenance", self.agent_checks())
        self.assertEqual(len(self.health("nm", passing=True)), 1)
        self.assertEqual(self.srv.put("/v1/agent/maintenance").status, 400)

    def test_methods(self):
        self.assertEqual(self.srv.get("/v1/agent/check/register").status, 405)
        self.assertEqual(self.srv.put("/v1/agent/self").status, 405)


class MetricsTest(harness.ServerTest):
    dev = True

    def samples(self, text):
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def test_prometheus_text(self):
        self.srv.get("/v1/agent/self")
        key = 'weft_http_requests_total{listener="http",route="/v1/agent/self",' \
              'method="GET",code="200"}'
        # A request is counted when its connection completes, just after
        # its reply has gone out.
        deadline = time.monotonic() + 3
        while True:
            r = self.srv.get("/metrics")
            self.assertEqual(r.status, 200, r)
            s = self.samples(r.body)
            if key in s or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        self.assertEqual(s[key], 1)
        for name in ("weft_blocking_queries", "weft_hub_topics", "weft_store_commits_total",
                     "weft_store_writes_total", "weft_store_commit_duration_seconds_count",
                     "weft_store_size_bytes", "weft_process_resident_memory_bytes",
                     "weft_process_cpu_seconds_total", "weft_process_open_fds",
                     "weft_process_threads", "weft_process_start_time_seconds",
                     "weft_catalog_nodes"):
            self.assertIn(name, s, name)
        self.assertGreater(s["weft_store_size_bytes"], 0)
        self.assertGreater(s["weft_process_resident_memory_bytes"], 1 << 20)
        self.assertGreater(s["weft_process_open_fds"], 3)
        self.assertGreaterEqual(s["weft_process_threads"], 3)
        self.assertAlmostEqual(s["weft_process_start_time_seconds"], time.time(), delta=120)
        self.assertEqual(s["weft_catalog_nodes"], 1)
        self.assertIn('weft_build_info{version="0.1.0",datacenter="dc1",node="server-1"}', s)
        # Writes show up in the store's counters.
        before = s["weft_store_writes_total"]
        self.srv.put("/v1/agent/check/register", {"Name": "m", "TTL": "300ms"})
        time.sleep(1.2)
        s = self.samples(self.srv.get("/metrics").body)
        self.assertGreaterEqual(s["weft_store_writes_total"], before + 2)
        self.assertEqual(s["weft_ttl_checks_expired_total"], 1)
        self.assertEqual(s['weft_catalog_checks{status="critical"}'], 1)

    def test_blocking_queries_gauge(self):
        import threading
        idx = self.srv.get("/v1/catalog/services").index
        t = threading.Thread(target=self.srv.get,
                             args=("/v1/catalog/services?index=%d&wait=2s" % idx,))
        t.start()
        try:
            deadline = time.monotonic() + 2
            seen = 0
            while time.monotonic() < deadline and not seen:
                seen = self.samples(self.srv.get("/metrics").body)["weft_blocking_queries"]
                time.sleep(0.05)
            self.assertEqual(seen, 1)
        finally:
            t.join(5)

    def test_agent_metrics_json_and_prometheus(self):
        r = self.srv.get("/v1/agent/metrics")
        self.assertEqual(r.status, 200, r)
        d = r.json()
        self.assertRegex(d["Timestamp"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC$")
        gauges = {g["Name"]: g for g in d["Gauges"]}
        self.assertEqual(gauges["weft_catalog_nodes"]["Value"], 1)
        counters = {c["Name"] for c in d["Counters"]}
        self.assertIn("weft_store_commits_total", counters)
        samples = {s["Name"]: s for s in d["Samples"]}
        commit = samples["weft_store_commit_duration_seconds"]
        self.assertGreaterEqual(commit["Count"], 1)
        self.assertAlmostEqual(commit["Mean"], commit["Sum"] / commit["Count"])
        self.assertEqual(d["Points"], [])
        r = self.srv.get("/v1/agent/metrics?format=prometheus")
        self.assertEqual(r.status, 200)
        self.assertIn("# TYPE weft_store_commits_total counter", r.body)
        self.assertEqual(self.srv.get("/v1/agent/metrics?format=xml").status, 400)


class TTLRestartTest(harness.ServerTest):
    """After a restart, TTL checks get a whole TTL again (as Consul's agent
    restarts its timers): clients could not heartbeat a stopped server."""
    dev = True

    def status(self, cid):
        return self.srv.get("/v1/agent/checks").json()[cid]["Status"]

    def test_restart_rearms(self):
        r = self.srv.put("/v1/agent/check/register",
                         {"Name": "rearm", "TTL": "1500ms", "Status": "passing"})
        self.assertEqual(r.status, 200, r)
        self.srv.stop()
        time.sleep(1.7)           # the deadline passes while the server is down
        self.srv.start()
        t0 = time.monotonic()
        self.assertEqual(self.status("rearm"), "passing")
        while self.status("rearm") != "critical" and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        took = time.monotonic() - t0
        self.assertEqual(self.status("rearm"), "critical")
        self.assertGreater(took, 1.2)
        self.assertLess(took, 2.5)


class AgentTokenTest(harness.ServerTest):
    """Permissions, once tokens exist (skipped while the server only runs --dev)."""

    @classmethod
    def setUpClass(cls):
        try:
            super().setUpClass()
        except RuntimeError as e:
            raise harness.unittest.SkipTest("weft-server runs without --dev only with tokens: %s"
                                            % str(e).splitlines()[0])

    def test_writes_need_a_token(self):
        body = {"Name": "tok", "ID": "tok-1", "Check": {"TTL": "30s"}}
        r = self.srv.put("/v1/agent/service/register", body, token=None)
        self.assertEqual(r.status, 403, r)
        self.assertEqual(self.srv.put("/v1/agent/service/register", body).status, 200)
        self.assertEqual(self.srv.put("/v1/agent/check/pass/service:tok-1", token=None).status, 403)
        self.assertEqual(self.srv.put("/v1/agent/check/pass/service:tok-1").status, 200)
        self.assertEqual(self.srv.put("/v1/agent/maintenance?enable=true", token=None).status, 403)
        self.assertEqual(self.srv.get("/metrics", token=None).status, 403)
        self.assertEqual(self.srv.get("/metrics").status, 200)
        self.assertEqual(self.srv.get("/v1/agent/self", token=None).status, 403)
        self.assertEqual(self.srv.put("/v1/agent/service/deregister/tok-1").status, 200)


if __name__ == "__main__":
    harness.main()
