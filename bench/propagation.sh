#!/bin/bash
# Config propagation latency of proxy snapshots (bench/README.md "Config
# propagation"): for each N, a fresh weft-server --dev, N sidecars and N
# watchers holding a blocking query on their snapshot (bench/propagation.c),
# one specific intention write and one "* -> *", the time from the write's
# reply to each woken watcher's new snapshot, the server's CPU and RSS.
# Loopback only; every wait is bounded.
#
# Settings (environment): NS (the Ns, "100 1000 5000"), THREADS (the
# server's --http-threads, 2), CACHE_MB (--snapshot-cache-mb, 64; 0 turns
# the cache off), RESULTS (also append the lines to this file).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${WEFT_BUILDDIR:-}" ]; then
	build=$WEFT_BUILDDIR
else
	build=$top/build
	"$top/scripts/build.sh" build >/dev/null
	make -C "$build" bench/propagation >/dev/null
fi
tool=$build/bench/propagation
server=$build/server/weft-server
NS=${NS:-"100 1000 5000"}
THREADS=${THREADS:-2}
CACHE_MB=${CACHE_MB:-64}
[ -x "$tool" ] && [ -x "$server" ] || { echo "propagation.sh: build first" >&2; exit 1; }
# N watchers take N descriptors here and N in the server (which raises its
# own soft limit to the hard one).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d /tmp/weft-prop.XXXXXX)
spid=""
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

out() {
	printf '%s\n' "$1"
	[ -z "${RESULTS:-}" ] || printf '%s\n' "$1" >>"$RESULTS"
}

out "# $(date -u +%FT%TZ) $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?') threads=$THREADS cache_mb=$CACHE_MB nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
for n in $NS; do
	port=$(free_port)
	rm -rf "$tmp/data"
	"$server" --dev --data-dir "$tmp/data" --http-addr "127.0.0.1:$port" \
		--http-threads "$THREADS" --max-connections 20000 \
		--snapshot-cache-mb "$CACHE_MB" --log-level warn 2>"$tmp/server.log" &
	spid=$!
	for _ in $(seq 100); do
		curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/v1/status/leader" && break
		kill -0 "$spid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
		sleep 0.1
	done
	if ! "$tool" -a "127.0.0.1:$port" -p "$spid" -n "$n" -t 120 >"$tmp/out" 2>"$tmp/err"; then
		cat "$tmp/out" "$tmp/err" >&2
		tail -5 "$tmp/server.log" >&2
		exit 1
	fi
	while read -r line; do out "$line"; done <"$tmp/out"
	kill "$spid"
	wait "$spid" 2>/dev/null || true
	spid=""
done
