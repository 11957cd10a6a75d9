"""weft-agent's gRPC, H2PING and UDP checks and the thresholds, against
real services: a gRPC server of grpcio (Debian's python3-grpcio) speaking
the standard health protocol, and HTTP/2, in plaintext (h2c) and over TLS,
an HTTP/1.1 server, and UDP sockets.
The results are read back as users see them: the agent's /v1/agent/checks
and the server's /v1/health/checks."""
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import unittest
from concurrent import futures

os.environ.setdefault("GRPC_VERBOSITY", "NONE")   # its own log of refused handshakes
import grpc  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, main  # noqa: E402
from agentharness import Agent, close_all, wait_for  # noqa: E402
from test_https import Certs  # noqa: E402

SERVING, NOT_SERVING = 1, 2


class Health:
    """grpc.health.v1.Health/Check with the messages as raw bytes (protobuf
    by hand: a request's field 1 is the service, a response's the status)."""

    def __init__(self):
        self.status = {"": SERVING, "web": SERVING, "down": NOT_SERVING}
        self.calls = 0

    def check(self, request, context):
        self.calls += 1
        service = b""
        if len(request) >= 2 and request[0] == 0x0A:
            service = request[2:2 + request[1]]
        st = self.status.get(service.decode())
        if st is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return bytes([0x08, st])

    def server(self, creds=None):
        s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "grpc.health.v1.Health",
            {"Check": grpc.unary_unary_rpc_method_handler(self.check)}),))
        port = (s.add_secure_port("127.0.0.1:0", creds) if creds
                else s.add_insecure_port("127.0.0.1:0"))
        s.start()
        return s, port


class Http1(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


class UdpEcho(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.got = []

    def run(self):
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            self.got.append(data)
            self.sock.sendto(data, peer)


def closed_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class CheckKindsTest(unittest.TestCase):
    def setUp(self):
        self.srv = Server()
        self.agents = []
        self.health = Health()
        self.plain, self.plain_port = self.health.server()
        certs = Certs()
        cert, key = certs.issue("grpc", "IP:127.0.0.1")
        with open(cert, "rb") as c, open(key, "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        self.tls, self.tls_port = self.health.server(creds)
        self.echo = UdpEcho()
        self.echo.start()
        self.http1 = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Http1)
        self.http1_port = self.http1.server_address[1]
        threading.Thread(target=self.http1.serve_forever, daemon=True).start()

    def tearDown(self):
        try:
            close_all(self.agents)
        finally:
            self.plain.stop(0)
            self.tls.stop(0)
            self.echo.stop = True
            self.echo.join()
            self.echo.sock.close()
            self.http1.shutdown()
            self.http1.server_close()
            self.srv.close()

    def register(self, agent, checks):
        r = agent.put("/v1/agent/service/register",
                      {"Name": "api", "ID": "api", "Port": self.plain_port, "Checks": checks})
        self.assertEqual(r.status, 200, r.body)

    def local_checks(self, agent):
        return agent.get("/v1/agent/checks").json()

    def test_grpc_and_udp_checks(self):
        a = Agent(self.srv)
        self.agents.append(a)
        p, t = self.plain_port, self.tls_port
        udp_closed = closed_udp_port()
        checks = [
            {"CheckID": "grpc", "GRPC": "127.0.0.1:%d" % p, "Interval": "1s"},
            {"CheckID": "grpc-web", "GRPC": "127.0.0.1:%d/web" % p, "Interval": "1s"},
            {"CheckID": "grpc-down", "GRPC": "127.0.0.1:%d/down" % p, "Interval": "1s",
             "Status": "passing"},
            {"CheckID": "grpc-nope", "GRPC": "127.0.0.1:%d/nope" % p, "Interval": "1s",
             "Status": "passing"},
            {"CheckID": "grpc-tls", "GRPC": "127.0.0.1:%d/web" % t, "GRPCUseTLS": True,
             "TLSSkipVerify": True, "Interval": "1s"},
            # the test CA is not among the machine's: refused
            {"CheckID": "grpc-tls-verify", "GRPC": "127.0.0.1:%d" % t, "GRPCUseTLS": True,
             "Interval": "1s", "Status": "passing"},
            {"CheckID": "udp", "UDP": "127.0.0.1:%d" % self.echo.port, "Interval": "1s"},
            # grpcio's server is HTTP/2: it answers a PING, in h2c and TLS
            {"CheckID": "h2ping", "H2PING": "127.0.0.1:%d" % p, "H2PingUseTLS": False,
             "Interval": "1s"},
            {"CheckID": "h2ping-tls", "H2PING": "localhost:%d" % t, "TLSSkipVerify": True,
             "Interval": "1s"},
            # an HTTP/1.1 server is not
            {"CheckID": "h2ping-http1", "H2PING": "127.0.0.1:%d" % self.http1_port,
             "H2PingUseTLS": False, "Interval": "1s", "Status": "passing"},
            {"CheckID": "udp-closed", "UDP": "127.0.0.1:%d" % udp_closed, "Interval": "1s",
             "Status": "passing"},
        ]
        self.register(a, checks)
        want = {
            "grpc": ("passing", "gRPC check 127.0.0.1:%d: success" % p),
            "grpc-web": ("passing", "gRPC check 127.0.0.1:%d/web: success" % p),
            "grpc-down": ("critical", "gRPC check 127.0.0.1:%d/down: health status NOT_SERVING" % p),
            "grpc-nope": ("critical", "gRPC check 127.0.0.1:%d/nope: rpc error: code = NotFound "
                          "desc = unknown service" % p),
            "grpc-tls": ("passing", "gRPC check 127.0.0.1:%d/web: success" % t),
            "udp": ("passing", "UDP connect 127.0.0.1:%d: Success" % self.echo.port),
            "udp-closed": ("critical", "read udp 127.0.0.1:%d: Connection refused" % udp_closed),
            "h2ping": ("passing", "HTTP2 ping was successful"),
            "h2ping-tls": ("passing", "HTTP2 ping was successful"),
            "h2ping-http1": ("critical", "Failed to ping to 127.0.0.1:%d: a frame is larger than "
                             "the 16384 bytes allowed (not an HTTP/2 server?)" % self.http1_port),
        }

        def settled():
            got = self.local_checks(a)
            return all(c in got and (got[c]["Status"], got[c]["Output"]) == w
                       for c, w in want.items()) and \
                got.get("grpc-tls-verify", {}).get("Status") == "critical"
        try:
            wait_for(settled, timeout=15, what="every check's first result")
        except AssertionError:
            self.fail("checks: %r" % {k: (v["Status"], v["Output"])
                                      for k, v in self.local_checks(a).items()})
        got = self.local_checks(a)
        self.assertIn("certificate", got["grpc-tls-verify"]["Output"])
        self.assertEqual(got["grpc"]["Type"], "grpc")
        self.assertEqual(got["udp"]["Type"], "udp")
        self.assertEqual(got["h2ping"]["Type"], "h2ping")
        self.assertFalse(got["h2ping"]["Definition"]["H2PingUseTLS"])
        self.assertTrue(got["h2ping-tls"]["Definition"]["H2PingUseTLS"])   # Consul's default
        self.assertEqual(got["grpc"]["Definition"]["GRPC"], "127.0.0.1:%d" % p)
        self.assertTrue(got["grpc-tls"]["Definition"]["GRPCUseTLS"])
        self.assertIn(b"weft-agent health check", self.echo.got)
        # the server's health view has them, with their types
        wait_for(lambda: {c["CheckID"]: c["Status"] for c in
                          self.srv.get("/v1/health/checks/api").json()}.get("udp-closed")
                 == "critical", what="the results in the catalog")
        srv_checks = {c["CheckID"]: c for c in self.srv.get("/v1/health/checks/api").json()}
        self.assertEqual(srv_checks["grpc-down"]["Type"], "grpc")
        self.assertEqual(srv_checks["grpc-web"]["Status"], "passing")
        self.assertEqual(srv_checks["udp"]["Definition"]["UDP"], "127.0.0.1:%d" % self.echo.port)
        # the application stops serving web: its check follows
        self.health.status["web"] = NOT_SERVING
        wait_for(lambda: self.local_checks(a)["grpc-web"]["Status"] == "critical", timeout=5,
                 what="grpc-web critical")

    def test_thresholds(self):
        a = Agent(self.srv)
        self.agents.append(a)
        p = self.plain_port
        self.register(a, [{"CheckID": "web", "GRPC": "127.0.0.1:%d/web" % p, "Interval": "1s",
                           "SuccessBeforePassing": 2, "FailuresBeforeWarning": 1,
                           "FailuresBeforeCritical": 3}])
        wait_for(lambda: self.local_checks(a).get("web", {}).get("Status") == "passing",
                 what="the first result, at once")
        self.assertEqual(self.local_checks(a)["web"]["Definition"]["FailuresBeforeCritical"], 3)
        self.health.status["web"] = NOT_SERVING
        calls = self.health.calls
        # one failure: warning; critical only at the third in a row
        wait_for(lambda: self.local_checks(a)["web"]["Status"] == "warning", timeout=5,
                 what="warning after the first failure")
        self.assertLess(self.health.calls, calls + 3)
        wait_for(lambda: self.local_checks(a)["web"]["Status"] == "critical", timeout=8,
                 what="critical after the third")
        self.assertGreaterEqual(self.health.calls, calls + 3)
        self.health.status["web"] = SERVING
        calls = self.health.calls
        wait_for(lambda: self.local_checks(a)["web"]["Status"] == "passing", timeout=8,
                 what="passing after two successes")
        self.assertGreaterEqual(self.health.calls, calls + 2)

    def curl(self, agent, path, accept=None):
        """(HTTP code, body) of a GET through curl, as a load balancer's
        health probe or a script would ask."""
        cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H",
               "X-Consul-Token: " + agent.token, "http://%s%s" % (agent.addr, path)]
        if accept:
            cmd += ["-H", "Accept: " + accept]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True).stdout
        body, code = out.rsplit("\n", 1)
        return int(code), body

    def test_local_service_health(self):
        """/v1/agent/health/service/name/:name and /id/:id: the worst status
        of a service's checks (and the node's) as 200, 429 or 503, in JSON
        or as text."""
        a = Agent(self.srv)
        self.agents.append(a)
        p = self.plain_port
        for sid, svc in (("api-1", "web"), ("api-2", "web")):
            r = a.put("/v1/agent/service/register", {
                "Name": "api", "ID": sid, "Port": p,
                "Checks": [{"CheckID": sid + "-grpc", "GRPC": "127.0.0.1:%d/%s" % (p, svc),
                            "Interval": "1s", "FailuresBeforeWarning": 1,
                            "FailuresBeforeCritical": 3}]})
            self.assertEqual(r.status, 200, r.body)
        wait_for(lambda: self.curl(a, "/v1/agent/health/service/name/api?format=text")
                 == (200, "passing"), what="both instances passing")
        code, body = self.curl(a, "/v1/agent/health/service/name/api")
        self.assertEqual(code, 200)
        infos = json.loads(body)
        self.assertEqual(sorted(i["Service"]["ID"] for i in infos), ["api-1", "api-2"])
        self.assertEqual({i["AggregatedStatus"] for i in infos}, {"passing"})
        self.assertEqual(infos[0]["Checks"][0]["Type"], "grpc")
        code, body = self.curl(a, "/v1/agent/health/service/id/api-1", accept="text/plain")
        self.assertEqual((code, body), (200, "passing"))
        # web stops serving: one failure is a warning (429), three critical (503)
        self.health.status["web"] = NOT_SERVING
        wait_for(lambda: self.curl(a, "/v1/agent/health/service/name/api?format=text")
                 == (429, "warning"), timeout=5, what="429 warning")
        wait_for(lambda: self.curl(a, "/v1/agent/health/service/id/api-2?format=text")
                 == (503, "critical"), timeout=8, what="503 critical")
        code, body = self.curl(a, "/v1/agent/health/service/id/api-2")
        self.assertEqual(code, 503)
        self.assertEqual(json.loads(body)["AggregatedStatus"], "critical")
        # unknown: 404 both ways
        self.assertEqual(self.curl(a, "/v1/agent/health/service/name/nope?format=text"),
                         (404, "ServiceName nope Not Found"))
        code, body = self.curl(a, "/v1/agent/health/service/name/nope")
        self.assertEqual((code, json.loads(body)), (404, []))
        self.assertEqual(self.curl(a, "/v1/agent/health/service/id/nope?format=text"),
                         (404, "ServiceId nope not found"))

    def test_bad_definitions_name_the_field(self):
        a = Agent(self.srv)
        self.agents.append(a)
        cases = [
            ({"CheckID": "x", "GRPC": "127.0.0.1", "Interval": "1s"},
             'Checks[0].GRPC: "127.0.0.1" is not HOST:PORT or HOST:PORT/SERVICE'),
            ({"CheckID": "x", "UDP": "localhost", "Interval": "1s"},
             'Checks[0].UDP: "localhost" is not HOST:PORT'),
            ({"CheckID": "x", "UDP": "127.0.0.1:53"},
             "Checks[0].Interval: required for a udp check, at least 100ms"),
            ({"CheckID": "x", "GRPC": "127.0.0.1:1", "TCP": "127.0.0.1:1", "Interval": "1s"},
             "Checks[0]: give only one of HTTP, TCP, UDP, GRPC, H2PING, TTL, Args, AliasService"),
            ({"CheckID": "x", "TCP": "127.0.0.1:1", "Interval": "1s",
              "FailuresBeforeCritical": -1},
             "Checks[0].FailuresBeforeCritical:"),
        ]
        for check, want in cases:
            r = a.put("/v1/agent/service/register", {"Name": "bad", "Port": 1, "Checks": [check]})
            self.assertEqual(r.status, 400, (check, r.body))
            self.assertIn(want, r.json()["error"], check)
        self.assertNotIn("bad", a.get("/v1/agent/services").json())


if __name__ == "__main__":
    main()
