#!/bin/sh
# /v1/connect/intentions/check answers per second with 10,000 intentions
# stored (100 destinations x 100 sources), keep-alive clients. See
# bench/intentions.md. Settings: CONNS (8), SECS (5), BUILD (./build),
# AUTH=1 to run with tokens (the bootstrap admin token) instead of --dev.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
BUILD=${BUILD:-$top/build}
CONNS=${CONNS:-8}
SECS=${SECS:-5}
AUTH=${AUTH:-0}
server=$BUILD/server/weft-server
[ -x "$server" ] || { echo "no $server: run scripts/build.sh build first" >&2; exit 1; }
tmp=$(mktemp -d /tmp/weft-bench-ixn-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
cc -O2 -o "$tmp/load" "$here/intentions-load.c" -lpthread
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dev=--dev
[ "$AUTH" = 1 ] && dev=
"$server" $dev --data-dir "$tmp/data" --http-addr "127.0.0.1:$port" --node-name bench \
	>"$tmp/server.log" 2>&1 &
pid=$!
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$tmp/server.log"; exit 1; }; sleep 0.1
done
if [ "$AUTH" = 1 ]; then WEFT_TOKEN=$(cat "$tmp/data/admin.token"); export WEFT_TOKEN; fi
"$tmp/load" "$port" load 100 100 32
count=$(curl -s "http://127.0.0.1:$port/v1/connect/intentions" ${WEFT_TOKEN:+-H "X-Consul-Token: $WEFT_TOKEN"} |
	python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "stored intentions: $count"
[ "$count" = 10000 ] || exit 1
"$tmp/load" "$port" check 100 100 "$CONNS" 1 >/dev/null   # warm up: compile the set once
"$tmp/load" "$port" check 100 100 "$CONNS" "$SECS"
