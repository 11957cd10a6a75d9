"""The web UI's files: served under /ui/ without a token, with their content
types, ETags (304 on a match) and security headers; / redirects there."""
import urllib.error
import urllib.request

import os

from harness import SRCDIR, ServerTest, main

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class TestUI(ServerTest):
    def get(self, path, headers=None):
        return self.srv.get(path, token=None, headers=headers)

    def test_root_redirects_to_ui(self):
        opener = urllib.request.build_opener(NoRedirect)
        for path in ("/", "/ui"):
            try:
                opener.open(self.srv.url(path))
                self.fail("no redirect for " + path)
            except urllib.error.HTTPError as e:
                self.assertEqual(e.code, 302)
                self.assertEqual(e.headers["Location"], "/ui/")

    def test_files_need_no_token_and_carry_security_headers(self):
        for path, ctype in (("/ui/", "text/html; charset=utf-8"),
                            ("/ui/index.html", "text/html; charset=utf-8"),
                            ("/ui/app.css", "text/css; charset=utf-8"),
                            ("/ui/js/app.js", "text/javascript; charset=utf-8"),
                            ("/ui/favicon.svg", "image/svg+xml")):
            r = self.get(path)
            self.assertEqual(r.status, 200, path)
            self.assertEqual(r.headers["Content-Type"], ctype, path)
            self.assertEqual(r.headers["Content-Security-Policy"], CSP, path)
            self.assertEqual(r.headers["X-Content-Type-Options"], "nosniff")
            self.assertEqual(r.headers["Referrer-Policy"], "no-referrer")
            self.assertEqual(r.headers["Cache-Control"], "no-cache")
            self.assertRegex(r.headers["ETag"], r'^"[0-9a-f]{16}"$')

    def test_index_loads_only_files_of_its_own(self):
        body = self.get("/ui/").body
        self.assertIn('<script type="module" src="js/app.js"></script>', body)
        self.assertNotIn("<style", body)
        self.assertNotIn(" style=", body)
        self.assertNotIn("<script>", body)

    def test_etag_revalidation(self):
        r = self.get("/ui/js/api.js")
        etag = r.headers["ETag"]
        again = self.get("/ui/js/api.js", headers={"If-None-Match": etag})
        self.assertEqual(again.status, 304)
        self.assertEqual(again.body, "")
        self.assertEqual(again.headers["ETag"], etag)
        other = self.get("/ui/js/api.js", headers={"If-None-Match": '"0000000000000000"'})
        self.assertEqual(other.status, 200)
        self.assertEqual(other.body, r.body)
        self.assertNotEqual(self.get("/ui/app.css").headers["ETag"], etag)

    def test_every_file_of_gui_is_served_as_it_is(self):
        # A file added to gui/ but not to GUI_ASSETS (gui/Makefile.inc) would 404.
        top = os.path.join(SRCDIR, "gui")
        seen = 0
        for d, _, files in os.walk(top):
            for f in files:
                if f.rsplit(".", 1)[-1] not in ("html", "js", "css", "svg"):
                    continue
                rel = os.path.relpath(os.path.join(d, f), top)
                r = self.get("/ui/" + rel)
                self.assertEqual(r.status, 200, rel)
                with open(os.path.join(d, f), encoding="utf-8") as fh:
                    self.assertEqual(r.body, fh.read(), rel)
                seen += 1
        self.assertGreaterEqual(seen, 10)

    def test_unknown_file_is_404(self):
        for path in ("/ui/nope.js", "/ui/../server/main.c", "/ui/js/"):
            r = self.get(path)
            self.assertEqual(r.status, 404, path)
        self.assertEqual(self.srv.request("POST", "/ui/", token=None).status, 405)

    def test_api_still_needs_a_token(self):
        self.assertEqual(self.get("/v1/catalog/services").status, 403)


if __name__ == "__main__":
    main()
