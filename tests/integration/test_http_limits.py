#!/usr/bin/env python3
"""Limits of the HTTP layer that clients meet: request headers up to about
7.5 KB together are served (long tokens, long query strings), larger ones
get 431 (headers) or 414 (request line), as nginx's 8 KB buffers."""
import http.client
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class HttpLimitsTest(harness.ServerTest):
    dev = True

    def get(self, path, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def test_six_kilobytes_of_headers_are_served(self):
        status, body = self.get("/v1/catalog/nodes", {"X-Weft-Padding": "a" * 6000,
                                                       "User-Agent": "b" * 200})
        self.assertEqual(status, 200, body[:200])
        status, body = self.get("/v1/catalog/nodes?note=" + "c" * 6000)
        self.assertEqual(status, 200, body[:200])

    def test_too_large_headers_are_refused_not_dropped(self):
        status, _ = self.get("/v1/catalog/nodes", {"X-Weft-Padding": "a" * 16000})
        self.assertEqual(status, 431)
        status, _ = self.get("/v1/catalog/nodes?note=" + "c" * 16000)
        self.assertIn(status, (414, 431))
        # The server is still there for the next client.
        self.assertEqual(self.get("/v1/catalog/nodes")[0], 200)


if __name__ == "__main__":
    harness.main()
