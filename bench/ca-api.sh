#!/bin/bash
# Leaf signatures per second through the API: POST /v1/connect/ca/sign on a
# weft-server in token mode (the admin token), keep-alive connections, each
# request a CSR made beforehand by openssl (EC P-256, 64 distinct ones) that
# the server checks in full. See bench/README.md ("CA"). Loopback only;
# every run is bounded in time.
#
# Settings (environment): DURATION (seconds per run, 5), REPEAT (3),
# CONNS ("4 16"), THREADS (the server's --http-threads, 2), CSRS (64).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${WEFT_BUILDDIR:-$top/build}
load=$build/bench/weft-load
server=$build/server/weft-server
DURATION=${DURATION:-5}
REPEAT=${REPEAT:-3}
CONNS=${CONNS:-"4 16"}
THREADS=${THREADS:-2}
CSRS=${CSRS:-64}
[ -x "$load" ] && [ -x "$server" ] ||
	{ echo "ca-api.sh: build first (make -C build bench/weft-load server/weft-server)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/weft-ca-bench.XXXXXX)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for i in $(seq "$CSRS"); do
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "/CN=bench$i" \
		-keyout /dev/null -out "$tmp/$i.csr" 2>/dev/null
done
/usr/bin/python3 - "$tmp" "$CSRS" > "$tmp/bodies" <<'PY'
import json, sys
for i in range(1, int(sys.argv[2]) + 1):
    with open("%s/%d.csr" % (sys.argv[1], i)) as f:
        print(json.dumps({"Service": "svc%d" % (i % 8), "CSR": f.read()}))
PY

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$server" --data-dir "$tmp/data" --http-addr "127.0.0.1:$port" --http-threads "$THREADS" \
	--log-level warn >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	[ -s "$tmp/data/admin.token" ] && curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && break
	sleep 0.1
done
token=$(cat "$tmp/data/admin.token")
# one signature first: makes sure it works (and warms the signing cache)
curl -sf --max-time 5 -H "X-Consul-Token: $token" --data-binary @<(head -1 "$tmp/bodies") \
	"http://127.0.0.1:$port/v1/connect/ca/sign" | grep -q CertPEM ||
	{ echo "ca-api.sh: the first signature failed" >&2; cat "$tmp/server.log" >&2; exit 1; }
for c in $CONNS; do
	for r in $(seq "$REPEAT"); do
		"$load" -a "127.0.0.1:$port" -c "$c" -d "$DURATION" -T "$token" -f "$tmp/bodies" sign
	done
done
