#!/bin/bash
# Benchmarks weft-server and, as the named peer, etcd (when installed) with
# the same load generator, then prints the figures and their ratios.
# See bench/README.md. Loopback only; every run is bounded in time.
#
# Settings (environment): DURATION (seconds per run, 5), REPEAT (runs per
# figure, the median is reported, 3), WRITE_CONNS (64), READ_CONNS (32),
# WATCHERS ("1000 10000"), PEER (etcd, or none), RESULTS (also write the
# report to this file).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${WEFT_BUILDDIR:-}" ]; then
	build=$WEFT_BUILDDIR
else
	build=$top/build
	"$top/scripts/build.sh" build
	make -C "$build" bench/weft-load >/dev/null
fi
load=$build/bench/weft-load
server=$build/server/weft-server
DURATION=${DURATION:-5}
REPEAT=${REPEAT:-3}
WRITE_CONNS=${WRITE_CONNS:-64}
READ_CONNS=${READ_CONNS:-32}
WATCHERS=${WATCHERS:-"1000 10000"}
PEER=${PEER:-etcd}

[ -x "$load" ] && [ -x "$server" ] || { echo "run.sh: build first (make -C build bench)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d /tmp/weft-bench.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {   # PORT PID
	for _ in $(seq 100); do
		kill -0 "$2" 2>/dev/null || { echo "run.sh: the server exited" >&2; return 1; }
		curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
		sleep 0.1
	done
	echo "run.sh: nothing listens on port $1" >&2
	return 1
}

field() {   # LINE KEY
	printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

result() {   # TARGET METRIC VALUE
	echo "$1 $2 $3" >> "$tmp/results"
}

# Runs the loads against one target: NAME ADDR KIND PID
measure() {
	local name=$1 addr=$2 kind=$3 pid=$4 out i w
	echo "== $name ($addr)" >&2
	"$load" -a "$addr" -t "$kind" setup >/dev/null
	: > "$tmp/reg" ; : > "$tmp/read" ; : > "$tmp/sread"
	for i in $(seq "$REPEAT"); do
		out=$("$load" -a "$addr" -t "$kind" -c "$WRITE_CONNS" -d "$DURATION" -g "r$i" register)
		echo "$out" | tee -a "$tmp/raw" >&2
		field "$out" rps >> "$tmp/reg"
		out=$("$load" -a "$addr" -t "$kind" -c "$READ_CONNS" -d "$DURATION" read)
		echo "$out" | tee -a "$tmp/raw" >&2
		field "$out" rps >> "$tmp/read"
		if [ "$kind" = etcd ]; then
			out=$("$load" -a "$addr" -t "$kind" -c "$READ_CONNS" -d "$DURATION" -S read)
			echo "$out serializable" | tee -a "$tmp/raw" >&2
			field "$out" rps >> "$tmp/sread"
		fi
	done
	result "$name" register_rps "$(median < "$tmp/reg")"
	result "$name" read_rps "$(median < "$tmp/read")"
	[ "$kind" = etcd ] && result "$name" sread_rps "$(median < "$tmp/sread")"
	for w in $WATCHERS; do
		out=$("$load" -a "$addr" -t "$kind" -w "$w" -s "watched$w" watch)
		echo "$out" | tee -a "$tmp/raw" >&2
		result "$name" "watch${w}_all_ms" "$(field "$out" all_ms)"
		result "$name" "watch${w}_p50_ms" "$(field "$out" p50_ms)"
		result "$name" "watch${w}_ack_ms" "$(field "$out" write_ack_ms)"
		result "$name" "watch${w}_answered" "$(field "$out" answered)"
	done
	result "$name" hwm_mb "$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")"
	result "$name" rss_mb "$(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")"
}

stop() {   # PID
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# ---- weft-server ----
port=$(free_port)
"$server" --dev --data-dir "$tmp/weft" --http-addr "127.0.0.1:$port" --log-level info \
	>"$tmp/weft.log" 2>&1 &
wpid=$!
pids="$pids $wpid"
wait_port "$port" "$wpid"
measure weft "127.0.0.1:$port" weft "$wpid"
stop "$wpid"
# The store's own account of group commit, logged when it closes.
group_commit=$(sed -n 's/.*sub=store closed .*commits=\([0-9]*\) writes=\([0-9]*\) commit_ms_avg=\([0-9.]*\).*/\2 writes in \1 commits (\3 ms each on average)/p' "$tmp/weft.log")

# ---- etcd ----
peer_version=""
if [ "$PEER" = etcd ] && command -v etcd >/dev/null; then
	cport=$(free_port)
	pport=$(free_port)
	etcd --name bench --data-dir "$tmp/etcd" \
		--listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
		--listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "bench=http://127.0.0.1:$pport" --logger zap --log-level warn \
		>"$tmp/etcd.log" 2>&1 &
	epid=$!
	pids="$pids $epid"
	wait_port "$cport" "$epid"
	peer_version=$(etcd --version | sed -n 's/^etcd Version: //p')
	measure etcd "127.0.0.1:$cport" etcd "$epid"
	stop "$epid"
elif [ "$PEER" = etcd ]; then
	echo "run.sh: etcd is not installed (apt-get install etcd-server): no ratios" >&2
fi

# ---- report ----
{
	echo "weft-server benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)," \
		"$(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)," \
		"load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "runs: $REPEAT x ${DURATION}s per figure (median), $WRITE_CONNS write / $READ_CONNS read connections"
	[ -n "$peer_version" ] && echo "peer: etcd $peer_version, JSON gateway (/v3/kv/put, /v3/kv/range, /v3/watch)"
	[ -n "$group_commit" ] && echo "weft group commit over the whole run: $group_commit"
	echo
	awk -v peer="${peer_version:+etcd}" -v watchers="$WATCHERS" '
	{ v[$1, $2] = $3 }
	function row(label, metric, higher_better,   a, b, r) {
		a = v["weft", metric]; b = v["etcd", metric]
		r = ""
		if (peer != "" && a > 0 && b > 0)
			r = sprintf("%.2fx", higher_better ? a / b : b / a)
		printf "%-46s %12s %12s %8s\n", label, a, (peer != "" ? b : "-"), r
	}
	END {
		printf "%-46s %12s %12s %8s\n", "", "weft", (peer != "" ? "etcd" : "-"), "ratio"
		row("durable registrations/s (etcd: puts/s)", "register_rps", 1)
		row("reads/s of a 10-instance service", "read_rps", 1)
		if (peer != "")
			printf "%-46s %12s %12s\n", "  etcd serializable reads/s", "", v["etcd", "sread_rps"]
		n = split(watchers, ws, " ")
		for (i = 1; i <= n; i++) {
			w = ws[i]
			row("watch " w ": all woken, ms after the write", "watch" w "_all_ms", 0)
			row("watch " w ": half woken, ms", "watch" w "_p50_ms", 0)
			row("watch " w ": write acknowledged, ms", "watch" w "_ack_ms", 0)
		}
		row("memory high-water VmHWM, MB", "hwm_mb", 0)
		row("memory at the end VmRSS, MB", "rss_mb", 0)
		print ""
		print "ratio: how many times better weft is (above 1) or worse (below 1)"
	}' "$tmp/results"
	echo
	echo "raw:"
	cat "$tmp/raw"
} | tee "${RESULTS:-/dev/null}"
