"""weft-agent against a real weft-server: service definitions from files and
from the local API (python-consul as the client), the catalog kept in sync
with only the writes that matter, reloads, leave on stop, server outages,
the local API's tokens and systemd's readiness protocol."""
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading

import consul

from harness import CTL_BIN, Server, free_port, main
from agentharness import AGENT_BIN, Agent, close_all, make_token, wait_for

WEB_YAML = """\
service:
  name: web
  port: 8080
  tags: [v1]
  meta: {team: shop}
  connect:
    sidecar_service:
      proxy:
        upstreams:
          - destination_name: api
            local_bind_port: 9191
"""

NODE_CHECK_JSON = """{
  "check": {"id": "disk", "name": "Disk", "ttl": "1h", "status": "passing"}
}
"""


def node_services(srv, node):
    r = srv.get("/v1/catalog/node-services/%s" % node)
    if r.status != 200:
        return {}
    return {s["ID"]: s for s in r.json()["Services"]}


def node_checks(srv, node):
    r = srv.get("/v1/health/node/%s" % node)
    return {c["CheckID"]: c for c in r.json()}


class AgentTest(unittest.TestCase):
    def setUp(self):
        self.srv = Server()
        self.agents = []

    def tearDown(self):
        try:
            close_all(self.agents)
        finally:
            self.srv.close()

    def agent(self, **kw):
        a = Agent(self.srv, **kw)
        self.agents.append(a)
        return a

    def test_file_definitions_reach_the_catalog(self):
        a = self.agent(start=False)
        a.write_config("web.yaml", WEB_YAML)
        a.write_config("node.json", NODE_CHECK_JSON)
        a.start()
        svcs = wait_for(lambda: len(node_services(self.srv, "vm1")) == 2 and
                        "disk" in node_checks(self.srv, "vm1") and
                        node_services(self.srv, "vm1"), what="web, its sidecar and the node check")
        self.assertEqual(svcs["web"]["Port"], 8080)
        self.assertEqual(svcs["web"]["Tags"], ["v1"])
        self.assertEqual(svcs["web"]["Meta"], {"team": "shop"})
        side = svcs["web-sidecar-proxy"]
        self.assertEqual(side["Kind"], "connect-proxy")
        self.assertEqual(side["Port"], 21000)
        self.assertEqual(side["Proxy"]["DestinationServiceName"], "web")
        self.assertEqual(side["Proxy"]["LocalServicePort"], 8080)
        self.assertEqual(side["Proxy"]["Upstreams"][0]["DestinationName"], "api")
        self.assertEqual(side["Proxy"]["Upstreams"][0]["LocalBindPort"], 9191)
        checks = node_checks(self.srv, "vm1")
        self.assertEqual(checks["disk"]["Status"], "passing")
        self.assertEqual(checks["disk"]["ServiceID"], "")
        # Consul's default sidecar checks: listening, and an alias of web
        self.assertEqual(checks["service:web-sidecar-proxy:1"]["Definition"]["TCP"],
                         a.address + ":21000")
        self.assertEqual(checks["service:web-sidecar-proxy:2"]["Type"], "alias")
        # the local API shows the same, in Consul's agent format
        local = a.get("/v1/agent/services").json()
        self.assertEqual(set(local), {"web", "web-sidecar-proxy"})
        self.assertEqual(local["web-sidecar-proxy"]["Proxy"]["DestinationServiceID"], "web")

    def test_python_consul_registers_through_the_agent(self):
        a = self.agent()
        c = consul.Consul(host="127.0.0.1", port=a.port)
        # python-consul 0.7.1 leaves the token out of some agent calls
        c.http.session.headers["X-Consul-Token"] = a.token
        self.assertTrue(c.agent.service.register(
            "api", service_id="api-1", port=9000, tags=["blue"],
            check=consul.Check.ttl("30s")))
        self.assertIn("api-1", c.agent.services())
        wait_for(lambda: "api-1" in node_services(self.srv, "vm1"), what="api-1 in the catalog")
        checks = node_checks(self.srv, "vm1")
        self.assertEqual(checks["service:api-1"]["Status"], "critical")
        # a TTL pass through the agent reaches the server's health view
        self.assertTrue(c.agent.check.ttl_pass("service:api-1", notes="all good"))
        wait_for(lambda: [e for e in self.srv.get("/v1/health/service/api?passing=1").json()
                          if e["Service"]["ID"] == "api-1"], timeout=5,
                 what="api-1 passing in /v1/health/service/api")
        self.assertEqual(node_checks(self.srv, "vm1")["service:api-1"]["Output"], "all good")
        # deregistering through the agent removes it from the catalog
        self.assertTrue(c.agent.service.deregister("api-1"))
        wait_for(lambda: "api-1" not in node_services(self.srv, "vm1"), what="api-1 gone")
        self.assertNotIn("service:api-1", node_checks(self.srv, "vm1"))

    def test_local_lists_take_a_filter(self):
        a = self.agent()
        for sid, name, tags in (("api-1", "api", ["blue"]), ("api-2", "api", ["green"]),
                                ("db-1", "db", [])):
            r = a.put("/v1/agent/service/register",
                      {"Name": name, "ID": sid, "Port": 9000, "Tags": tags,
                       "Check": {"TTL": "1h", "Status": "passing" if name == "api" else "critical"}})
            self.assertEqual(r.status, 200, r.body)
        q = urllib.parse.quote
        got = a.get("/v1/agent/services?filter=" + q('Service == "api"')).json()
        self.assertEqual(sorted(got), ["api-1", "api-2"])
        got = a.get("/v1/agent/services?filter=" + q('"blue" in Tags')).json()
        self.assertEqual(sorted(got), ["api-1"])
        got = a.get("/v1/agent/checks?filter=" + q('Status == "critical"')).json()
        self.assertEqual([c["ServiceID"] for c in got.values()], ["db-1"])
        r = a.get("/v1/agent/services?filter=" + q('Service =='))
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["field"], "filter")
        self.assertTrue(r.json()["error"].startswith("filter: position 11: "), r.json())

    def test_bad_registration_is_refused_naming_the_field(self):
        a = self.agent()
        r = a.put("/v1/agent/service/register", {"Name": "api", "Port": "x"})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"], "Port: must be an integer")
        r = a.put("/v1/agent/service/register", {"Name": "api", "Port": 1, "Chek": {}})
        self.assertEqual(r.status, 400)
        self.assertIn("Chek: unknown field", r.json()["error"])
        r = a.put("/v1/agent/service/register",
                  {"Name": "api", "Port": 1, "Check": {"HTTP": "http://127.0.0.1:1/"}})
        self.assertEqual(r.status, 400)
        self.assertIn("Check.Interval: required for an http check", r.json()["error"])
        r = a.put("/v1/agent/service/register",
                  {"Name": "api", "Port": 1, "Check": {"Args": ["/bin/true"], "Interval": "1s"}})
        self.assertEqual(r.status, 400)
        self.assertIn("--enable-script-checks", r.json()["error"])
        self.assertEqual(a.get("/v1/agent/services").json(), {})

    def test_steady_state_makes_no_catalog_writes(self):
        # a health endpoint whose output changes on every call, status passing
        calls = []

        class Health(BaseHTTPRequestHandler):
            def do_GET(self):
                calls.append(1)
                body = ("ok, call %d\n" % len(calls)).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Health)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            # heartbeats every second: they are not catalog writes either
            a = self.agent(start=False, sync_interval=1, args=["--heartbeat-interval", "1"])
            a.write_config("app.yaml", "service:\n  name: app\n  port: 80\n  check:\n"
                           "    http: http://127.0.0.1:%d/health\n    interval: 1s\n"
                           % httpd.server_address[1])
            a.write_config("node.json", NODE_CHECK_JSON)
            a.start()
            wait_for(lambda: node_checks(self.srv, "vm1").get("service:app", {}).get("Status")
                     == "passing", what="app passing on the server")
            wait_for(lambda: a.status()["Sync"]["InSync"], what="in sync")
            st0 = a.status()["Sync"]
            index0 = self.srv.get("/v1/catalog/nodes").index
            n0 = len(calls)
            time.sleep(3.5)  # three full comparisons at --sync-interval 1, 3 check runs
            st1 = a.status()["Sync"]
            self.assertGreaterEqual(len(calls), n0 + 2, "the check ran")
            self.assertIn("ok, call", a.get("/v1/agent/checks").json()["service:app"]["Output"])
            self.assertGreaterEqual(st1["FullSyncs"], st0["FullSyncs"] + 2)
            self.assertEqual(st1["Writes"], st0["Writes"], "no write when no status changed")
            self.assertEqual(self.srv.get("/v1/catalog/nodes").index, index0)
        finally:
            httpd.shutdown()
            httpd.server_close()

    def test_anti_entropy_repairs_drift(self):
        a = self.agent(start=False, sync_interval=1)
        a.write_config("web.yaml", WEB_YAML)
        a.start()
        wait_for(lambda: len(node_services(self.srv, "vm1")) == 2, what="first sync")
        # someone removes the agent's service on the server, and adds a stray one
        r = self.srv.put("/v1/catalog/deregister", {"Node": "vm1", "ServiceID": "web"})
        self.assertEqual(r.status, 200)
        r = self.srv.put("/v1/catalog/register", {"Node": "vm1", "Address": "127.0.0.1",
                                                  "Service": {"Service": "stray", "Port": 1}})
        self.assertEqual(r.status, 200)
        wait_for(lambda: set(node_services(self.srv, "vm1")) == {"web", "web-sidecar-proxy"},
                 timeout=5, what="web back and stray gone")

    def test_reload_adds_removes_and_refuses_bad_files(self):
        a = self.agent()
        a.write_config("web.yaml", WEB_YAML)
        a.send(signal.SIGHUP)
        wait_for(lambda: "web" in node_services(self.srv, "vm1"), what="web after SIGHUP")
        a.write_config("bad.yaml", "service:\n  name: db\n  port: 5432\n  chek:\n    ttl: 10s\n")
        a.send(signal.SIGHUP)
        wait_for(lambda: "reload refused" in a.read_log(), what="refusal log line")
        self.assertIn("bad.yaml:4:3: service.chek: unknown field", a.read_log())
        time.sleep(0.3)
        self.assertEqual(set(node_services(self.srv, "vm1")), {"web", "web-sidecar-proxy"})
        a.remove_config("bad.yaml")
        a.remove_config("web.yaml")
        a.send(signal.SIGHUP)
        wait_for(lambda: node_services(self.srv, "vm1") == {}, what="services gone")

    def test_check_mode_reports_file_and_line(self):
        d = tempfile.mkdtemp(prefix="weft-agent-check-")
        with open(os.path.join(d, "web.yaml"), "w") as f:
            f.write(WEB_YAML)
        r = subprocess.run([AGENT_BIN, "--config-dir", d, "--check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(d, "api.json"), "w") as f:
            f.write('{"service": {"name": "api", "port": 9000,\n'
                    '  "check": {"tcp": "127.0.0.1:9000"}}}\n')
        r = subprocess.run([AGENT_BIN, "--config-dir", d, "--check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("api.json:2:3: service.Check.Interval: required for a tcp check",
                      r.stderr)
        with open(os.path.join(d, "api.json"), "w") as f:
            f.write('{"service": {"name": "web", "port": 9000}}\n')
        r = subprocess.run([AGENT_BIN, "--config-dir", d, "--check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn('service ID "web" is also defined in', r.stderr)

    def test_stop_deregisters_the_node_quickly(self):
        a = self.agent(start=False)
        a.write_config("web.yaml", WEB_YAML)
        a.start()
        wait_for(lambda: "web" in node_services(self.srv, "vm1"), what="web registered")
        t0 = time.time()
        self.assertEqual(a.stop(), 0)
        self.assertLess(time.time() - t0, 5)
        self.assertEqual(self.srv.get("/v1/catalog/node/vm1").json(), None)

    def test_api_registrations_survive_a_restart(self):
        a = self.agent()
        r = a.put("/v1/agent/service/register", {"Name": "api", "Port": 9000,
                                                  "Connect": {"SidecarService": {}}})
        self.assertEqual(r.status, 200, r)
        wait_for(lambda: len(node_services(self.srv, "vm1")) == 2, what="api and sidecar")
        a.kill9()
        a.start()
        self.assertEqual(set(a.get("/v1/agent/services").json()), {"api", "api-sidecar-proxy"})
        self.assertEqual(a.get("/v1/agent/services").json()["api-sidecar-proxy"]["Port"], 21000)

    def test_maintenance_mode(self):
        """Consul's maintenance endpoints: a critical check of type
        maintenance takes the service (or the whole node) out of the
        passing instances until it is turned off; it survives a restart."""
        a = self.agent()
        r = a.put("/v1/agent/service/register", {"Name": "api", "ID": "api-1", "Port": 9000,
                                                  "Check": {"TTL": "1h", "Status": "passing"}})
        self.assertEqual(r.status, 200, r.body)

        def passing():
            return [e["Service"]["ID"] for e in
                    self.srv.get("/v1/health/service/api?passing=1").json()]
        wait_for(lambda: passing() == ["api-1"], what="api-1 passing on the server")
        r = a.put("/v1/agent/service/maintenance/api-1?enable=true&reason=deploy%201.2")
        self.assertEqual(r.status, 200, r.body)
        mc = a.get("/v1/agent/checks").json()["_service_maintenance:api-1"]
        self.assertEqual((mc["Status"], mc["Notes"], mc["Type"], mc["Name"]),
                         ("critical", "deploy 1.2", "maintenance", "Service Maintenance Mode"))
        h = a.get("/v1/agent/health/service/id/api-1?format=text")
        self.assertEqual((h.status, h.body), (503, "maintenance"))
        wait_for(lambda: passing() == [], what="api-1 out of the passing instances")
        # kept across a restart of the agent
        a.kill9()
        a.start()
        self.assertIn("_service_maintenance:api-1", a.get("/v1/agent/checks").json())
        r = a.put("/v1/agent/service/maintenance/api-1?enable=false")
        self.assertEqual(r.status, 200, r.body)
        self.assertNotIn("_service_maintenance:api-1", a.get("/v1/agent/checks").json())
        wait_for(lambda: passing() == ["api-1"], what="api-1 back")
        # the node: every service out, Consul's default note without a reason
        r = a.put("/v1/agent/maintenance?enable=true")
        self.assertEqual(r.status, 200, r.body)
        nc = a.get("/v1/agent/checks").json()["_node_maintenance"]
        self.assertTrue(nc["Notes"].startswith("Maintenance mode is enabled for this node"), nc)
        wait_for(lambda: passing() == [], what="the node out")
        self.assertEqual(a.put("/v1/agent/maintenance?enable=false").status, 200)
        wait_for(lambda: passing() == ["api-1"], what="the node back")
        # weftctl maint against the agent, as `consul maint`
        def ctl(*args):
            return subprocess.run([CTL_BIN, "-http-addr", a.addr, "-token", a.token, "maint"]
                                  + list(args), capture_output=True, text=True, timeout=30)
        p = ctl("-enable", "-service", "api-1", "-reason", "disk swap")
        self.assertEqual((p.returncode, p.stdout), (0, "Service api-1 entered maintenance mode\n"),
                         p.stderr)
        p = ctl()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"service\s+api-1\s+disk swap")
        wait_for(lambda: passing() == [], what="api-1 out through weftctl")
        p = ctl("-disable", "-service", "api-1")
        self.assertEqual((p.returncode, p.stdout), (0, "Service api-1 left maintenance mode\n"))
        wait_for(lambda: passing() == ["api-1"], what="api-1 back through weftctl")
        p = ctl("-enable", "-disable")
        self.assertEqual(p.returncode, 2)
        self.assertIn("give -enable or -disable, not both", p.stderr)
        p = ctl("-enable", "-service", "nope")
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown service ID: nope", p.stderr)
        # bad requests
        r = a.put("/v1/agent/maintenance")
        self.assertEqual((r.status, r.json()["error"]), (400, "enable: is required (true or false)"))
        r = a.put("/v1/agent/maintenance?enable=maybe")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"], 'enable: "maybe" is not true or false')
        r = a.put("/v1/agent/service/maintenance/nope?enable=true")
        self.assertEqual(r.status, 404)

    def test_weftctl_services_register_and_deregister(self):
        """`weftctl services register FILE` / `deregister -id` against the agent,
        as `consul services`; a bad field is shown at its line in the file."""
        a = self.agent()

        def ctl(*args):
            return subprocess.run([CTL_BIN, "-http-addr", a.addr, "-token", a.token, "services"]
                                  + list(args), capture_output=True, text=True, timeout=30)
        good = os.path.join(a.dir, "api.yaml")
        with open(good, "w") as f:
            f.write("service:\n  name: api\n  id: api-9\n  port: 9009\n"
                    "  checks:\n    - tcp: 127.0.0.1:9009\n      interval: 10s\n")
        p = ctl("register", good)
        self.assertEqual((p.returncode, p.stdout), (0, "Registered service: api-9\n"), p.stderr)
        self.assertIn("api-9", a.get("/v1/agent/services").json())
        wait_for(lambda: "api-9" in node_services(self.srv, "vm1"), what="api-9 in the catalog")
        bad = os.path.join(a.dir, "bad.yaml")
        with open(bad, "w") as f:
            f.write("services:\n  - name: db\n    port: 5432\n    checks:\n"
                    "      - tcp: 127.0.0.1:5432\n")
        p = ctl("register", bad)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, "weftctl: %s:5:9: services[0].Checks[0].Interval: required for "
                         "a tcp check, at least 100ms\n" % bad)
        self.assertNotIn("db", a.get("/v1/agent/services").json())
        p = ctl("deregister", "-id", "api-9")
        self.assertEqual((p.returncode, p.stdout), (0, "Deregistered service: api-9\n"), p.stderr)
        self.assertNotIn("api-9", a.get("/v1/agent/services").json())
        p = ctl("deregister")
        self.assertEqual(p.returncode, 2)
        self.assertIn("-id is required", p.stderr)
        # from flags, as `consul services register -name=web -port=80`
        p = ctl("register", "-name", "cache", "-id", "cache-1", "-port", "6379", "-tag", "v7",
                "-tag", "primary", "-meta", "team=shop")
        self.assertEqual((p.returncode, p.stdout), (0, "Registered service: cache-1\n"), p.stderr)
        svc = a.get("/v1/agent/services").json()["cache-1"]
        self.assertEqual((svc["Service"], svc["Port"], svc["Tags"], svc["Meta"]),
                         ("cache", 6379, ["v7", "primary"], {"team": "shop"}))
        p = ctl("register", "-name", "x", "-meta", "novalue")
        self.assertEqual(p.returncode, 1)
        self.assertIn('-meta: "novalue" is not KEY=VALUE', p.stderr)
        p = ctl("register", "-port", "80")
        self.assertEqual(p.returncode, 2)
        self.assertIn("go with -name", p.stderr)

    def test_server_outage_then_catalog_is_right_again(self):
        a = self.agent()
        r = a.put("/v1/agent/service/register", {"Name": "api", "Port": 9000,
                                                  "Check": {"TTL": "1h", "Status": "passing"}})
        self.assertEqual(r.status, 200, r)
        wait_for(lambda: node_checks(self.srv, "vm1").get("service:api", {}).get("Status") ==
                 "passing", what="passing on the server")
        self.srv.stop()
        # the agent keeps serving its local API while the server is away
        r = a.put("/v1/agent/check/fail/service:api?note=disk+full")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(a.get("/v1/agent/checks").json()["service:api"]["Status"], "critical")
        wait_for(lambda: not a.status()["Sync"]["InSync"], what="sync noticing the outage")
        time.sleep(1)
        self.srv.start()
        wait_for(lambda: node_checks(self.srv, "vm1").get("service:api", {}).get("Status") ==
                 "critical", timeout=25, what="the outage's change on the server")
        self.assertEqual(node_checks(self.srv, "vm1")["service:api"]["Output"], "disk full")
        wait_for(lambda: a.status()["Sync"]["InSync"], what="in sync again")

    def test_local_api_tokens(self):
        a = self.agent()
        r = a.get("/v1/agent/services", token=None)
        self.assertEqual(r.status, 403)
        self.assertIn("a token is required", r.json()["error"])
        r = a.get("/v1/agent/services", token="weft1.bogus.token")
        self.assertEqual(r.status, 403)
        ro = make_token(self.srv, Kind="read-only")
        self.assertEqual(a.get("/v1/agent/services", token=ro).status, 200)
        r = a.put("/v1/agent/service/register", {"Name": "api", "Port": 1}, token=ro)
        self.assertEqual(r.status, 403)
        self.assertIn("read-only", r.json()["error"])
        api_tok = make_token(self.srv, Kind="service", ServiceName="api")
        r = a.put("/v1/agent/service/register", {"Name": "web", "Port": 1}, token=api_tok)
        self.assertEqual(r.status, 403)
        r = a.put("/v1/agent/service/register",
                  {"Name": "api", "Port": 1, "Connect": {"SidecarService": {}}}, token=api_tok)
        self.assertEqual(r.status, 200, r)
        other = make_token(self.srv, Kind="agent", NodeName="vm2")
        r = a.put("/v1/agent/service/deregister/api", token=other)
        self.assertEqual(r.status, 403)
        r = a.put("/v1/agent/service/deregister/api", token=self.srv.token)
        self.assertEqual(r.status, 200)

    def test_joins_over_https_verifying_the_server(self):
        from test_https import Certs
        certs = Certs()
        try:
            cert, key = certs.issue("weft-server", "IP:127.0.0.1")
            port = free_port()
            srv = Server(args=["--https-addr", "127.0.0.1:%d" % port, "--tls-cert", cert,
                               "--tls-key", key])
            try:
                https = "https://127.0.0.1:%d" % port
                good = Agent(srv, args=["--server-ca", certs.ca], start=False)
                good.srv_addr = https
                good.start()
                self.agents.append(good)
                good.write_config("web.yaml", WEB_YAML)
                good.send(signal.SIGHUP)
                wait_for(lambda: "web" in node_services(srv, "vm1"), what="web over https")
                # without the CA, the server's certificate is refused and nothing is written
                bad = Agent(srv, node="vm2", start=False)
                bad.srv_addr = https
                bad.start()
                self.agents.append(bad)
                wait_for(lambda: (bad.status()["Sync"].get("LastError") or ""), what="an error")
                self.assertIn("certificate", bad.status()["Sync"]["LastError"])
                self.assertEqual(srv.get("/v1/catalog/node/vm2").json(), None)
            finally:
                for a in list(self.agents):
                    if a.srv is srv:
                        a.close()
                        self.agents.remove(a)
                srv.close()
        finally:
            certs.close()

    def test_sidecar_in_another_mesh_gets_that_meshes_identity(self):
        r = self.srv.put("/v1/meshes/payments", {})
        self.assertEqual(r.status, 200, r)
        a = self.agent(start=False)
        a.write_config("billing.yaml", "service:\n  name: billing\n  port: 7000\n  mesh: payments\n"
                       "  connect:\n    sidecar_service: {}\n")
        a.write_config("web.yaml", "service:\n  name: web\n  port: 8080\n"
                       "  connect:\n    sidecar_service: {}\n")
        a.start()

        def leaf(svc):
            r = a.get("/v1/agent/connect/ca/leaf/" + svc)
            return r.json() if r.status == 200 else None
        billing = wait_for(lambda: leaf("billing"), timeout=15, what="billing's leaf")
        web = wait_for(lambda: leaf("web"), timeout=15, what="web's leaf")
        self.assertIn("/ns/payments/", billing["ServiceURI"])
        self.assertTrue(billing["ServiceURI"].endswith("/svc/billing"))
        self.assertIn("/ns/default/", web["ServiceURI"])
        # both sidecars run, each on its own mesh's certificate
        wait_for(lambda: a.status().get("Ready") and len(a.status().get("Proxies") or []) == 2 and
                 all(p["Pid"] for p in a.status()["Proxies"]), timeout=20, what="both proxies")
        self.assertTrue(a.status()["CertificatesReady"])

    def test_a_dead_agent_is_noticed_without_gossip(self):
        self.srv.close()
        self.srv = Server(args=["--agent-timeout", "2"])
        a = self.agent(start=False, args=["--heartbeat-interval", "1"])
        a.write_config("web.yaml", WEB_YAML)
        a.start()

        def alive():
            return node_checks(self.srv, "vm1").get("weft-agent", {}).get("Status")
        self.assertEqual(wait_for(alive, what="the weft-agent check"), "passing")
        self.assertEqual(a.get("/v1/agent/checks").json()["weft-agent"]["Status"], "passing")
        # a VM that dies without leaving: kill -9 (its proxies die with it)
        a.kill9()
        t0 = time.time()
        wait_for(lambda: alive() == "critical", timeout=10, what="the check turned critical")
        self.assertLess(time.time() - t0, 6)
        self.assertIn("not heard from", node_checks(self.srv, "vm1")["weft-agent"]["Output"])
        # its services leave the healthy instances
        self.assertEqual(self.srv.get("/v1/health/service/web?passing=1").json(), [])
        # back: passing again at its first heartbeat
        a.start()
        wait_for(lambda: alive() == "passing", timeout=10, what="passing again")

    def test_tells_systemd_when_ready(self):
        d = tempfile.mkdtemp(prefix="weft-notify-")
        path = os.path.join(d, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(10)
        try:
            a = self.agent(start=False, env={"NOTIFY_SOCKET": path})
            a.start(wait=False)
            msg = sock.recv(4096).decode()
            self.assertIn("READY=1", msg)
            # ready means the local API answers
            self.assertEqual(a.get("/v1/agent/self").status, 200)
            a.send(signal.SIGTERM)
            self.assertIn("STOPPING=1", sock.recv(4096).decode())
        finally:
            sock.close()


if __name__ == "__main__":
    main()
