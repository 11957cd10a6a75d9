"""Prometheus against weft-server.

- promtool checks the exposition format of /metrics.
- Debian's real Prometheus scrapes weft-server's /metrics and can query it.
- Consul service discovery: Debian's prometheus 2.42.0+ds is built without
  it (debian/changelog: "Disable Consul SD until its Debian package is back
  in shape"), so the test with a real Prometheus using consul_sd_configs
  runs only where the binary has it, and ConsulSDProtocolTest makes the
  requests Prometheus's Consul discovery makes (agent/self for the
  datacenter, blocking catalog/services and health/service/NAME with
  ?stale and wait=NNNms as the Go client sends them) and builds targets the
  way it does.
"""
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def prometheus_has_consul_sd():
    """False for builds without Consul SD, such as Debian 12's."""
    d = tempfile.mkdtemp(prefix="weft-promcheck-")
    try:
        path = os.path.join(d, "p.yml")
        with open(path, "w") as f:
            json.dump({"scrape_configs": [{"job_name": "x", "consul_sd_configs": [
                {"server": "127.0.0.1:1"}]}]}, f)
        p = subprocess.run([PROMTOOL, "check", "config", path], capture_output=True, timeout=30)
        return p.returncode == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


class PromtoolTest(harness.ServerTest):
    dev = True

    def test_promtool_check_metrics(self):
        # Some traffic first, so that every family has samples with labels.
        self.srv.put("/v1/agent/service/register", {"Name": "p", "Check": {"TTL": "5s"}})
        self.srv.get("/v1/agent/services")
        self.srv.get("/nope")
        for path in ("/metrics", "/v1/agent/metrics?format=prometheus"):
            r = self.srv.get(path)
            self.assertEqual(r.status, 200, r)
            p = subprocess.run([PROMTOOL, "check", "metrics"], input=r.body.encode(),
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, (path, p.stdout, p.stderr))
            self.assertEqual(p.stdout.strip() + p.stderr.strip(), b"", (path, p.stdout, p.stderr))


class Prometheus:
    def __init__(self, weft, token=None, consul_sd=True):
        self.dir = tempfile.mkdtemp(prefix="weft-prom-")
        self.port = harness.free_port()
        self.addr = "127.0.0.1:%d" % self.port
        sd = {"server": weft.addr, "refresh_interval": "1s"}
        static = {"job_name": "weft-server", "scrape_interval": "1s", "scrape_timeout": "1s",
                  "metrics_path": "/metrics",
                  "static_configs": [{"targets": [weft.addr]}]}
        if token:
            sd["token"] = token
            static["authorization"] = {"credentials": token}
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "scrape_configs": [static],
        }
        if consul_sd:
            config["scrape_configs"].append(
                {"job_name": "weft-sd", "scrape_interval": "1s", "scrape_timeout": "1s",
                 "consul_sd_configs": [sd]})
        # JSON is YAML: no PyYAML needed.
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            json.dump(config, f)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file", self.config,
             "--storage.tsdb.path", os.path.join(self.dir, "data"),
             "--web.listen-address", self.addr, "--log.level", "info"],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited: %s" % self.read_log())
            try:
                with urllib.request.urlopen("http://%s/-/ready" % self.addr, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("prometheus did not become ready: %s" % self.read_log())

    def read_log(self):
        with open(os.path.join(self.dir, "prometheus.log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def targets(self):
        with urllib.request.urlopen("http://%s/api/v1/targets" % self.addr, timeout=5) as r:
            return json.load(r)["data"]["activeTargets"]

    def query(self, expr):
        url = "http://%s/api/v1/query?query=%s" % (self.addr, urllib.parse.quote(expr))
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)["data"]["result"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrometheusScrapeTest(harness.ServerTest):
    """The real Prometheus scrapes weft-server's /metrics."""
    dev = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.prom = Prometheus(cls.srv, token=cls.srv.token, consul_sd=False)
        except Exception:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.prom.close()
        super().tearDownClass()

    def test_scraped_and_queryable(self):
        deadline = time.monotonic() + 20
        result = []
        while time.monotonic() < deadline:
            ts = [t for t in self.prom.targets() if t["labels"].get("job") == "weft-server"]
            if ts and ts[0]["health"] == "up":
                result = self.prom.query('weft_build_info{node="server-1"}')
                if result:
                    break
            time.sleep(0.25)
        self.assertTrue(result, "weft-server's /metrics was not scraped: %s\n%s" % (
            self.prom.targets(), self.prom.read_log()))
        self.assertEqual(result[0]["value"][1], "1")
        self.assertEqual(result[0]["metric"]["datacenter"], "dc1")
        nodes = self.prom.query("weft_catalog_nodes")
        self.assertEqual(nodes[0]["value"][1], "1")
        self.assertTrue(self.prom.query("weft_store_commit_duration_seconds_count > 0"))


@harness.unittest.skipUnless(prometheus_has_consul_sd(),
                             "this prometheus is built without consul_sd_configs "
                             "(Debian 12's disables it)")
class PrometheusConsulSDTest(harness.ServerTest):
    """The real Prometheus discovers targets in weft-server via Consul SD."""
    dev = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Registered before Prometheus starts: found on its first look.
        r = cls.srv.put("/v1/agent/service/register", {
            "Name": "weft-metrics", "ID": "weft-metrics-1", "Address": "127.0.0.1",
            "Port": cls.srv.port, "Tags": ["metrics", "control-plane"],
            "Meta": {"team": "mesh"}})
        assert r.status == 200, r
        try:
            cls.prom = Prometheus(cls.srv, token=cls.srv.token)
        except Exception:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.prom.close()
        super().tearDownClass()

    def wait_targets(self, pred, what, timeout=20):
        deadline = time.monotonic() + timeout
        targets = []
        while time.monotonic() < deadline:
            targets = self.prom.targets()
            if pred(targets):
                return targets
            time.sleep(0.25)
        self.fail("%s: not seen in %ss; targets: %s\nprometheus log: %s" % (
            what, timeout, json.dumps(targets, indent=1)[:3000], self.prom.read_log()))

    @staticmethod
    def sd_targets(targets, service):
        return {t["discoveredLabels"]["__address__"]: t for t in targets
                if t["discoveredLabels"].get("__meta_consul_service") == service}

    def test_discovery_and_scrape(self):
        def weft_up(ts):
            found = self.sd_targets(ts, "weft-metrics")
            static = [t for t in ts if t["labels"].get("job") == "weft-server"]
            return (self.srv.addr in found and found[self.srv.addr]["health"] == "up"
                    and static and static[0]["health"] == "up")
        ts = self.wait_targets(weft_up, "weft-metrics discovered and both jobs up")
        t = self.sd_targets(ts, "weft-metrics")[self.srv.addr]
        dl = t["discoveredLabels"]
        self.assertEqual(dl["__meta_consul_node"], "server-1")
        self.assertEqual(dl["__meta_consul_dc"], "dc1")   # from /v1/agent/self
        self.assertEqual(dl["__meta_consul_service_id"], "weft-metrics-1")
        self.assertEqual(dl["__meta_consul_service_port"], str(self.srv.port))
        self.assertEqual(dl["__meta_consul_tags"], ",metrics,control-plane,")
        self.assertEqual(dl["__meta_consul_service_metadata_team"], "mesh")
        self.assertEqual(dl["__meta_consul_health"], "passing")
        self.assertEqual(t["scrapePool"], "weft-sd")
        # Prometheus's scrapes show in weft's own request counters.
        body = self.srv.get("/metrics").body
        self.assertRegex(body, r'weft_http_requests_total\{listener="http",route="/metrics",'
                               r'method="GET",code="200"\} [1-9]')
        self.assertRegex(body, r'route="/v1/catalog/services",method="GET",code="200"')

    def test_instances_come_and_go(self):
        ports = [harness.free_port(), harness.free_port()]
        for i, port in enumerate(ports):
            r = self.srv.put("/v1/agent/service/register", {
                "Name": "app", "ID": "app-%d" % i, "Address": "127.0.0.1", "Port": port,
                "Tags": ["web"]})
            self.assertEqual(r.status, 200, r)
        want = {"127.0.0.1:%d" % p for p in ports}
        self.wait_targets(lambda ts: set(self.sd_targets(ts, "app")) == want,
                          "two app instances")
        # A third instance appears ...
        port3 = harness.free_port()
        self.srv.put("/v1/agent/service/register", {
            "Name": "app", "ID": "app-3", "Address": "127.0.0.1", "Port": port3})
        want3 = want | {"127.0.0.1:%d" % port3}
        self.wait_targets(lambda ts: set(self.sd_targets(ts, "app")) == want3,
                          "the new instance app-3")
        # ... a deregistered one disappears ...
        self.assertEqual(self.srv.put("/v1/agent/service/deregister/app-0").status, 200)
        want4 = want3 - {"127.0.0.1:%d" % ports[0]}
        self.wait_targets(lambda ts: set(self.sd_targets(ts, "app")) == want4,
                          "app-0 gone")
        # ... and so does the whole service once its last instance goes.
        for sid in ("app-1", "app-3"):
            self.srv.put("/v1/agent/service/deregister/" + sid)
        self.wait_targets(lambda ts: not self.sd_targets(ts, "app"), "service app gone")


class PrometheusConsulSDTokenTest(PrometheusConsulSDTest):
    """The same with tokens: Prometheus sends its token for discovery and
    scrapes (skipped while the server only runs --dev)."""
    dev = False

    @classmethod
    def setUpClass(cls):
        try:
            super().setUpClass()
        except RuntimeError as e:
            if not str(e).startswith("weft-server exited"):
                raise
            raise harness.unittest.SkipTest("weft-server runs without --dev only with tokens: %s"
                                            % str(e).splitlines()[0])

class PrometheusScrapeTokenTest(PrometheusScrapeTest):
    """Scraping with a token (skipped while the server only runs --dev)."""
    dev = False

    @classmethod
    def setUpClass(cls):
        try:
            super().setUpClass()
        except RuntimeError as e:
            if not str(e).startswith("weft-server exited"):
                raise
            raise harness.unittest.SkipTest("weft-server runs without --dev only with tokens: %s"
                                            % str(e).splitlines()[0])


class ConsulSDProtocolTest(harness.ServerTest):
    """What Prometheus's Consul discovery (Go consul/api client) asks, in its
    order, and the targets it would build from the answers."""
    dev = True
    WAIT = "120000ms"   # Prometheus's watch timeout, as the Go client writes it

    def setUp(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.addCleanup(self.pool.shutdown)

    def sd_get(self, path, index=0):
        url = path + ("&" if "?" in path else "?") + "stale="
        if index:
            url += "&index=%d&wait=%s" % (index, self.WAIT)
        r = self.srv.get(url, timeout=15)
        self.assertEqual(r.status, 200, r)
        return r

    def blocking(self, path, index, action):
        """Starts a blocking read at index, runs action, and returns the
        answer with the seconds it took."""
        t0 = time.monotonic()
        fut = self.pool.submit(self.sd_get, path, index)
        time.sleep(0.3)
        self.assertFalse(fut.done(), "the blocking query returned before any change")
        action()
        r = fut.result(timeout=15)
        return r, time.monotonic() - t0

    def targets(self, entries, dc):
        """Prometheus's consul discovery: one target per health entry."""
        out = {}
        for e in entries:
            node, svc = e["Node"], e["Service"]
            host = svc["Address"] or node["Address"]
            statuses = [c["Status"] for c in e["Checks"]]
            health = ("critical" if "critical" in statuses else
                      "warning" if "warning" in statuses else "passing")
            out["%s:%d" % (host, svc["Port"])] = {
                "__meta_consul_dc": dc, "__meta_consul_node": node["Node"],
                "__meta_consul_service": svc["Service"], "__meta_consul_service_id": svc["ID"],
                "__meta_consul_tags": "," + ",".join(svc["Tags"] or []) + ",",
                "__meta_consul_health": health}
        return out

    def register(self, sid, port, **kw):
        body = {"Name": "app", "ID": sid, "Port": port}
        body.update(kw)
        self.assertEqual(self.srv.put("/v1/agent/service/register", body).status, 200)

    def test_discovery_sequence(self):
        dc = self.sd_get("/v1/agent/self").json()["Config"]["Datacenter"]
        self.assertEqual(dc, "dc1")
        r = self.sd_get("/v1/catalog/services")
        self.assertNotIn("app", r.json())
        # A new service wakes the services watch.
        r, took = self.blocking("/v1/catalog/services", r.index,
                                lambda: self.register("app-1", 9001, Address="127.0.0.9",
                                                      Tags=["web"]))
        self.assertLess(took, 5)
        self.assertEqual(r.json()["app"], ["web"])
        h = self.sd_get("/v1/health/service/app")
        self.assertEqual(self.targets(h.json(), dc), {"127.0.0.9:9001": {
            "__meta_consul_dc": "dc1", "__meta_consul_node": "server-1",
            "__meta_consul_service": "app", "__meta_consul_service_id": "app-1",
            "__meta_consul_tags": ",web,", "__meta_consul_health": "passing"}})
        # A new instance wakes the service's watch; without a service
        # address the node's address is used.
        h, took = self.blocking("/v1/health/service/app", h.index,
                                lambda: self.register("app-2", 9002,
                                                      Check={"TTL": "30s"}))
        self.assertLess(took, 5)
        t = self.targets(h.json(), dc)
        self.assertEqual(set(t), {"127.0.0.9:9001", "127.0.0.1:9002"})
        self.assertEqual(t["127.0.0.1:9002"]["__meta_consul_health"], "critical")
        # A heartbeat changes the health label.
        h, _ = self.blocking("/v1/health/service/app", h.index,
                             lambda: self.srv.put("/v1/agent/check/pass/service:app-2"))
        self.assertEqual(self.targets(h.json(), dc)["127.0.0.1:9002"]["__meta_consul_health"],
                         "passing")
        # Deregistration removes the instance, then the service.
        h, _ = self.blocking("/v1/health/service/app", h.index,
                             lambda: self.srv.put("/v1/agent/service/deregister/app-1"))
        self.assertEqual(set(self.targets(h.json(), dc)), {"127.0.0.1:9002"})
        r = self.sd_get("/v1/catalog/services")
        r, _ = self.blocking("/v1/catalog/services", r.index,
                             lambda: self.srv.put("/v1/agent/service/deregister/app-2"))
        self.assertNotIn("app", r.json())
        self.assertEqual(self.sd_get("/v1/health/service/app").json(), [])


if __name__ == "__main__":
    harness.main()
