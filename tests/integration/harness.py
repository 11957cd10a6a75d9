"""Starts real weft-server processes for integration tests.

Each Server gets a fresh data directory and a free loopback port. Requests
go through urllib so that tests see exactly what the server sends.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

BUILDDIR = os.environ.get("WEFT_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SRCDIR = os.environ.get("WEFT_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER_BIN = os.path.join(BUILDDIR, "server", "weft-server")
CTL_BIN = os.path.join(BUILDDIR, "ctl", "weftctl")


_given_ports = set()


def free_port():
    """A free port on 127.0.0.1, never one this process was given before,
    and below the kernel's ephemeral range (32768 and up): between this
    check and the test's bind, a port of that range may be taken by any
    outgoing connection or bind(0) on the machine, a port below it only by
    someone else picking the same one on purpose. (And the kernel may hand
    the same port to two binds in a row: a test asking for two must get
    two.)"""
    for _ in range(1000):
        port = random.randint(20000, 32767)
        if port in _given_ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given_ports.add(port)
        return port
    raise RuntimeError("no fresh free port in 1000 tries")


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def index(self):
        return int(self.headers.get("X-Consul-Index", "0"))

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


def http_request(url, method, body=None, token=None, headers=None, timeout=30):
    """A request with urllib; any status is a Response (errors too)."""
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        if isinstance(data, str):
            data = data.encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("X-Consul-Token", token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, resp.headers, resp.read().decode(errors="replace"))
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read().decode(errors="replace"))


class Process:
    """A program started by a test, logging to self.log_path (name: for
    messages). Subclasses set self.proc and self.log."""
    name = "process"

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("%s did not stop on %s" % (self.name, sig))
        self.log.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.proc = None


class Server(Process):
    """A weft-server process. dev=True turns authentication off."""
    name = "weft-server"

    def __init__(self, dev=False, args=(), data_dir=None, port=None):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="weft-test-")
        self.port = port or free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.dev = dev
        self.args = list(args)
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "server.log")
        self.token = None
        self.start()

    def start(self):
        cmd = [SERVER_BIN, "--data-dir", self.data_dir, "--http-addr", self.addr,
               "--node-name", "server-1"] + self.args
        if self.dev:
            cmd.append("--dev")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("weft-server exited with %s:\n%s" % (
                    self.proc.returncode, self.read_log()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.02)
        else:
            raise RuntimeError("weft-server did not listen:\n" + self.read_log())
        tok = os.path.join(self.data_dir, "admin.token")
        if not self.dev and os.path.exists(tok):
            with open(tok) as f:
                self.token = f.read().strip()

    def url(self, path):
        return "http://%s%s" % (self.addr, path)

    def request(self, method, path, body=None, token="admin", headers=None, timeout=30):
        """token: "admin" (the bootstrap token), None (send none), or a secret."""
        return http_request(self.url(path), method, body,
                            self.token if token == "admin" else token, headers, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body=body if body is not None else b"", **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        try:
            self.stop()
        finally:
            if self.own_dir and not os.environ.get("WEFT_KEEP_TEST_DIRS"):
                shutil.rmtree(self.data_dir, ignore_errors=True)


class ServerTest(unittest.TestCase):
    """Starts one server per test class; dev = True to run without tokens."""
    dev = False
    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(dev=cls.dev, args=cls.server_args)

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        log = cls.srv.read_log()
        cls.srv.close()
        # Every server must stop cleanly on SIGTERM, and sanitizers must be quiet.
        if rc != 0 or "Sanitizer" in log or "runtime error:" in log:
            raise AssertionError("weft-server exited %s; log:\n%s" % (rc, log[-4000:]))


def main():
    unittest.main(verbosity=2, buffer=False)
