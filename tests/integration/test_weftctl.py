"""weftctl against a real weft-server: catalog commands, help and usage,
global flags and environment, input-file errors, server and connection
errors, HTTPS with --ca-file.

The KV, lock, token and members commands are in test_weftctl_pending.py
(their server endpoints land in other branches)."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CTL_BIN, Server, ServerTest, free_port  # noqa: E402


def run_ctl(*args, addr=None, env=None, input=None, timeout=30):
    cmd = [CTL_BIN]
    if addr:
        cmd += ["--address", addr]
    cmd += list(args)
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("WEFT_HTTP_ADDR", "WEFT_HTTP_TOKEN")}
    full_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env,
                          input=input, timeout=timeout)


class WeftctlCatalogTest(ServerTest):
    dev = True

    def ctl(self, *args, **kw):
        return run_ctl(*args, addr=self.srv.addr, **kw)

    def write(self, name, text):
        path = os.path.join(self.srv.data_dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # ---- help and usage ----

    def test_help_lists_every_command(self):
        r = run_ctl("help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for cmd in ("services", "catalog services", "catalog nodes", "catalog register",
                    "catalog deregister", "kv get", "kv put", "kv delete", "lock",
                    "token create", "token list", "token read", "token revoke",
                    "token self", "members"):
            self.assertIn("  " + cmd + " ", r.stdout)
        self.assertIn("-address HOST:PORT", r.stdout)

    def test_command_help(self):
        for args in (["kv", "put", "-h"], ["help", "kv", "put"], ["kv", "put", "--help"]):
            r = run_ctl(*args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.startswith("Usage: weftctl kv put "), r.stdout)
            self.assertIn("-modify-index N", r.stdout)
            self.assertIn("-token SECRET", r.stdout)

    def test_usage_errors_exit_2(self):
        r = run_ctl("kv", "put")
        self.assertEqual(r.returncode, 2)
        self.assertIn("weftctl: kv put: KEY is required", r.stderr)
        r = self.ctl("catalog", "nodes", "-bogus")
        self.assertEqual(r.returncode, 2)
        self.assertIn("weftctl: catalog nodes: unknown flag -bogus", r.stderr)
        r = self.ctl("catalog", "register", "-node", "n1", "-address", "10.0.0.1", "-port", "99999")
        self.assertEqual(r.returncode, 2)
        self.assertIn("flag -port: 99999 is out of range [0, 65535]", r.stderr)
        r = run_ctl("frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn('unknown command "frobnicate"', r.stderr)
        r = run_ctl("kv")
        self.assertEqual(r.returncode, 2)
        self.assertIn("kv get", r.stderr)
        r = self.ctl("services", "--output", "yaml")
        self.assertEqual(r.returncode, 2)
        self.assertIn('"yaml" is not json or table', r.stderr)
        r = self.ctl("catalog", "register", "-node", "n1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("-address is required with -node", r.stderr)
        r = self.ctl("catalog", "nodes", "extra")
        self.assertEqual(r.returncode, 2)
        self.assertIn('weftctl: catalog nodes: unexpected argument "extra"', r.stderr)
        r = self.ctl("config", "list", "-kind", "mesh", "extra")
        self.assertEqual(r.returncode, 2)
        self.assertIn('unexpected argument "extra"', r.stderr)

    # ---- catalog ----

    def test_register_with_flags_and_list(self):
        r = self.ctl("catalog", "register", "-node", "web-1", "-address", "10.0.0.5",
                     "-service", "web", "-port", "8080", "-tag", "v1", "--tag", "primary",
                     "-meta", "version=1.2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "Registered service web on node web-1\n")
        svc = self.srv.get("/v1/catalog/service/web").json()
        self.assertEqual(len(svc), 1)
        self.assertEqual(svc[0]["Node"], "web-1")
        self.assertEqual(svc[0]["Address"], "10.0.0.5")
        self.assertEqual(svc[0]["ServicePort"], 8080)
        self.assertEqual(svc[0]["ServiceTags"], ["v1", "primary"])
        self.assertEqual(svc[0]["ServiceMeta"], {"version": "1.2"})

        r = self.ctl("services")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(["web", "v1,primary"], [l.split() for l in r.stdout.splitlines()])
        r = self.ctl("catalog", "services")
        self.assertIn("web", r.stdout.splitlines())
        r = self.ctl("catalog", "services", "-tags")
        self.assertIn(["web", "v1,primary"], [l.split() for l in r.stdout.splitlines()])

        r = self.ctl("catalog", "nodes")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["Node", "ID", "Address", "DC"])
        row = [l.split() for l in lines if l.startswith("web-1 ")]
        self.assertEqual(row, [["web-1", "10.0.0.5", "dc1"]])
        server_row = [l.split() for l in lines if l.startswith("server-1 ")][0]
        self.assertEqual(len(server_row[1]), 8)   # the ID, shortened

    def test_output_json_is_the_servers_json(self):
        self.ctl("catalog", "register", "-node", "j-1", "-address", "10.0.0.9",
                 "-service", "jsvc", "-tag", "t")
        r = self.ctl("--output", "json", "services")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), self.srv.get("/v1/catalog/services").json())
        r = self.ctl("catalog", "nodes", "-output=json")
        self.assertEqual(json.loads(r.stdout), self.srv.get("/v1/catalog/nodes").json())

    def test_register_file_and_stdin(self):
        body = {"Node": "file-1", "Address": "10.1.0.1",
                "Service": {"Service": "api", "ID": "api-1", "Port": 9000, "Tags": ["x"]},
                "Check": {"Name": "api alive", "ServiceID": "api-1", "Status": "passing"}}
        path = self.write("reg.json", json.dumps(body, indent=2))
        r = self.ctl("catalog", "register", "-file", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "Registered service api on node file-1\n")
        svc = self.srv.get("/v1/health/service/api").json()
        self.assertEqual(svc[0]["Service"]["ID"], "api-1")
        self.assertEqual([c["Status"] for c in svc[0]["Checks"]], ["passing"])

        r = self.ctl("catalog", "register", "--file=-",
                     input=json.dumps({"Node": "stdin-1", "Address": "10.1.0.2"}))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "Registered node stdin-1\n")
        self.assertEqual(self.srv.get("/v1/catalog/node/stdin-1").json()["Node"]["Address"], "10.1.0.2")

    def test_register_file_syntax_error_names_file_line_column(self):
        path = self.write("bad.json", '{\n  "Node": "bad-1",\n  "Address": 10.0.0.1\n}\n')
        r = self.ctl("catalog", "register", "-file", path)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertTrue(r.stderr.startswith("weftctl: %s:3:" % path), r.stderr)
        self.assertIsNone(self.srv.get("/v1/catalog/node/bad-1").json())

    def test_register_file_missing_field_names_file_and_field(self):
        path = self.write("nosvc.json", json.dumps(
            {"Node": "m-1", "Address": "10.0.0.1", "Service": {"Port": 80}}))
        r = self.ctl("catalog", "register", "-file", path)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "weftctl: %s: Service.Service: is required\n" % path)
        path = self.write("noaddr.json", json.dumps({"Node": "m-1"}))
        r = self.ctl("catalog", "register", "-file", path)
        self.assertEqual(r.stderr, "weftctl: %s: Address: is required\n" % path)
        r = self.ctl("catalog", "register", "-file", path + ".missing")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "weftctl: %s.missing: No such file or directory\n" % path)
        self.assertIsNone(self.srv.get("/v1/catalog/node/m-1").json())

    def test_server_error_message_and_exit_1(self):
        r = self.ctl("catalog", "register", "-node", "bad name", "-address", "10.0.0.1")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "weftctl: Node: \"bad name\" is not a valid node name "
                         "(letters, digits, '-', '_', '.') (HTTP 400)\n")

    def test_deregister_service_then_node(self):
        self.ctl("catalog", "register", "-node", "d-1", "-address", "10.0.0.7",
                 "-service", "dsvc", "-service-id", "dsvc-1", "-port", "1")
        self.ctl("catalog", "register", "-node", "d-1", "-address", "10.0.0.7",
                 "-service", "dsvc2")
        r = self.ctl("catalog", "deregister", "-node", "d-1", "-service-id", "dsvc-1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "Deregistered service dsvc-1 from node d-1\n")
        self.assertEqual(self.srv.get("/v1/catalog/service/dsvc").json(), [])
        self.assertEqual(len(self.srv.get("/v1/catalog/service/dsvc2").json()), 1)
        r = self.ctl("catalog", "deregister", "-node", "d-1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "Deregistered node d-1\n")
        self.assertIsNone(self.srv.get("/v1/catalog/node/d-1").json())
        r = self.ctl("catalog", "deregister")
        self.assertEqual(r.returncode, 2)
        self.assertIn("-node is required", r.stderr)

    # ---- addresses and environment ----

    def test_connection_refused(self):
        port = free_port()
        r = run_ctl("services", addr="127.0.0.1:%d" % port)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "weftctl: cannot reach weft-server at 127.0.0.1:%d: "
                         "Connection refused\n" % port)
        r = run_ctl("services", env={"WEFT_HTTP_ADDR": "http://127.0.0.1:%d" % port})
        self.assertEqual(r.stderr, "weftctl: cannot reach weft-server at 127.0.0.1:%d: "
                         "Connection refused\n" % port)
        r = run_ctl("services", addr="127.0.0.1:0")
        self.assertEqual(r.returncode, 1)
        self.assertIn("the port must be a number from 1 to 65535", r.stderr)

    def test_env_address_and_flags_win(self):
        self.ctl("catalog", "register", "-node", "e-1", "-address", "10.0.0.8",
                 "-service", "envsvc")
        r = run_ctl("catalog", "services", env={"WEFT_HTTP_ADDR": self.srv.addr})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("envsvc", r.stdout.splitlines())
        dead = "127.0.0.1:%d" % free_port()
        # The flag wins over the environment, before or after the command,
        # with one dash or two.
        for args in (["--address", self.srv.addr, "services"],
                     ["services", "-address", self.srv.addr],
                     ["services", "--address=" + self.srv.addr],
                     ["-address=http://" + self.srv.addr, "catalog", "services"],
                     ["services", "-http-addr", self.srv.addr]):
            r = run_ctl(*args, env={"WEFT_HTTP_ADDR": dead})
            self.assertEqual(r.returncode, 0, (args, r.stderr))
            self.assertIn("envsvc", r.stdout)
        # In catalog register, -address is the node's; -http-addr is the server's.
        r = run_ctl("catalog", "register", "-http-addr", self.srv.addr, "-node", "e-2",
                    "-address", "10.0.0.12", env={"WEFT_HTTP_ADDR": dead})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.srv.get("/v1/catalog/node/e-2").json()["Node"]["Address"],
                         "10.0.0.12")

    def test_https_with_ca_file(self):
        tmp = tempfile.mkdtemp(prefix="weftctl-tls-")
        key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        port = free_port()
        srv = Server(dev=True, args=["--https-addr", "127.0.0.1:%d" % port,
                                     "--tls-cert", cert, "--tls-key", key])
        try:
            url = "https://127.0.0.1:%d" % port
            r = run_ctl("catalog", "nodes", "--ca-file", cert, addr=url)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("server-1", r.stdout)
            # Without the CA the self-signed certificate is refused.
            r = run_ctl("catalog", "nodes", addr=url)
            self.assertEqual(r.returncode, 1)
            self.assertTrue(r.stderr.startswith(
                "weftctl: cannot reach weft-server at %s: " % url), r.stderr)
        finally:
            srv.close()


if __name__ == "__main__":
    harness.main()
