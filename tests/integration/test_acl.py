#!/usr/bin/python3
"""Tokens and permissions against a real weft-server (token mode)."""
import os
import stat
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def reg(node, service=None, checks=None, address="10.0.0.1"):
    body = {"Node": node, "Address": address}
    if service:
        body["Service"] = {"Service": service, "ID": service + "-1", "Port": 80}
    if checks:
        body["Checks"] = checks
    return body


class AclTest(harness.ServerTest):

    def create(self, body, token="admin", expect=200):
        r = self.srv.put("/v1/acl/token", body, token=token)
        self.assertEqual(r.status, expect, r)
        return r.json()

    def token(self, **body):
        """Creates a token; returns (secret, accessor)."""
        t = self.create(body)
        return t["SecretID"], t["AccessorID"]

    def assert_denied(self, r, *words):
        self.assertEqual(r.status, 403, r)
        msg = r.json()["error"]
        for w in words:
            self.assertIn(w, msg)
        return msg

    # ---- files ----

    def test_bootstrap_files_are_private(self):
        for name in ("admin.token", "signing.key"):
            path = os.path.join(self.srv.data_dir, name)
            mode = stat.S_IMODE(os.stat(path).st_mode)
            self.assertEqual(mode, 0o600, "%s has mode %o" % (name, mode))
        with open(os.path.join(self.srv.data_dir, "admin.token")) as f:
            text = f.read()
        self.assertTrue(text.endswith("\n") and text.count("\n") == 1)
        self.assertTrue(text.startswith("weft1."))
        # The secret is never written to the log.
        self.assertNotIn(text.strip(), self.srv.read_log())

    # ---- how tokens arrive ----

    def test_no_token_names_the_missing_permission(self):
        r = self.srv.get("/v1/catalog/nodes", token=None)
        msg = self.assert_denied(r, "no token", "read")
        self.assertIn("X-Consul-Token", msg)
        r = self.srv.put("/v1/catalog/register", reg("n-none"), token=None)
        self.assert_denied(r, "node:write", '"n-none"')

    def test_bad_tokens_refused(self):
        good = self.srv.token
        # Another server's valid token: signed with another key.
        other = harness.Server()
        try:
            foreign = other.token
        finally:
            other.close()
        tampered = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
        for bad in ("nonsense", "00000000-0000-4000-8000-000000000000", "weft1.x.y",
                    tampered, foreign, good + "x"):
            r = self.srv.get("/v1/catalog/nodes", token=bad)
            msg = self.assert_denied(r, "refused")
            self.assertNotIn(bad, msg)
        r = self.srv.get("/v1/catalog/nodes", token=foreign)
        self.assertIn("signature", r.json()["error"])

    def test_three_ways_to_send_a_token(self):
        secret, acc = self.token(Kind="read-only", Description="ways")
        r = self.srv.get("/v1/catalog/nodes", token=None, headers={"X-Consul-Token": secret})
        self.assertEqual(r.status, 200, r)
        r = self.srv.get("/v1/catalog/nodes", token=None,
                         headers={"Authorization": "Bearer " + secret})
        self.assertEqual(r.status, 200, r)
        r = self.srv.get("/v1/catalog/nodes?token=" + urllib.parse.quote(secret), token=None)
        self.assertEqual(r.status, 200, r)
        # A refusal says which token, from where, which permission, on what;
        # never the secret.
        for headers, path, where in (
                ({"X-Consul-Token": secret}, "/v1/catalog/register", "X-Consul-Token header"),
                ({"Authorization": "Bearer " + secret}, "/v1/catalog/register",
                 "Authorization header"),
                ({}, "/v1/catalog/register?token=" + urllib.parse.quote(secret),
                 "?token= parameter")):
            r = self.srv.put(path, reg("n-ways"), token=None, headers=headers)
            msg = self.assert_denied(r, acc, where, "node:write", '"n-ways"', "read-only")
            self.assertNotIn(secret, msg)

    # ---- what each kind may do ----

    def test_admin_and_operator(self):
        r = self.srv.put("/v1/catalog/register", reg("n-admin", "svc-admin"))
        self.assertEqual(r.status, 200, r)
        op, op_acc = self.token(Kind="operator")
        r = self.srv.put("/v1/catalog/register", reg("n-op", "svc-op"), token=op)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.srv.get("/v1/acl/tokens", token=op).status, 200)
        # Operators cannot mint or revoke tokens.
        r = self.srv.put("/v1/acl/token", {"Kind": "read-only"}, token=op)
        self.assert_denied(r, op_acc, "acl:write")
        r = self.srv.put("/v1/acl/token", {"Kind": "admin"}, token=op)
        self.assert_denied(r, "acl:write")
        r = self.srv.delete("/v1/acl/token/" + op_acc, token=op)
        self.assert_denied(r, "acl:write")

    def test_agent_token_is_bound_to_its_node(self):
        ag, acc = self.token(Kind="agent", NodeName="n-agent")
        r = self.srv.put("/v1/catalog/register", reg("n-agent", "web-a"), token=ag)
        self.assertEqual(r.status, 200, r)
        r = self.srv.put("/v1/catalog/register", reg("n-elsewhere", "web-a"), token=ag)
        self.assert_denied(r, acc, "agent for n-agent", "node:write", '"n-elsewhere"')
        r = self.srv.put("/v1/catalog/deregister", {"Node": "n-agent", "ServiceID": "web-a-1"},
                         token=ag)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.srv.get("/v1/catalog/nodes", token=ag).status, 200)
        self.assertEqual(self.srv.get("/v1/health/service/web-a", token=ag).status, 200)
        self.assert_denied(self.srv.get("/v1/acl/tokens", token=ag), "acl:read")

    def test_service_token_registers_only_its_service(self):
        self.assertEqual(self.srv.put("/v1/catalog/register",
                                      reg("n-svc-existing", address="10.9.9.9")).status, 200)
        sv, acc = self.token(Kind="service", ServiceName="billing")
        # Its own service, on a new node and on an existing one.
        r = self.srv.put("/v1/catalog/register", reg("n-svc-new", "billing"), token=sv)
        self.assertEqual(r.status, 200, r)
        r = self.srv.put("/v1/catalog/register",
                         reg("n-svc-existing", "billing", address="10.6.6.6"), token=sv)
        self.assertEqual(r.status, 200, r)
        # ... without changing that node's address: that needs node:write.
        node = self.srv.get("/v1/catalog/node/n-svc-existing").json()
        self.assertEqual(node["Node"]["Address"], "10.9.9.9")
        names = [s["ServiceName"] for s in self.srv.get("/v1/catalog/service/billing").json()]
        self.assertEqual(len(names), 2)
        # Another service: refused, naming it.
        r = self.srv.put("/v1/catalog/register", reg("n-svc-new", "payments"), token=sv)
        self.assert_denied(r, acc, "service for billing", "service:write", '"payments"')
        self.assertEqual(self.srv.get("/v1/catalog/service/payments").json(), [])
        # No service at all, or a node-level check: node:write is needed.
        r = self.srv.put("/v1/catalog/register", reg("n-svc-new"), token=sv)
        self.assert_denied(r, "node:write", '"n-svc-new"')
        r = self.srv.put("/v1/catalog/register",
                         reg("n-svc-new", "billing", checks=[{"Name": "disk"}]), token=sv)
        self.assert_denied(r, "node:write")
        # A check of its own service is fine.
        r = self.srv.put("/v1/catalog/register",
                         reg("n-svc-new", "billing",
                             checks=[{"Name": "http", "ServiceID": "billing-1"}]), token=sv)
        self.assertEqual(r.status, 200, r)

    def test_service_token_deregisters_only_its_instances(self):
        self.assertEqual(self.srv.put("/v1/catalog/register", reg("n-dr", "ledger")).status, 200)
        self.assertEqual(self.srv.put("/v1/catalog/register", reg("n-dr", "audit")).status, 200)
        sv, acc = self.token(Kind="service", ServiceName="ledger")
        r = self.srv.put("/v1/catalog/deregister", {"Node": "n-dr", "ServiceID": "audit-1"},
                         token=sv)
        self.assert_denied(r, acc, "service:write", '"audit"')
        r = self.srv.put("/v1/catalog/deregister", {"Node": "n-dr"}, token=sv)
        self.assert_denied(r, acc, "node:write", '"n-dr"')
        r = self.srv.put("/v1/catalog/deregister", {"Node": "n-dr", "ServiceID": "ledger-1"},
                         token=sv)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.srv.get("/v1/catalog/service/ledger").json(), [])
        self.assertEqual(len(self.srv.get("/v1/catalog/service/audit").json()), 1)
        r = self.srv.put("/v1/catalog/deregister", {"Node": "n-dr", "ServiceID": "audit-1"},
                         token=None)
        self.assert_denied(r, "no token", "node:write", '"n-dr"')

    def test_read_only_reads_but_never_writes(self):
        ro, acc = self.token(Kind="read-only")
        for path in ("/v1/catalog/nodes", "/v1/catalog/services", "/v1/health/state/any",
                     "/v1/catalog/node/server-1"):
            self.assertEqual(self.srv.get(path, token=ro).status, 200, path)
        self.assert_denied(self.srv.put("/v1/catalog/register", reg("n-ro"), token=ro),
                           acc, "node:write")
        self.assert_denied(self.srv.put("/v1/catalog/register", reg("n-ro", "x"), token=ro),
                           acc, "service:write", '"x"')
        self.assert_denied(self.srv.put("/v1/catalog/deregister", {"Node": "server-1"},
                                        token=ro), "node:write")
        self.assert_denied(self.srv.get("/v1/acl/tokens", token=ro), "acl:read")
        self.assert_denied(self.srv.put("/v1/acl/token", {"Kind": "read-only"}, token=ro),
                           "acl:write")
        # Every token may read itself.
        me = self.srv.get("/v1/acl/token/self", token=ro)
        self.assertEqual(me.status, 200, me)
        self.assertEqual(me.json()["AccessorID"], acc)
        self.assertNotIn("SecretID", me.json())

    # ---- the token API ----

    def test_create_read_list_fields(self):
        t = self.create({"Kind": "agent", "NodeName": "n7", "Description": "edge agent",
                         "ExpirationTTL": "1h"})
        for f in ("AccessorID", "SecretID", "Description", "CreateTime", "ExpirationTime",
                  "CreateIndex", "ModifyIndex", "Kind", "ServiceName", "NodeName"):
            self.assertIn(f, t)
        self.assertEqual(t["Kind"], "agent")
        self.assertEqual(t["NodeName"], "n7")
        self.assertEqual(t["NodeIdentities"][0]["NodeName"], "n7")
        self.assertEqual(t["Description"], "edge agent")
        got = self.srv.get("/v1/acl/token/" + t["AccessorID"])
        self.assertEqual(got.status, 200, got)
        body = got.json()
        self.assertNotIn("SecretID", body)   # Weft does not keep secrets
        self.assertEqual(body["CreateIndex"], t["CreateIndex"])
        self.assertEqual(body["ExpirationTime"], t["ExpirationTime"])
        self.assertGreater(got.index, 0)
        listed = self.srv.get("/v1/acl/tokens").json()
        self.assertIn(t["AccessorID"], [x["AccessorID"] for x in listed])
        self.assertTrue(all("SecretID" not in x for x in listed))
        # The secret itself appears nowhere in the log.
        self.assertNotIn(t["SecretID"], self.srv.read_log())

    def test_consul_identities_map_to_kinds(self):
        t = self.create({"ServiceIdentities": [{"ServiceName": "web"}]})
        self.assertEqual((t["Kind"], t["ServiceName"]), ("service", "web"))
        t = self.create({"NodeIdentities": [{"NodeName": "n1", "Datacenter": "dc1"}]})
        self.assertEqual((t["Kind"], t["NodeName"]), ("agent", "n1"))
        t = self.create({"Kind": "service", "ServiceIdentities": [{"ServiceName": "api"}]})
        self.assertEqual(t["ServiceName"], "api")

    def test_create_validation(self):
        cases = [
            ({}, "Kind"),
            ({"Kind": "root"}, "Kind"),
            ({"Kind": "service"}, "ServiceName"),
            ({"Kind": "agent"}, "NodeName"),
            ({"Kind": "admin", "ServiceName": "web"}, "ServiceName"),
            ({"Kind": "service", "ServiceName": "bad name"}, "ServiceName"),
            ({"Kind": "agent", "ServiceIdentities": [{"ServiceName": "web"}]},
             "ServiceIdentities"),
            ({"ServiceIdentities": [{"ServiceName": "a"}, {"ServiceName": "b"}]},
             "ServiceIdentities"),
            ({"NodeIdentities": [{"NodeName": "n1", "Datacenter": "elsewhere"}]},
             "NodeIdentities[0].Datacenter"),
            ({"Kind": "read-only", "SecretID": "mine"}, "SecretID"),
            ({"Kind": "read-only", "AccessorID": "nope"}, "AccessorID"),
            ({"Kind": "read-only", "ExpirationTTL": "soon"}, "ExpirationTTL"),
            ({"Kind": "read-only", "ExpirationTTL": "1h",
              "ExpirationTime": "2099-01-01T00:00:00Z"}, "ExpirationTTL"),
            ({"Kind": "read-only", "ExpirationTime": "2001-01-01T00:00:00Z"}, "ExpirationTime"),
            ({"Kind": "read-only", "ExpirationTime": "tomorrow"}, "ExpirationTime"),
            ({"Policies": [{"Name": "global-management"}]}, "Policies"),
        ]
        for body, field in cases:
            r = self.srv.put("/v1/acl/token", body)
            self.assertEqual(r.status, 400, (body, r))
            self.assertTrue(r.json()["error"].startswith(field), (body, r))
        t = self.create({"Kind": "read-only", "ExpirationTime": "2099-01-01T00:00:00+02:00"})
        self.assertEqual(t["ExpirationTime"], "2098-12-31T22:00:00.000Z")
        acc = "6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f01"
        self.assertEqual(self.create({"Kind": "read-only", "AccessorID": acc})["AccessorID"], acc)
        self.create({"Kind": "read-only", "AccessorID": acc}, expect=409)
        self.assertEqual(self.srv.get("/v1/acl/token/not-a-uuid").status, 400)
        self.assertEqual(
            self.srv.get("/v1/acl/token/6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1fff").status, 404)

    def test_revoke(self):
        secret, acc = self.token(Kind="operator", Description="to revoke")
        self.assertEqual(self.srv.get("/v1/catalog/nodes", token=secret).status, 200)
        r = self.srv.delete("/v1/acl/token/" + acc)
        self.assertEqual((r.status, r.json()), (200, True))
        r = self.srv.get("/v1/catalog/nodes", token=secret)
        self.assert_denied(r, acc, "revoked")
        self.assertEqual(self.srv.get("/v1/acl/token/" + acc).status, 404)
        self.assertNotIn(acc, [x["AccessorID"] for x in self.srv.get("/v1/acl/tokens").json()])
        self.assertEqual(self.srv.delete("/v1/acl/token/" + acc).status, 404)
        # A token cannot revoke itself (and lock its holder out by accident).
        me = self.srv.get("/v1/acl/token/self").json()["AccessorID"]
        r = self.srv.delete("/v1/acl/token/" + me)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(self.srv.get("/v1/catalog/nodes").status, 200)

    def test_expiry(self):
        secret, acc = self.token(Kind="read-only", ExpirationTTL="1s")
        self.assertEqual(self.srv.get("/v1/catalog/nodes", token=secret).status, 200)
        time.sleep(1.2)
        r = self.srv.get("/v1/catalog/nodes", token=secret)
        self.assert_denied(r, acc, "expired")


class AclRestartTest(harness.ServerTest):
    """Keys, tokens and revocations survive a restart."""

    def test_restart(self):
        admin = self.srv.token
        keep = self.srv.put("/v1/acl/token", {"Kind": "read-only"}).json()
        gone = self.srv.put("/v1/acl/token", {"Kind": "read-only"}).json()
        self.assertEqual(self.srv.delete("/v1/acl/token/" + gone["AccessorID"]).status, 200)
        self.srv.restart()
        self.assertEqual(self.srv.token, admin)   # no second bootstrap
        self.assertEqual(self.srv.get("/v1/catalog/nodes", token=keep["SecretID"]).status, 200)
        self.assert_denied = AclTest.assert_denied.__get__(self)
        r = self.srv.get("/v1/catalog/nodes", token=gone["SecretID"])
        self.assert_denied(r, gone["AccessorID"], "revoked")
        self.assertEqual(len(self.srv.get("/v1/acl/tokens").json()), 2)


class DevModeTest(harness.ServerTest):
    dev = True

    def test_dev_mode_allows_everything_and_warns(self):
        self.assertIn("DEV MODE", self.srv.read_log())
        self.assertIn("authentication is OFF", self.srv.read_log())
        r = self.srv.put("/v1/catalog/register", reg("n-dev", "web"), token=None)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.srv.get("/v1/catalog/nodes", token=None).status, 200)
        self.assertFalse(os.path.exists(os.path.join(self.srv.data_dir, "admin.token")))
        r = self.srv.put("/v1/acl/token", {"Kind": "admin"}, token=None)
        self.assertEqual(r.status, 401, r)
        self.assertIn("ACL support disabled", r.json()["error"])


if __name__ == "__main__":
    harness.main()
