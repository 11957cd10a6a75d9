#!/bin/bash
# The data-plane benchmark (issue 6): the mTLS sidecar pair
#   client -> outbound proxy (plaintext in, mTLS out) -> inbound proxy
#   (mTLS in, client certificate required) -> app
# built from weft-proxy, HAProxy 2.6 and nginx 1.22, and the direct path
# (client -> app), measured in one run on 127.0.0.1: throughput (wrk),
# latency at a fixed rate (hey), new connections per second, memory idle,
# at peak and per idle connection. Prints a Markdown report and writes it to
# bench/results/proxy-DATE.md. See bench/README.md ("weft-proxy against
# HAProxy and nginx"). Never run by make check or CI: it takes about 5
# minutes and wants the machine to itself.
#
# Settings (environment): DURATION (wrk seconds per case, 10), WARMUP (wrk
# warm-up seconds before each case, 2), CONNS (wrk connections, 50),
# THREADS (wrk threads, 2), RATE (hey requests/s, 1000), LAT_CONNS (hey
# connections, 10), LAT_DURATION (hey seconds, 10), CONN_DURATION (seconds
# of the new-connection runs, 5), IDLE (idle connections for the memory
# figures, 2000), ROUNDS (runs of each load figure, the median is reported,
# 1), PEERS (default "weft weft2 haproxy nginx direct"; weft2 is weft-proxy
# with --workers 2), RESULTS (the report file), WEFT_BUILDDIR (use this
# build instead of building ./build), WEFT_PROXY (the weft-proxy binary
# to measure instead of the build's, e.g. another branch's), FIGURES (which
# figures to take, default "throughput latency conns tls memory": e.g.
# FIGURES="latency tls" for only p99 and new mTLS connections/s; idle RSS
# after start is always read), KEEP (keep the temporary directory:
# configurations, logs).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
here=$top/bench/proxy
if [ -n "${WEFT_BUILDDIR:-}" ]; then
	build=$WEFT_BUILDDIR
else
	build=$top/build
	"$top/scripts/build.sh" build >&2
fi
if [ -n "${WEFT_PROXY:-}" ]; then
	proxy=$WEFT_PROXY
	make -C "$build" tests/tools/ca-tool >/dev/null
else
	proxy=$build/dataplane/weft-proxy
	make -C "$build" dataplane/weft-proxy tests/tools/ca-tool >/dev/null
fi
"$top/scripts/deps.sh" --bench

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
RATE=${RATE:-1000}
LAT_CONNS=${LAT_CONNS:-10}
LAT_DURATION=${LAT_DURATION:-10}
CONN_DURATION=${CONN_DURATION:-5}
IDLE=${IDLE:-2000}
ROUNDS=${ROUNDS:-1}
PEERS=${PEERS:-"weft weft2 haproxy nginx direct"}
FIGURES=${FIGURES:-"throughput latency conns tls memory"}
for f in $FIGURES; do
	case $f in throughput | latency | conns | tls | memory) ;; *) echo "proxy.sh: unknown figure $f in FIGURES" >&2; exit 1 ;; esac
done
want() { case " $FIGURES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
stamp=$(date -u +%Y-%m-%d-%H%M)
RESULTS=${RESULTS:-$top/bench/results/proxy-$stamp.md}

catool=$build/tests/tools/ca-tool
TD=weft-test.example
SPIFFE_API=spiffe://$TD/ns/default/dc/dc1/svc/api
SNI=api.default.dc1.$TD
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d /tmp/weft-proxy-bench.XXXXXX)
certs=$tmp/certs
declare -A PID=() OUT=() IN=() R=()
notes=()
cleanup() {
	local p
	for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "${KEEP:-}" ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "proxy.sh: $*" >&2; }
die() { log "$*"; exit 1; }
note() { notes+=("$*"); log "note: $*"; }

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_listen() {   # PORT PID LOG
	for _ in $(seq 200); do
		kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "the process for port $1 exited"; }
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	cat "$3" >&2
	die "nothing listens on port $1"
}

# A process and its descendants (nginx's workers; weft-proxy's, if it forks).
tree() {
	local c
	echo "$1"
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree "$c"; done
}

mem_kb() {   # FIELD PID: the field of /proc/PID/status, summed over the tree
	local p sum=0 v
	for p in $(tree "$2"); do
		v=$(awk -v f="$1:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {   # PID: user + system CPU ticks, summed over the tree
	local p sum=0 v
	for p in $(tree "$1"); do
		v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
per_us() {   # TICKS COUNT: microseconds of CPU per item
	awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.0f", t * 1000000 / hz / n }'
}

fill() {   # TEMPLATE OUTPUT DIR
	sed -e "s|@DIR@|$3|g" -e "s|@CERTS@|$certs|g" -e "s|@APP_PORT@|$APP_PORT|g" \
	    -e "s|@OUT_PORT@|${OUT[$peer]:-0}|g" -e "s|@IN_PORT@|${IN[$peer]:-0}|g" "$1" > "$2"
}

nginx_dir() {   # DIR
	mkdir -p "$1/www" "$1/client_body" "$1/proxy" "$1/fastcgi" "$1/uwsgi" "$1/scgi"
}

stop() {   # ROLE: the process and its descendants
	local p=${PID[$1]:-} all
	[ -n "$p" ] || return 0
	all=$(tree "$p")
	kill $all 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 $all 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	unset "PID[$1]"
}

procs() {   # ROLE: each process's VmRSS and RssAnon, for the raw lines
	local p s=""
	for p in $(tree "${PID[$1]}"); do
		s="$s $(awk -v p="$p" '$1 == "VmRSS:" { r = $2 } $1 == "RssAnon:" { a = $2 }
			END { printf "[pid %s: VmRSS %s KB, RssAnon %s KB]", p, r, a }' "/proc/$p/status")"
	done
	echo "$1:$s"
}

# Starts PEER's inbound and outbound on new ports (OUT[peer], IN[peer]).
# WEFT_LOG sets weft-proxy's log level (warn).
start_peer() {   # PEER
	local peer=$1 d=$tmp/$1 extra=()
	mkdir -p "$d"
	OUT[$peer]=$(free_port)
	IN[$peer]=$(free_port)
	case $peer in
	weft*)
		# weft-proxy's default is one worker per core: say 1 or 2
		if "$proxy" --help 2>&1 | grep -q -- '--workers'; then
			extra=(--workers 1)
			[ "$peer" = weft2 ] && extra=(--workers 2)
		fi
		"$proxy" --inbound "127.0.0.1:${IN[$peer]}" --app "127.0.0.1:$APP_PORT" \
			--cert "$certs/api.crt" --key "$certs/api-old.key" --trust-bundle "$certs/old-root.pem" \
			--mode http --log-level "${WEFT_LOG:-warn}" "${extra[@]}" 2>>"$d/in.log" &
		PID[$peer-in]=$!
		wait_listen "${IN[$peer]}" "${PID[$peer-in]}" "$d/in.log"
		"$proxy" --outbound "127.0.0.1:${OUT[$peer]}" --upstream "127.0.0.1:${IN[$peer]}" \
			--upstream-id "$SPIFFE_API" --cert "$certs/web.crt" --key "$certs/client.key" \
			--trust-bundle "$certs/old-root.pem" --mode http --log-level "${WEFT_LOG:-warn}" \
			"${extra[@]}" 2>>"$d/out.log" &
		PID[$peer-out]=$!
		;;
	haproxy)
		fill "$here/haproxy-inbound.cfg" "$d/in.cfg" "$d"
		fill "$here/haproxy-outbound.cfg" "$d/out.cfg" "$d"
		haproxy -db -f "$d/in.cfg" 2>>"$d/in.log" &
		PID[$peer-in]=$!
		wait_listen "${IN[$peer]}" "${PID[$peer-in]}" "$d/in.log"
		haproxy -db -f "$d/out.cfg" 2>>"$d/out.log" &
		PID[$peer-out]=$!
		;;
	nginx)
		nginx_dir "$d/in"
		nginx_dir "$d/out"
		fill "$here/nginx-inbound.conf" "$d/in/nginx.conf" "$d/in"
		fill "$here/nginx-outbound.conf" "$d/out/nginx.conf" "$d/out"
		nginx -p "$d/in" -c "$d/in/nginx.conf" -e "$d/in.log" 2>>"$d/in.log" &
		PID[$peer-in]=$!
		wait_listen "${IN[$peer]}" "${PID[$peer-in]}" "$d/in.log"
		nginx -p "$d/out" -c "$d/out/nginx.conf" -e "$d/out.log" 2>>"$d/out.log" &
		PID[$peer-out]=$!
		;;
	*) die "unknown peer $peer" ;;
	esac
	wait_listen "${OUT[$peer]}" "${PID[$peer-out]}" "$d/out.log"
	sleep 0.3   # nginx's worker, started after the master listens
}

stop_peer() { stop "$1-out"; stop "$1-in"; }

url() {   # PEER
	if [ "$1" = direct ]; then
		echo "http://127.0.0.1:$APP_PORT/1k.html"
	else
		echo "http://127.0.0.1:${OUT[$1]}/1k.html"
	fi
}

passive_opens() {
	awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "PassiveOpens") c = i; h = 1 }
	               else print $c }' /proc/net/snmp
}

raw() { printf '%s\n' "$*" >> "$tmp/raw"; printf '%s\n' "$*" >&2; }

median() {   # of the lines read; of an even count, the mean of the middle two
	sort -n | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2]; else if (NR) printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

add() {   # PEER METRIC VALUE: one run's figure (the median of the runs is reported)
	echo "$3" >> "$tmp/runs.$1.$2"
	R[$1,$2]=$(median < "$tmp/runs.$1.$2")
}

# wrk: requests/s, requests, errors (socket errors and non-2xx answers).
run_wrk() {   # PEER SECONDS [LUA]
	local out
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$2"s ${3:+-s "$3"} "$(url "$1")" 2>&1) || true
	WRK_RPS=$(printf '%s\n' "$out" | awk '$1 == "Requests/sec:" { printf "%.0f", $2 }')
	WRK_N=$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*\([0-9]*\) requests in .*/\1/p')
	WRK_ERR=$(printf '%s\n' "$out" | awk '
		/Socket errors:/ { gsub(",", ""); e += $4 + $6 + $8 + $10 }
		/Non-2xx or 3xx responses:/ { e += $NF }
		END { print e + 0 }')
	[ -n "$WRK_RPS" ] || { printf '%s\n' "$out" >&2; die "wrk against $1 gave no figure"; }
}

# ---- certificates, the app ----
mkdir -p "$certs"
"$catool" "$certs" >/dev/null
cat "$certs/api-old.pem" "$certs/api-old-chain.pem" > "$certs/api.crt"
cat "$certs/client.pem" "$certs/client-chain.pem" > "$certs/web.crt"
cat "$certs/api.crt" "$certs/api-old.key" > "$certs/api-haproxy.pem"
cat "$certs/web.crt" "$certs/client.key" > "$certs/web-haproxy.pem"

APP_PORT=$(free_port)
peer=app
nginx_dir "$tmp/app"
head -c 1024 /dev/zero | tr '\0' 'x' > "$tmp/app/www/1k.html"
fill "$here/app-nginx.conf" "$tmp/app/nginx.conf" "$tmp/app"
nginx -p "$tmp/app" -c "$tmp/app/nginx.conf" -e "$tmp/app.log" 2>>"$tmp/app.log" &
PID[app]=$!
wait_listen "$APP_PORT" "${PID[app]}" "$tmp/app.log"

# ---- which peers ----
peers=""
for p in $PEERS; do
	case $p in
	weft2)
		if "$proxy" --help 2>&1 | grep -q -- '--workers'; then
			peers="$peers $p"
		else
			note "weft-proxy's usage has no --workers: the 2-worker case is skipped"
		fi
		;;
	haproxy | nginx | weft | direct) peers="$peers $p" ;;
	*) die "unknown peer $p in PEERS" ;;
	esac
done
proxies=$(echo $peers | tr ' ' '\n' | grep -v '^direct$' | tr '\n' ' ')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- checks: every pair answers, and really does mTLS with client certificates ----
{
	echo "checks (every inbound: a client without a certificate, and one with a"
	echo "certificate of another CA, must not get the file; one of the mesh CA must):"
} >> "$tmp/checks"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' --max-time 5 "$(url direct)" || true)
[ "$code" = 200 ] || die "the app answered $code"
check_peer() {   # PEER
	local p=$1 inport=${IN[$1]} code rc tls s
	code=$(curl -s -o "$tmp/body" -w '%{http_code}' --max-time 5 "$(url "$p")" || true)
	[ "$code" = 200 ] && [ "$(stat -c %s "$tmp/body")" = 1024 ] ||
		die "$p: GET through the pair answered '$code' (want 200 and 1024 bytes)"
	tls=(-s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$certs/old-root.pem"
	     --resolve "api:$inport:127.0.0.1" "https://api:$inport/1k.html")
	rc=0; code=$(curl "${tls[@]}" --cert "$certs/web.crt" --key "$certs/client.key") || rc=$?
	[ "$code" = 200 ] || die "$p inbound: a client with the mesh CA's certificate got '$code' (curl exit $rc)"
	s="$p inbound: mesh client cert $code"
	rc=0; code=$(curl "${tls[@]}") || rc=$?
	[ "$code" != 200 ] || die "$p inbound: a client WITHOUT a certificate got the file"
	s="$s; no client cert: refused (HTTP '$code', curl exit $rc)"
	rc=0; code=$(curl "${tls[@]}" --cert "$certs/foreign.pem" --key "$certs/foreign.key") || rc=$?
	[ "$code" != 200 ] || die "$p inbound: a client of ANOTHER CA got the file"
	s="$s; foreign CA: refused (HTTP '$code', curl exit $rc)"
	echo "$s" >> "$tmp/checks"
	s=$(timeout 5 openssl s_client -connect "127.0.0.1:$inport" -servername "$SNI" -cert "$certs/web.crt" \
		-key "$certs/client.key" -CAfile "$certs/old-root.pem" -brief </dev/null 2>&1 |
		grep -E '^(Protocol version|Ciphersuite|Peer certificate|Verification):' | paste -sd ';' - || true)
	case $s in
	*"Protocol version: TLSv1.3"*) ;;
	*) die "$p inbound: openssl s_client did not negotiate TLS 1.3: $s" ;;
	esac
	echo "$p inbound, openssl s_client: $s" >> "$tmp/checks"
}
# weft-proxy's own mTLS hop: its inbound logs each handshake's version at debug level.
peer=weftcheck
WEFT_LOG=debug start_peer weftcheck
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$(url weftcheck)" || true)
[ "$code" = 200 ] || die "weft-proxy pair at debug level answered '$code'"
sleep 0.2
line=$(grep -m1 'tls handshake: listener=inbound side=client' "$tmp/weftcheck/in.log" || true)
case $line in
*"version=TLSv1.3"*) ;;
*) die "weft-proxy's outbound -> inbound hop: no TLS 1.3 handshake in the log: $line" ;;
esac
echo "weft-proxy outbound -> inbound hop (inbound's debug log): ${line#*tls handshake: }" >> "$tmp/checks"
stop_peer weftcheck

for peer in $proxies; do
	start_peer "$peer"
	R[$peer,out_idle_rss]=$(mem_kb VmRSS "${PID[$peer-out]}")
	R[$peer,out_idle_anon]=$(mem_kb RssAnon "${PID[$peer-out]}")
	R[$peer,in_idle_rss]=$(mem_kb VmRSS "${PID[$peer-in]}")
	R[$peer,in_idle_anon]=$(mem_kb RssAnon "${PID[$peer-in]}")
	raw "idle after start: $(procs "$peer-out")"
	raw "idle after start: $(procs "$peer-in")"
	check_peer "$peer"
done
cat "$tmp/checks" >&2

# ---- load: each figure for every peer in turn (interleaved), ROUNDS times ----
order() {   # ROUND: the peers, reversed on even rounds
	if [ $(($1 % 2)) = 1 ]; then echo $peers; else echo $peers | tr ' ' '\n' | tac | tr '\n' ' '; fi
}
for round in $(seq "$ROUNDS"); do
	want throughput && for peer in $(order "$round"); do
		run_wrk "$peer" "$WARMUP"
		run_wrk "$peer" "$DURATION"
		raw "$peer throughput: wrk -t$THREADS -c$CONNS -d${DURATION}s: $WRK_RPS req/s, $WRK_N requests, $WRK_ERR errors"
		add "$peer" rps "$WRK_RPS"
		R[$peer,errors]=$(( ${R[$peer,errors]:-0} + WRK_ERR ))
	done
	want latency && for peer in $(order "$round"); do
		[ "$peer" = direct ] || cpu0=$(( $(cpu_ticks "${PID[$peer-out]}") + $(cpu_ticks "${PID[$peer-in]}") ))
		out=$(hey -z "${LAT_DURATION}s" -c "$LAT_CONNS" -q $((RATE / LAT_CONNS)) "$(url "$peer")" 2>&1) || true
		p50=$(printf '%s\n' "$out" | awk '$1 == "50%" && $2 == "in" { printf "%.1f", $3 * 1000 }')
		p99=$(printf '%s\n' "$out" | awk '$1 == "99%" && $2 == "in" { printf "%.1f", $3 * 1000 }')
		ok=$(printf '%s\n' "$out" | awk '$1 == "[200]" { print $2 }')
		got=$(printf '%s\n' "$out" | awk '$1 == "Requests/sec:" { printf "%.0f", $2 }')
		[ -n "$p99" ] || { printf '%s\n' "$out" >&2; die "hey against $peer gave no latency"; }
		cpu=""
		[ "$peer" = direct ] || cpu=$(per_us $(( $(cpu_ticks "${PID[$peer-out]}") + $(cpu_ticks "${PID[$peer-in]}") - cpu0 )) "${ok:-0}")
		raw "$peer latency: hey -z ${LAT_DURATION}s -c $LAT_CONNS -q $((RATE / LAT_CONNS)): $got req/s, ${ok:-0} answers 200, p50 $p50 ms, p99 $p99 ms${cpu:+, CPU of both proxies $cpu us per request}"
		[ -z "$cpu" ] || add "$peer" lat_cpu "$cpu"
		add "$peer" p50 "$p50"
		add "$peer" p99 "$p99"
		add "$peer" lat_rps "$got"
	done
	want conns && for peer in $(order "$round"); do
		run_wrk "$peer" 1 "$here/conn-close.lua"
		before=$(passive_opens)
		run_wrk "$peer" "$CONN_DURATION" "$here/conn-close.lua"
		accepted=$(( $(passive_opens) - before ))
		per=$(awk -v a="$accepted" -v n="$WRK_N" 'BEGIN { printf "%.2f", n ? a / n : 0 }')
		raw "$peer new connections: wrk -t$THREADS -c$CONNS -d${CONN_DURATION}s, Connection: close: $WRK_RPS req/s, $WRK_N requests, $WRK_ERR errors, TCP accepts per request $per"
		add "$peer" cps "$WRK_RPS"
		add "$peer" accepts "$per"
		R[$peer,errors]=$(( ${R[$peer,errors]:-0} + WRK_ERR ))
	done
	# new mTLS connections: a full TLS 1.3 handshake with the mesh client
	# certificate on every request, at the inbound (a pooling outbound
	# hides handshakes from the figure above): 2 openssl s_time -new
	want tls && for peer in $(order "$round"); do
		[ "$peer" = direct ] && continue
		stimes=()
		cpu0=$(cpu_ticks "${PID[$peer-in]}")
		for k in 1 2; do
			timeout $((CONN_DURATION + 30)) openssl s_time -connect "127.0.0.1:${IN[$peer]}" -new \
				-time "$CONN_DURATION" -cert "$certs/web.crt" -key "$certs/client.key" \
				-CAfile "$certs/old-root.pem" -www /1k.html >"$tmp/stime.$k" 2>&1 &
			stimes+=($!)
		done
		wait "${stimes[@]}" || true   # (not a bare wait: the peers run in the background too)
		rate=$(cat "$tmp/stime.1" "$tmp/stime.2" | awk '/connections in .* real seconds/ { n += $1; t = $4 }
			END { if (t > 0) printf "%.0f", n / t }')
		[ -n "$rate" ] || { cat "$tmp/stime.1" >&2; die "openssl s_time against $peer gave no rate"; }
		n=$(cat "$tmp/stime.1" "$tmp/stime.2" | awk '/connections in .* real seconds/ { n += $1 } END { print n + 0 }')
		cpu=$(per_us $(( $(cpu_ticks "${PID[$peer-in]}") - cpu0 )) "$n")
		raw "$peer new mTLS connections: 2 × openssl s_time -new -time $CONN_DURATION at the inbound: $rate handshakes/s, inbound CPU $cpu us per connection"
		add "$peer" tls_cps "$rate"
		add "$peer" tls_cpu "$cpu"
	done
done
for peer in $proxies; do
	R[$peer,out_hwm]=$(mem_kb VmHWM "${PID[$peer-out]}")
	R[$peer,in_hwm]=$(mem_kb VmHWM "${PID[$peer-in]}")
	stop_peer "$peer"
done

# ---- memory per idle keep-alive connection: a fresh pair for each figure ----
idle() {   # PEER ROLE PORT [CERT KEY CA SNI]: RSS growth of ROLE in KB per connection
	local peer=$1 role=$2 port=$3 before after n
	shift 3
	rm -f "$tmp/ready" "$tmp/done"
	touch "$tmp/done"   # 20 connections opened and closed at once: allocations made once
	/usr/bin/python3 "$here/idle-conns.py" "$port" 20 "$tmp/ready" "$tmp/done" "$@"
	sleep 0.5
	rm -f "$tmp/ready" "$tmp/done"
	before=$(mem_kb VmRSS "${PID[$peer-$role]}")
	/usr/bin/python3 "$here/idle-conns.py" "$port" "$IDLE" "$tmp/ready" "$tmp/done" "$@" &
	local ppid=$!
	for _ in $(seq 1200); do
		[ -e "$tmp/ready" ] && break
		kill -0 "$ppid" 2>/dev/null || break
		sleep 0.1
	done
	[ -e "$tmp/ready" ] || die "$peer $role: the idle connections were not opened within 120 s"
	sleep 1
	after=$(mem_kb VmRSS "${PID[$peer-$role]}")
	n=$(cat "$tmp/ready")
	touch "$tmp/done"
	wait "$ppid" || die "$peer $role: some idle connections failed"
	IDLE_KB=$(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / n }')
	raw "$peer $role: $n idle keep-alive connections${4:+ (mTLS)}: RSS $before -> $after KB, $IDLE_KB KB each"
}
want memory && for peer in $proxies; do
	start_peer "$peer"
	idle "$peer" out "${OUT[$peer]}"
	R[$peer,kb_plain]=$IDLE_KB
	stop_peer "$peer"
done
want memory && for peer in $proxies; do
	start_peer "$peer"
	idle "$peer" in "${IN[$peer]}" "$certs/web.crt" "$certs/client.key" "$certs/old-root.pem" "$SNI"
	R[$peer,kb_mtls]=$IDLE_KB
	stop_peer "$peer"
done
stop app

# ---- report ----
commit="$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"
commit="$commit (dataplane/ last changed in $(git -C "$top" log -1 --format='%h %ad' --date=short -- dataplane 2>/dev/null))"
git -C "$top" diff --quiet HEAD -- dataplane 2>/dev/null || commit="$commit, with uncommitted changes to dataplane/"
[ -z "${WEFT_PROXY:-}" ] || commit="$WEFT_PROXY (WEFT_PROXY; this checkout: $commit)"
name() {
	case $1 in
	weft) echo "weft-proxy" ;; weft2) echo "weft-proxy ×2" ;; haproxy) echo "HAProxy" ;;
	nginx) echo "nginx" ;; direct) echo "direct" ;;
	esac
}
cell() {   # PEER METRIC [kb]: the figure, or -
	local v=${R[$1,$2]:-}
	if [ -z "$v" ]; then echo "-"; elif [ "${3:-}" = kb ]; then mb "$v"; else echo "$v"; fi
}
ratio() {   # PEER METRIC: PEER's figure / HAProxy's
	local a=${R[$1,$2]:-} b=${R[haproxy,$2]:-}
	if [ -z "$a" ] || [ -z "$b" ]; then echo "-"; else awk -v a="$a" -v b="$b" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'; fi
}
row() {   # LABEL METRIC [kb|noratio]
	local line="| $1 |" p
	for p in $peers; do line="$line $(cell "$p" "$2" "${3:-}") |"; done
	for p in $peers; do
		[ "$p" = haproxy ] && continue
		if [ "${3:-}" = noratio ]; then line="$line |"; else line="$line $(ratio "$p" "$2") |"; fi
	done
	echo "$line"
}
met() {   # VALUE OP LIMIT
	[ -n "$1" ] && [ -n "$3" ] || { echo "-"; return; }
	awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN { ok = (op == "ge") ? a >= b : a <= b; print ok ? "yes" : "no" }'
}
{
	echo "# weft-proxy data-plane benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "- weft-proxy: commit $commit"
	echo "- peers: $(haproxy -v | head -1 | cut -d' ' -f1-3); $(nginx -v 2>&1 | sed 's/^nginx version: //');" \
		"$(openssl version | cut -d' ' -f1-2) (all three use Debian's libssl3)"
	echo "- load: wrk $(dpkg-query -W -f='${Version}' wrk), hey $(dpkg-query -W -f='${Version}' hey);" \
		"app: nginx, 1 worker, a 1 KiB static file"
	echo "- machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)," \
		"kernel $(uname -r); load average before: $load_before (shared with other jobs: figures are noisy)"
	echo "- each proxy with 1 worker (HAProxy nbthread 1, nginx worker_processes 1); weft-proxy ×2: --workers 2"
	echo "- throughput: wrk -t$THREADS -c$CONNS, ${DURATION}s after ${WARMUP}s of warm-up, keep-alive;" \
		"latency: hey, $RATE req/s over $LAT_CONNS keep-alive connections, ${LAT_DURATION}s;" \
		"new connections: wrk -c$CONNS with Connection: close, ${CONN_DURATION}s; $ROUNDS round(s), peers interleaved;" \
		"figures taken: $FIGURES"
	echo "- memory: idle = right after start; peak = VmHWM after the load; per connection = RSS growth with" \
		"$IDLE idle keep-alive connections (each carried one request) / $IDLE, plaintext into the" \
		"outbound, mTLS into the inbound, each on a fresh pair. nginx: master + worker."
	for n in "${notes[@]}"; do echo "- note: $n"; done
	echo
	line="| figure |"; sep="| --- |"
	for p in $peers; do line="$line $(name "$p") |"; sep="$sep ---: |"; done
	for p in $peers; do [ "$p" = haproxy ] || { line="$line $(name "$p") / HAProxy |"; sep="$sep ---: |"; }; done
	echo "$line"
	echo "$sep"
	row "throughput, req/s" rps
	row "latency p50 at $RATE req/s, ms" p50
	row "latency p99 at $RATE req/s, ms" p99
	row "rate hey achieved, req/s (check: $RATE)" lat_rps noratio
	row "new connections/s (each request on new connections)" cps
	row "TCP accepts per request in that run (check: 3 through a pair, 1 direct)" accepts noratio
	row "new mTLS connections/s at the inbound (2 × openssl s_time -new, GET 1 KiB)" tls_cps
	row "inbound CPU per new mTLS connection, µs (lower is better)" tls_cpu
	row "CPU of both proxies per request at $RATE req/s, µs (lower is better)" lat_cpu
	row "outbound idle RSS, MB" out_idle_rss kb
	row "outbound idle RssAnon, MB" out_idle_anon kb
	row "inbound idle RSS, MB" in_idle_rss kb
	row "inbound idle RssAnon, MB" in_idle_anon kb
	row "outbound peak RSS (VmHWM), MB" out_hwm kb
	row "inbound peak RSS (VmHWM), MB" in_hwm kb
	row "KB per idle plaintext keep-alive connection (outbound)" kb_plain
	row "KB per idle mTLS connection (inbound)" kb_mtls
	row "errors (wrk: socket errors and non-2xx)" errors noratio
	echo
	echo "Ratios are the figure divided by HAProxy's: above 1 is better for req/s and connections/s, below 1 for the rest." \
		"hey reports latencies to 0.1 ms; the accepts per request count every TCP connection accepted on the machine during the run."
	for p in weft weft2; do
		case " $peers " in *" $p "*) ;; *) continue ;; esac
		echo
		echo "Targets (issue 6), $(name "$p"):"
		echo
		echo "| target | measured | met |"
		echo "| --- | --- | --- |"
		echo "| throughput ≥ HAProxy's | $(ratio "$p" rps) × | $(met "${R[$p,rps]:-}" ge "${R[haproxy,rps]:-}") |"
		echo "| new connections/s ≥ HAProxy's | $(ratio "$p" cps) × | $(met "${R[$p,cps]:-}" ge "${R[haproxy,cps]:-}") |"
		echo "| new mTLS connections/s ≥ HAProxy's | $(ratio "$p" tls_cps) × | $(met "${R[$p,tls_cps]:-}" ge "${R[haproxy,tls_cps]:-}") |"
		echo "| p99 ≤ HAProxy's | ${R[$p,p99]:-} ms vs ${R[haproxy,p99]:-} ms | $(met "${R[$p,p99]:-}" le "${R[haproxy,p99]:-}") |"
		echo "| idle RSS ≤ 8 MB per proxy | out $(cell "$p" out_idle_rss kb), in $(cell "$p" in_idle_rss kb) MB |" \
			"$(met "$(awk -v a="${R[$p,out_idle_rss]}" -v b="${R[$p,in_idle_rss]}" 'BEGIN { print (a > b ? a : b) }')" le 8192) |"
		echo "| RssAnon ≤ 3 MB per proxy | out $(cell "$p" out_idle_anon kb), in $(cell "$p" in_idle_anon kb) MB |" \
			"$(met "$(awk -v a="${R[$p,out_idle_anon]}" -v b="${R[$p,in_idle_anon]}" 'BEGIN { print (a > b ? a : b) }')" le 3072) |"
		echo "| ≤ 10 KB per idle plaintext connection | ${R[$p,kb_plain]:-} KB | $(met "${R[$p,kb_plain]:-}" le 10) |"
		echo "| ≤ 32 KB per idle mTLS connection | ${R[$p,kb_mtls]:-} KB | $(met "${R[$p,kb_mtls]:-}" le 32) |"
	done
	echo
	echo '```'
	cat "$tmp/checks"
	echo
	cat "$tmp/raw"
	echo '```'
} > "$tmp/report"
mkdir -p "$(dirname "$RESULTS")"
cp "$tmp/report" "$RESULTS"
cat "$tmp/report"
log "report written to $RESULTS"
