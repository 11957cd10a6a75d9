#!/usr/bin/env python3
"""Durability: an acknowledged write survives kill -9 and SIGTERM.

Several client threads register distinct service instances as fast as they
can over keep-alive connections and remember every registration that was
answered 200. The server is then killed (SIGKILL, mid-stream) or stopped
(SIGTERM, with requests in flight) and started again on the same data
directory: every acknowledged instance must be in the catalog, and the modify
index must not have gone backwards.
"""
import http.client
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

THREADS = 6
ROUNDS = 3


class Writers:
    """THREADS threads, each registering instances of its own service."""

    def __init__(self, srv, tag):
        self.srv = srv
        self.tag = tag
        self.stop = threading.Event()
        self.acked = {t: set() for t in range(THREADS)}
        self.answered = {t: 0 for t in range(THREADS)}   # any HTTP reply
        self.broken = {t: 0 for t in range(THREADS)}     # connection errors
        self.bad = []                                    # unexpected statuses
        self.max_index = 0                               # highest index a reader saw
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.write_loop, args=(t,), daemon=True)
                        for t in range(THREADS)]
        self.threads.append(threading.Thread(target=self.read_loop, daemon=True))

    def start(self):
        for th in self.threads:
            th.start()

    def finish(self, timeout=15):
        self.stop.set()
        for th in self.threads:
            th.join(timeout)
            if th.is_alive():
                raise AssertionError("a client thread did not finish within %ss" % timeout)

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)

    def write_loop(self, t):
        conn = self.conn()
        i = 0
        deadline = time.time() + 30   # bound, in case the test never stops us
        while not self.stop.is_set() and time.time() < deadline:
            sid = "%s-%d-%d" % (self.tag, t, i)
            body = json.dumps({
                "Node": "dur-node-%d" % t, "Address": "10.0.0.%d" % (t + 1),
                "Service": {"ID": sid, "Service": "dur-%d" % t, "Port": 1000 + i % 50000},
            })
            i += 1
            try:
                conn.request("PUT", "/v1/catalog/register", body=body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                # Killed mid-request: this write was never acknowledged.
                self.broken[t] += 1
                conn.close()
                if self.stop.wait(0.01):
                    break
                conn = self.conn()
                continue
            self.answered[t] += 1
            if resp.status == 200 and data.strip() == b"true":
                self.acked[t].add(sid)
            elif resp.status != 503:   # 503: refused while shutting down
                with self.lock:
                    self.bad.append((resp.status, data[:200]))
        conn.close()

    def read_loop(self):
        conn = self.conn()
        deadline = time.time() + 30
        while not self.stop.is_set() and time.time() < deadline:
            try:
                conn.request("GET", "/v1/catalog/services")
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                if self.stop.wait(0.01):
                    break
                conn = self.conn()
                continue
            if resp.status == 200:
                idx = int(resp.getheader("X-Consul-Index", "0"))
                with self.lock:
                    self.max_index = max(self.max_index, idx)
            self.stop.wait(0.005)
        conn.close()

    def total_acked(self):
        return sum(len(s) for s in self.acked.values())


class DurabilityTest(harness.unittest.TestCase):
    def setUp(self):
        self.srv = harness.Server(dev=True)
        self.addCleanup(self.srv.close)

    def assert_all_present(self, writers, min_index):
        self.assertEqual(writers.bad, [], "unexpected replies to registrations")
        for t, acked in writers.acked.items():
            resp = self.srv.get("/v1/catalog/service/dur-%d" % t)
            self.assertEqual(resp.status, 200, resp)
            present = {e["ServiceID"] for e in resp.json()}
            missing = sorted(acked - present)
            self.assertEqual(missing, [], "thread %d: %d acknowledged registrations lost "
                             "(of %d), e.g. %s" % (t, len(missing), len(acked), missing[:5]))
            self.assertLessEqual(max((e["ModifyIndex"] for e in resp.json()), default=0),
                                 resp.index)
        idx = self.srv.get("/v1/catalog/services").index
        self.assertGreaterEqual(idx, min_index, "the modify index went backwards")
        return idx

    def test_kill9_loses_no_acknowledged_write(self):
        start = time.time()
        last_index = 0
        total = 0
        for rnd in range(ROUNDS):
            writers = Writers(self.srv, "r%d" % rnd)
            writers.start()
            # Let writes flow, then kill mid-stream once enough are acknowledged.
            until = time.time() + 3
            while writers.total_acked() < 200 and time.time() < until:
                time.sleep(0.02)
            time.sleep(0.1 + 0.1 * rnd)
            self.srv.kill9()
            writers.finish()
            self.assertGreater(writers.total_acked(), 0, "no write was acknowledged")
            self.srv.start()
            floor = max(last_index, writers.max_index)
            last_index = self.assert_all_present(writers, floor)
            total += writers.total_acked()
            # Earlier rounds' instances are still there too.
            self.assertGreaterEqual(
                sum(len(self.srv.get("/v1/catalog/service/dur-%d" % t).json())
                    for t in range(THREADS)), total)
        self.assertLess(time.time() - start, 20, "the test ran over its time budget")
        self.assertIn("opened path=", self.srv.read_log())

    def test_sigterm_finishes_requests_in_flight(self):
        # Blocking queries parked on a service nobody writes: in flight for
        # as long as the server runs.
        idx = self.srv.get("/v1/catalog/service/quiet").index
        parked = []

        def watch():
            conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=20)
            try:
                conn.request("GET", "/v1/catalog/service/quiet?index=%d&wait=60s" % idx)
                resp = conn.getresponse()
                parked.append((resp.status, resp.read()))
            except (OSError, http.client.HTTPException) as e:
                parked.append((None, repr(e)))
        watchers = [threading.Thread(target=watch, daemon=True) for _ in range(8)]
        for th in watchers:
            th.start()
        writers = Writers(self.srv, "term")
        writers.start()
        until = time.time() + 3
        while writers.total_acked() < 200 and time.time() < until:
            time.sleep(0.02)
        answered_before = sum(writers.answered.values())
        t0 = time.time()
        self.srv.proc.send_signal(signal.SIGTERM)
        rc = self.srv.proc.wait(timeout=15)
        stop_secs = time.time() - t0
        answered_after = sum(writers.answered.values()) - answered_before
        writers.finish()
        for th in watchers:
            th.join(5)
        self.srv.log.close()
        self.srv.proc = None
        log = self.srv.read_log()
        self.assertEqual(rc, 0, log[-2000:])
        self.assertIn("stopping signal=TERM", log)
        self.assertIn("level=info sub=main stopped", log)
        self.assertLess(stop_secs, 5, "a graceful stop took %.1fs with busy clients" % stop_secs)
        # Parked queries were answered (200 with the current result), not cut.
        self.assertEqual(parked, [(200, b"[]")] * len(watchers))
        # Keep-alive clients are told to go away: each connection gets the
        # answer to the request it had in flight, and at most a few more.
        self.assertLessEqual(answered_after, 3 * THREADS)
        self.srv.start()
        self.assert_all_present(writers, writers.max_index)


if __name__ == "__main__":
    harness.main()
