"""Starts real weft-agent processes next to a harness.Server."""
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

from harness import BUILDDIR, Process, free_port, http_request

AGENT_BIN = os.path.join(BUILDDIR, "agent", "weft-agent")
PROXY_BIN = os.path.join(BUILDDIR, "dataplane", "weft-proxy")


def agent_token(srv, node):
    """A new agent token for node, from the server's admin token."""
    r = srv.put("/v1/acl/token", {"Kind": "agent", "NodeName": node,
                                  "Description": "agent " + node})
    assert r.status == 200, r
    return r.json()["SecretID"]


def make_token(srv, **fields):
    r = srv.put("/v1/acl/token", fields)
    assert r.status == 200, r
    return r.json()["SecretID"]


class Agent(Process):
    """A weft-agent joined to srv as node, with its own config and data dirs."""
    name = "weft-agent"

    def __init__(self, srv, node="vm1", address=None, args=(), env=None,
                 token=None, dev=False, sync_interval=60, start=True):
        self.srv = srv
        self.srv_addr = srv.addr    # what --server says; an https:// URL to test TLS
        self.node = node
        # Its own loopback address: sidecars bind on the node's address
        # (port 21000 up), so agents of tests that run at the same time must
        # not share one. Admin listeners: from a random base below the
        # ephemeral range (the agent skips ports in use), as free_port does.
        self.address = address or "127.0.%d.%d" % (random.randint(1, 254), random.randint(2, 254))
        self.admin_base = random.randint(20000, 32000)
        self.dir = tempfile.mkdtemp(prefix="weft-agent-test-")
        self.config_dir = os.path.join(self.dir, "conf")
        self.data_dir = os.path.join(self.dir, "data")
        os.makedirs(self.config_dir)
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.dev = dev
        self.token = None if dev else (token or agent_token(srv, node))
        self.token_file = os.path.join(self.dir, "token")
        if self.token:
            with open(self.token_file, "w") as f:
                f.write(self.token + "\n")
            os.chmod(self.token_file, 0o600)
        self.args = list(args)
        self.env = env
        self.sync_interval = sync_interval
        self.proc = None
        self.log_path = os.path.join(self.dir, "agent.log")
        if start:
            self.start()

    def write_config(self, name, text):
        with open(os.path.join(self.config_dir, name), "w") as f:
            f.write(text)

    def remove_config(self, name):
        os.unlink(os.path.join(self.config_dir, name))

    def command(self):
        cmd = [AGENT_BIN, "--server", self.srv_addr, "--node", self.node,
               "--address", self.address, "--config-dir", self.config_dir,
               "--data-dir", self.data_dir, "--http-addr", self.addr,
               "--sync-interval", str(self.sync_interval), "--proxy-bin", PROXY_BIN,
               "--proxy-admin-base", str(self.admin_base)]
        if self.dev:
            cmd.append("--dev")
        else:
            cmd += ["--token-file", self.token_file]
        return cmd + self.args

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=self.log, env=env)
        if not wait:
            return
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("weft-agent exited with %s:\n%s" % (
                    self.proc.returncode, self.read_log()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("weft-agent did not listen:\n" + self.read_log())

    def request(self, method, path, body=None, token="agent", timeout=30):
        """token: "agent" (its own), None (send none), or a secret."""
        return http_request("http://%s%s" % (self.addr, path), method, body,
                            self.token if token == "agent" else token, None, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body=body if body is not None else b"", **kw)

    def status(self):
        return self.get("/v1/weft/agent/status").json()

    def send(self, sig):
        self.proc.send_signal(sig)

    def close(self):
        """Stops the agent; raises if it did not exit 0 or a sanitizer spoke."""
        rc = self.stop()
        log = self.read_log()
        if not os.environ.get("WEFT_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if rc not in (0, None) or "Sanitizer" in log or "runtime error:" in log:
            raise AssertionError("weft-agent exited %s; log:\n%s" % (rc, log[-4000:]))


def wait_for(pred, timeout=10, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def close_all(agents):
    """Closes every agent, even when one of them fails its checks; then
    raises the first failure (so that no agent outlives its test)."""
    first = None
    for a in agents:
        try:
            a.close()
        except Exception as e:  # noqa: BLE001 - re-raised below
            first = first or e
    if first:
        raise first
