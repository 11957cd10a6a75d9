"""examples/vm-mesh/run.sh as a newcomer runs it (root: it creates network
namespaces): the mesh comes up, the allowed call goes through both
sidecars, the one the intention denies gets the proxy's 403, and `down`
leaves no namespace and no process behind."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BUILDDIR, SRCDIR, main

RUN = os.path.join(SRCDIR, "examples", "vm-mesh", "run.sh")


def can_netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    r = subprocess.run(["ip", "netns", "add", "weft-probe"], capture_output=True)
    if r.returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", "weft-probe"], capture_output=True)
    return True


@unittest.skipUnless(can_netns(), "needs root and `ip netns` (network namespaces)")
class VmMeshTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="weft-vm-mesh-")
        self.env = dict(os.environ, WEFT_VM_MESH_DIR=self.dir, WEFT_BUILD=BUILDDIR)

    def tearDown(self):
        subprocess.run([RUN, "down"], env=self.env, capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    def vm1(self, *args):
        return subprocess.run(["ip", "netns", "exec", "weft-vm1", "curl", "-s", "-m", "5"]
                              + list(args), capture_output=True, text=True, timeout=30)

    def test_up_call_deny_down(self):
        r = subprocess.run([RUN, "up"], env=self.env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("The mesh is up", r.stdout)
        ok = self.vm1("http://127.0.0.1:9191/v1/items")
        self.assertIn('"service": "api"', ok.stdout)
        self.assertIn("/svc/web", ok.stdout)
        denied = self.vm1("-i", "-X", "DELETE", "http://127.0.0.1:9191/v1/items")
        self.assertIn("403 Forbidden", denied.stdout)
        self.assertIn("X-Weft-Denied-By:", denied.stdout)
        via_web = self.vm1("http://127.0.0.1:8080/v1/items")
        self.assertIn('"api_said"', via_web.stdout)
        r = subprocess.run([RUN, "down"], env=self.env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        self.assertNotIn("weft-vm1", ns)
        left = subprocess.run(["pgrep", "-f", self.dir], capture_output=True, text=True).stdout
        self.assertEqual(left.strip(), "", "processes left after down")


if __name__ == "__main__":
    main()
