"""Proxy telemetry end to end, real processes only: a weft-server, two
weft-agents with --telemetry-interval 1 ("vm1" runs web's sidecar, "vm2"
api, its sidecar and a real HTTP app that takes ~30 ms and fails some
calls). The test plays web: it calls api through web's upstream listener,
some calls answered 500 by the app, some denied by api's intentions. The
agents scrape their proxies' /stats and send the deltas to the server; the
test reads them back as the UI does (docs/api.md "Proxy telemetry").

Also the API's own rules: 400 naming the field for bad bodies, 403 for a
token without node:write on the node, blocking queries on telemetry's own
index."""
import json
import threading
import time
import unittest
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import Server, free_port, main
from agentharness import Agent, close_all, make_token, wait_for

INTENTIONS = {
    "Kind": "service-intentions", "Name": "api",
    "Sources": [
        {"Name": "web", "Permissions": [
            {"Action": "allow", "HTTP": {"PathPrefix": "/v1/", "Methods": ["GET"]}}]},
        {"Name": "*", "Action": "deny"},
    ],
}
APP_DELAY = 0.03
OK_CALLS, FAILED_CALLS, DENIED_CALLS = 30, 10, 5


class App:
    """api: answers after APP_DELAY; /v1/fail answers 500."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                time.sleep(APP_DELAY)
                code = 500 if self.path.startswith("/v1/fail") else 200
                body = b"{}"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def call(port, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except OSError:
        return 0


def seconds(interval):
    assert interval.endswith("s"), interval
    return float(interval[:-1])


def totals(doc):
    """(requests, successes, denied) over every point of a service's answer."""
    width = seconds(doc["Interval"])
    req = ok = denied = 0.0
    for p in doc["Points"]:
        n = p["RequestRate"] * width
        req += n
        if p["SuccessRate"] is not None:
            ok += p["SuccessRate"] * n
        denied += p["Denied"]
    return round(req), round(ok), round(denied)


class TelemetryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server()
        cls.app = App()
        cls.agents = []
        try:
            for body in ({"Kind": "service-defaults", "Name": "api", "Protocol": "http"},
                         INTENTIONS):
                r = cls.srv.put("/v1/config", body)
                assert r.status == 200, r
            cls.up_port = free_port()
            args = ["--telemetry-interval", "1"]
            cls.vm2 = Agent(cls.srv, node="vm2", start=False, args=args)
            cls.vm2.write_config("api.yaml", (
                "service:\n  name: api\n  port: %d\n  connect:\n    sidecar_service: {}\n")
                % cls.app.port)
            cls.vm2.start()
            cls.agents.append(cls.vm2)
            cls.vm1 = Agent(cls.srv, node="vm1", start=False, args=args)
            cls.vm1.write_config("web.yaml", (
                "service:\n  name: web\n  port: 1\n  connect:\n    sidecar_service:\n"
                "      proxy:\n        upstreams:\n          - destination_name: api\n"
                "            local_bind_port: %d\n") % cls.up_port)
            cls.vm1.start()
            cls.agents.append(cls.vm1)
            wait_for(lambda: call(cls.up_port, "/v1/warm") == 200, timeout=30,
                     what="web -> api through both sidecars")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            close_all(cls.agents)
        finally:
            cls.app.close()
            cls.srv.close()

    def service(self, name, **kw):
        r = self.srv.get("/v1/weft/telemetry/service/" + name, **kw)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def settled(self, name):
        """The service's totals once two reports in a row add nothing."""
        seen = []

        def still():
            seen.append(totals(self.service(name)))
            return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]
        wait_for(still, timeout=20, interval=1.1, what="%s's telemetry to settle" % name)
        return seen[-1]

    def test_1_rates_success_p99_and_edges(self):
        base = self.settled("api")
        statuses = []
        for i in range(OK_CALLS + FAILED_CALLS):
            # one failure in four: never enough in a row to eject api
            statuses.append(call(self.up_port, "/v1/fail" if i % 4 == 3 else "/v1/items"))
        for _ in range(DENIED_CALLS):
            statuses.append(call(self.up_port, "/admin"))
        self.assertEqual(statuses.count(200), OK_CALLS, statuses)
        self.assertEqual(statuses.count(500), FAILED_CALLS, statuses)
        self.assertEqual(statuses.count(403), DENIED_CALLS, statuses)
        n = OK_CALLS + FAILED_CALLS + DENIED_CALLS
        # api's inbound saw every call (its proxy's own 403s included)
        want = (base[0] + n, base[1] + OK_CALLS + DENIED_CALLS, base[2] + DENIED_CALLS)
        got = wait_for(lambda: (lambda t: t if t == want else None)(totals(self.service("api"))),
                       timeout=15, interval=0.5, what="api's telemetry to count the calls")
        self.assertEqual(got, want)
        doc = self.service("api")
        self.assertEqual(doc["Service"], "api")
        self.assertEqual(doc["Mesh"], "default")
        self.assertEqual(doc["Interval"], "10s")
        busy = [p for p in doc["Points"] if p["RequestRate"] > 0]
        self.assertTrue(busy)
        times = [p["Time"] for p in doc["Points"]]
        self.assertEqual(times, sorted(times), "oldest first")
        # the calls took ~30 ms in the app: p99 tens of ms, never µs or seconds
        p99 = max(p["P99Ms"] for p in busy)
        self.assertGreaterEqual(p99, APP_DELAY * 1000 * 0.8, doc)
        self.assertLess(p99, 250, doc)
        for p in busy:
            self.assertTrue(0 < p["SuccessRate"] <= 1, p)
        for p in doc["Points"]:
            if p["RequestRate"] == 0:
                self.assertIsNone(p["SuccessRate"])
                self.assertIsNone(p["P99Ms"])
        # web -> api, from web's outbound listener, over the last 5 minutes
        edges = self.srv.get("/v1/weft/telemetry/edges").json()
        e = [x for x in edges if (x["Source"], x["Destination"]) == ("web", "api")]
        self.assertEqual(len(e), 1, edges)
        self.assertGreater(e[0]["RequestRate"], 0)
        self.assertTrue(0 < e[0]["SuccessRate"] < 1, e)
        self.assertTrue(e[0]["LastSeen"].endswith("Z"))
        self.assertEqual([d["Service"] for d in doc["Downstreams"]], ["web"])
        self.assertEqual(doc["Upstreams"], [])
        web = self.service("web")
        self.assertEqual([u["Service"] for u in web["Upstreams"]], ["api"])
        # web's sidecar has no app behind it: nothing reached its inbound
        self.assertEqual(totals(web)[0], 0)

    def test_2_blocking_wakes_on_new_points(self):
        r = self.srv.get("/v1/weft/telemetry/service/api")
        idx = int(r.headers["X-Consul-Index"])
        self.assertGreaterEqual(idx, 1)
        t0 = time.time()
        r = self.srv.get("/v1/weft/telemetry/service/api?index=%d&wait=20s" % idx)
        self.assertEqual(r.status, 200)
        self.assertGreater(int(r.headers["X-Consul-Index"]), idx)
        self.assertLess(time.time() - t0, 5, "the agents report every second")
        r = self.srv.get("/v1/weft/telemetry/edges")
        idx = int(r.headers["X-Consul-Index"])
        r = self.srv.get("/v1/weft/telemetry/edges?index=%d&wait=20s" % idx)
        self.assertGreater(int(r.headers["X-Consul-Index"]), idx)
        # an index in the future of telemetry's own counter: waits the wait out
        t0 = time.time()
        r = self.srv.get("/v1/weft/telemetry/service/nobody?index=%d&wait=1s" % (idx + 10 ** 9))
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(time.time() - t0, 0.9)
        self.assertEqual(r.json()["Points"], [])

    def test_3_unknown_service_and_bad_queries(self):
        doc = self.service("nobody")
        self.assertEqual(doc["Points"], [])
        self.assertEqual(doc["Upstreams"], [])
        self.assertEqual(doc["Downstreams"], [])
        r = self.srv.get("/v1/weft/telemetry/service/api?mesh=NO")
        self.assertEqual(r.status, 400)
        self.assertTrue(r.json()["error"].startswith("mesh:"), r)
        r = self.srv.get("/v1/weft/telemetry/edges?mesh=other")
        self.assertEqual((r.status, r.json()), (200, []))
        r = self.srv.get("/v1/weft/telemetry/edges?color=red")
        self.assertEqual(r.status, 400)

    def test_4_bad_bodies_name_the_field(self):
        vm1 = self.vm1.token
        cases = [
            ("[]", "body"),
            ({"Proxies": []}, "Interval"),
            ({"Interval": "fast", "Proxies": []}, "Interval"),
            ({"Interval": "10s"}, "Proxies"),
            ({"Interval": "10s", "Proxies": [{"ProxyID": "p", "Service": "pay",
                                              "Inbound": {"Requests": -3}}]},
             "Proxies[0].Inbound.Requests"),
            ({"Interval": "10s", "Proxies": [{"ProxyID": "p", "Service": "pay",
                                              "Inbound": {"Responses": {"7xx": 1}}}]},
             "Proxies[0].Inbound.Responses.7xx"),
            ({"Interval": "10s", "Proxies": [{"ProxyID": "p", "Service": "pay", "Upstreams": [
                {"Service": "db", "LatencyBuckets": [[0.1, 9], [0.2, 3]]}]}]},
             "Proxies[0].Upstreams[0].LatencyBuckets[1]"),
            ({"Interval": "10s", "Proxies": [{"ProxyID": "p", "Service": "bad name"}]},
             "Proxies[0].Service"),
            ({"Interval": "10s", "Proxies": [{"ProxyID": "p", "Service": "pay"}] * 1025},
             "Proxies"),
        ]
        for body, field in cases:
            r = self.srv.put("/v1/weft/telemetry/node/vm1",
                             body if isinstance(body, dict) else body.encode(), token=vm1)
            self.assertEqual(r.status, 400, (body if len(str(body)) < 300 else field, r))
            self.assertEqual(r.json().get("field"), field, r.json())
            self.assertTrue(r.json()["error"].startswith(field + ":"), r.json())
        self.assertEqual(self.service("pay")["Points"], [], "nothing of a refused body is kept")
        good = {"Interval": "10s", "Proxies": [{"ProxyID": "p", "Service": "pay",
                                                "Inbound": {"Requests": 20,
                                                            "Responses": {"2xx": 20}}}]}
        r = self.srv.put("/v1/weft/telemetry/node/vm1", good, token=vm1)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(totals(self.service("pay"))[0], 20)

    def test_5_node_write_needed(self):
        good = {"Interval": "10s", "Proxies": [{"ProxyID": "p", "Service": "pay2",
                                                "Inbound": {"Requests": 1}}]}
        ro = make_token(self.srv, Kind="read-only")
        svc = make_token(self.srv, Kind="service", ServiceName="pay2")
        # vm1's agent token reports for vm1 only
        for token in (self.vm1.token, ro, svc, ""):
            r = self.srv.put("/v1/weft/telemetry/node/vm2", good, token=token)
            self.assertEqual(r.status, 403, r)
            if token:
                self.assertIn("node:write", r.json()["error"])
        # refused before the body is looked at: no field errors for them
        r = self.srv.put("/v1/weft/telemetry/node/vm2", b"{", token=ro)
        self.assertEqual(r.status, 403, r)
        self.assertEqual(self.service("pay2")["Points"], [])
        # reading takes any valid token
        r = self.srv.get("/v1/weft/telemetry/edges", token=ro)
        self.assertEqual(r.status, 200, r)
        r = self.srv.get("/v1/weft/telemetry/service/api", token="")
        self.assertEqual(r.status, 403, r)

    def test_6_proxy_restart_is_a_new_start(self):
        import os
        import signal
        base = self.settled("api")
        pid = self.vm2.status()["Proxies"][0]["Pid"]
        self.assertGreater(pid, 0)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: self.vm2.status()["Proxies"][0]["Pid"] not in (0, pid), timeout=10,
                 what="a new proxy process")
        statuses = []

        def through():
            statuses.append(call(self.up_port, "/v1/items"))
            return statuses[-1] == 200
        wait_for(through, timeout=15, what="traffic through the new proxy")
        for _ in range(10):
            statuses.append(call(self.up_port, "/v1/items"))
        # every 200 crossed the new process's inbound: counted once, from
        # its start, and nothing negative or doubled from the old one
        want = base[0] + statuses.count(200)
        got = wait_for(lambda: (lambda t: t if t[0] == want else None)(totals(self.service("api"))),
                       timeout=15, interval=0.5, what="api's count after the restart")
        self.assertEqual(got[0], want)
        self.assertEqual(self.settled("api")[0], want)

    def test_7_server_down_samples_dropped_logged_once(self):
        self.srv.stop()
        try:
            time.sleep(3.5)    # three reports or so fail
        finally:
            self.srv.start()
        for agent in (self.vm1, self.vm2):
            wait_for(lambda: "the server takes the samples again" in agent.read_log(),
                     timeout=15, what="%s reporting again" % agent.node)
            log = agent.read_log()
            self.assertEqual(log.count("samples dropped until the server takes them again"), 1,
                             log[-3000:])
        # memory only: what came before the restart is gone; new reports come
        self.assertEqual(self.service("pay")["Points"], [])
        self.assertEqual(call(self.up_port, "/v1/items"), 200)
        wait_for(lambda: totals(self.service("api"))[0] >= 1, timeout=15,
                 what="api's telemetry after the restart")


if __name__ == "__main__":
    main()
