"""weft-server's flags and config file: errors name the flag or file:line."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def run(*args):
    p = subprocess.run([harness.SERVER_BIN] + list(args), capture_output=True, text=True,
                       timeout=10)
    return p.returncode, p.stdout + p.stderr


class SettingsTest(unittest.TestCase):
    def conf(self, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_help_lists_every_setting(self):
        rc, out = run("--help")
        self.assertEqual(rc, 0)
        for flag in ("--data-dir", "--http-addr", "--https-addr", "--tls-cert", "--tls-key",
                     "--dev", "--config", "--check", "--max-body"):
            self.assertIn(flag, out)

    def test_check_accepts_a_good_file(self):
        path = self.conf("# comment\ndata_dir = /tmp/x\nhttp-addr = \"127.0.0.1:9500\"\n\n"
                         "max_body = 2048\ndev = true\n")
        rc, out = run("--config", path, "--check")
        self.assertEqual(rc, 0, out)
        self.assertIn("valid", out)

    def test_file_errors_name_file_and_line(self):
        path = self.conf("data_dir = /tmp/x\n\nbogus_key = 1\n")
        rc, out = run("--config", path, "--check")
        self.assertEqual(rc, 2)
        self.assertIn("%s:3: unknown setting \"bogus_key\"" % path, out)
        path = self.conf("max_body = lots\n")
        rc, out = run("--config", path, "--check")
        self.assertEqual(rc, 2)
        self.assertIn("%s:1: max-body: \"lots\" is not a number" % path, out)
        path = self.conf("http_addr\n")
        rc, out = run("--config", path, "--check")
        self.assertIn("%s:1: expected \"key = value\"" % path, out)
        rc, out = run("--config", "/nonexistent.conf", "--check")
        self.assertEqual(rc, 2)
        self.assertIn("/nonexistent.conf", out)

    def test_flag_errors(self):
        rc, out = run("--no-such-flag")
        self.assertEqual(rc, 2)
        self.assertIn("--no-such-flag: unknown flag", out)
        rc, out = run("--max-body", "10", "--check")
        self.assertEqual(rc, 2)
        self.assertIn("max-body: 10 is outside", out)
        rc, out = run("--https-addr", "127.0.0.1:1", "--check")
        self.assertEqual(rc, 2)
        self.assertIn("https-addr: needs tls-cert and tls-key", out)
        rc, out = run("--log-level", "loud", "--check")
        self.assertIn("log-level", out)

    def test_shipped_config_is_valid(self):
        path = os.path.join(harness.SRCDIR, "packaging", "systemd", "server.conf")
        rc, out = run("--config", path, "--check")
        self.assertEqual(rc, 0, out)

    def test_flags_win_over_file(self):
        port = harness.free_port()
        path = self.conf("http_addr = 127.0.0.1:1\ndev = true\n")
        d = tempfile.mkdtemp()
        srv = harness.Server(dev=True, data_dir=d, port=port, args=["--config", path])
        try:
            self.assertEqual(srv.get("/v1/status/leader").status, 200)
        finally:
            srv.close()

    def test_bad_listen_address_fails_clearly(self):
        d = tempfile.mkdtemp()
        p = subprocess.run([harness.SERVER_BIN, "--dev", "--data-dir", d, "--http-addr",
                            "not-an-address"], capture_output=True, text=True, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not-an-address", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
