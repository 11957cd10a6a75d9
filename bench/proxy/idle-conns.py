#!/usr/bin/python3
"""Idle keep-alive connections for bench/proxy.sh (memory per connection).

    idle-conns.py PORT N READY_FILE DONE_FILE [CERT KEY CA SNI]

Opens N connections to 127.0.0.1:PORT, plaintext or (with CERT KEY CA SNI)
TLS with a client certificate, the server's chain verified against CA;
sends one "GET /1k.html" on each and reads its whole answer (which must be
a 200), so each connection is an idle keep-alive connection that has
carried a request. Then writes the count to READY_FILE and holds the
connections open until DONE_FILE exists (at most 120 s), and closes them.
Exits 1 if any connection failed."""
import os
import socket
import ssl
import sys
import threading
import time

THREADS = 8


def request(s):
    s.sendall(b"GET /1k.html HTTP/1.1\r\nHost: bench\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            raise OSError("connection closed before the answer's head")
        data += b
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    if lines[0].split()[1] != b"200":
        raise OSError("answer: %r" % lines[0])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        b = s.recv(65536)
        if not b:
            raise OSError("connection closed in the answer's body")
        body += b


def main():
    if len(sys.argv) not in (5, 9):
        sys.exit(__doc__)
    port, n = int(sys.argv[1]), int(sys.argv[2])
    ready, done = sys.argv[3], sys.argv[4]
    ctx = sni = None
    if len(sys.argv) == 9:
        cert, key, ca, sni = sys.argv[5:]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(ca)
        ctx.load_cert_chain(cert, key)
    socks, errors = [], []
    lock = threading.Lock()

    def opener(count):
        for _ in range(count):
            s = None
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=30)
                if ctx is not None:
                    s = ctx.wrap_socket(s, server_hostname=sni)
                request(s)
            except (OSError, ssl.SSLError, ValueError, IndexError) as e:
                with lock:
                    errors.append(str(e))
                if s is not None:
                    s.close()
                continue
            with lock:
                socks.append(s)

    threads = [threading.Thread(target=opener, args=(n // THREADS + (i < n % THREADS),))
               for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(ready + ".tmp", "w") as f:
        f.write("%d\n" % len(socks))
    os.rename(ready + ".tmp", ready)
    deadline = time.monotonic() + 120
    while not os.path.exists(done) and time.monotonic() < deadline:
        time.sleep(0.05)
    for s in socks:
        s.close()
    if errors:
        print("idle-conns: %d of %d connections failed, first: %s" % (len(errors), n, errors[0]),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
