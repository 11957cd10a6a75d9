"""A weft-proxy process for the data-plane tests: started with debug logs
to a file, read back by pattern, stopped with SIGTERM (its exit status is
the test's to check). WEFT_PROXY_WRAPPER (e.g. "valgrind -q") runs it
under a wrapper."""
import os
import re
import signal
import subprocess
import time

from harness import BUILDDIR

PROXY_BIN = os.path.join(BUILDDIR, "dataplane", "weft-proxy")
WRAPPER = os.environ.get("WEFT_PROXY_WRAPPER", "").split()


class ProxyProcess:
    def __init__(self, log, args, ready, count=1, log_level="debug"):
        """log: the file its stderr goes to; ready: a log pattern that says
        it is listening, awaited count times; log_level None: the proxy's
        default."""
        self.log = log
        self.err = open(self.log, "wb")
        level = ["--log-level", log_level] if log_level else []
        self.proc = subprocess.Popen(WRAPPER + [PROXY_BIN] + level + args, stderr=self.err)
        self.wait_for(ready, count=count)

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def lines(self, pattern):
        return [l for l in self.text().splitlines() if re.search(pattern, l)]

    def wait_for(self, pattern, count=1, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.lines(pattern)
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                raise AssertionError("weft-proxy exited: %s" % self.text())
            time.sleep(0.05)
        raise AssertionError("no %r in the log within %ss:\n%s" % (pattern, timeout, self.text()))

    def stop(self):
        """SIGTERM (unless it has exited already); its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(10)
        self.err.close()
        return rc


def read_to_eof(sock, size=65536):
    """Every byte sock gives until the peer's end (recv returns b"")."""
    data = bytearray()
    while True:
        b = sock.recv(size)
        if not b:
            return bytes(data)
        data += b
