"""The systemd units (packaging/systemd/*.service.in, made by make with the
build's paths) pass `systemd-analyze verify` with no complaint, and say what
the programs rely on: Type=notify (both send READY=1, see
test_weft_agent.py), a restart policy, the agent's KillMode=mixed so that it
drains its own proxies, and the hardening options."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import BUILDDIR, main

UNITS = {"weft-server": "server/weft-server", "weft-agent": "agent/weft-agent"}


def unit_text(name):
    with open(os.path.join(BUILDDIR, "packaging", "systemd", name + ".service")) as f:
        return f.read()


class UnitsTest(unittest.TestCase):
    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_systemd_analyze_verify(self):
        d = tempfile.mkdtemp(prefix="weft-units-")
        try:
            paths = []
            for name in UNITS:
                text = unit_text(name)
                # the programs where this build made them, not where make install puts them
                for prog, rel in list(UNITS.items()) + [("weft-proxy", "dataplane/weft-proxy")]:
                    text = re.sub(r"/[^\s=]*/bin/%s\b" % prog, os.path.join(BUILDDIR, rel), text)
                path = os.path.join(d, name + ".service")
                with open(path, "w") as f:
                    f.write(text)
                paths.append(path)
            r = subprocess.run(["systemd-analyze", "verify"] + paths, capture_output=True,
                               text=True, cwd=d)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr.strip(), "", "systemd-analyze complained")
            self.assertEqual(r.stdout.strip(), "")
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_what_the_programs_rely_on(self):
        for name in UNITS:
            text = unit_text(name)
            self.assertIn("\nType=notify\n", text, name)
            self.assertIn("\nRestart=on-failure\n", text, name)
            for opt in ("NoNewPrivileges=true", "ProtectSystem=strict", "ProtectHome=true",
                        "PrivateTmp=true", "CapabilityBoundingSet=\n", "UMask=0077"):
                self.assertIn("\n" + opt, text, "%s lacks %s" % (name, opt))
            self.assertNotIn("@bindir@", text)
        agent = unit_text("weft-agent")
        self.assertIn("\nKillMode=mixed\n", agent)
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", agent)
        self.assertIn("--check", agent)


if __name__ == "__main__":
    main()
