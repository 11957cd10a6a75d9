#!/bin/sh
# The main job: installs what is missing, builds, and brings up a mesh on
# this machine: a standalone weft-server on the embedded SQLite store (with
# the policy of examples/policy and a small sample catalog), and two "VMs",
# each a weft-agent on its own loopback address with one service and its
# sidecar weft-proxy:
#   vm1 127.0.0.2   web (127.0.0.1:8080), its sidecar, upstream api on 127.0.0.1:9191
#   vm2 127.0.0.3   api (127.0.0.1:9090) and its sidecar
# web may call api (GET /v...), everything else is denied
# (examples/policy/service-intentions-api.yaml). Prints where to look.
#   scripts/demo.sh          start (or restart) it
#   scripts/demo.sh stop     stop it
# Settings: WEFT_DEMO_ADDR (default 127.0.0.1:8500), WEFT_DEMO_DIR (./run).
# (examples/vm-mesh/run.sh is the same mesh in network namespaces, as root.)
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
addr=${WEFT_DEMO_ADDR:-127.0.0.1:8500}
run=${WEFT_DEMO_DIR:-$top/run}
pidfile="$run/weft-server.pid"
host=${addr%:*}
https_addr="$host:$((${addr##*:} + 1))"

# stop_pid FILE NAME: SIGTERM, wait up to 10 s (agents drain their proxies)
stop_pid() {
	if [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; then
		kill -TERM "$(cat "$1")"
		for _ in $(seq 100); do kill -0 "$(cat "$1")" 2>/dev/null || break; sleep 0.1; done
		echo "demo: $2 stopped"
	fi
	rm -f "$1"
}
stop() {
	for p in "$run"/mesh/*.pid; do
		[ -f "$p" ] && stop_pid "$p" "$(basename "$p" .pid)"
	done
	stop_pid "$pidfile" weft-server
}
if [ "$1" = "stop" ]; then stop; exit 0; fi

scripts/deps.sh
echo "demo: building (first time takes a minute)"
scripts/build.sh build
stop
if curl -s -o /dev/null --max-time 2 "http://$addr/"; then
	echo "demo: something already listens on $addr; stop it or set WEFT_DEMO_ADDR=127.0.0.1:PORT" >&2
	exit 1
fi
mkdir -p "$run/data" "$run/tls"
chmod 700 "$run" "$run/tls"
# HTTPS for the agents, with a certificate of its own (they verify it)
if [ ! -s "$run/tls/server.pem" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
		-keyout "$run/tls/server.key" -out "$run/tls/server.pem" -subj "/CN=weft-demo" \
		-addext "subjectAltName=IP:$host" -addext "basicConstraints=critical,CA:FALSE" \
		>/dev/null 2>&1
fi
build/server/weft-server --data-dir "$run/data" --http-addr "$addr" --node-name weft-demo \
	--https-addr "$https_addr" --tls-cert "$run/tls/server.pem" --tls-key "$run/tls/server.key" \
	>"$run/weft-server.log" 2>&1 &
echo $! > "$pidfile"
up=""
for _ in $(seq 100); do
	kill -0 "$(cat "$pidfile")" 2>/dev/null || break
	if grep -q "level=info sub=main ready" "$run/weft-server.log"; then up=1; break; fi
	sleep 0.1
done
if [ -z "$up" ]; then
	echo "demo: weft-server did not start; its log ($run/weft-server.log) ends with:" >&2
	tail -5 "$run/weft-server.log" >&2
	rm -f "$pidfile"
	exit 1
fi
token=$(cat "$run/data/admin.token" 2>/dev/null || true)
api() {  # METHOD PATH [BODY]
	curl -sf -X "$1" -H "X-Consul-Token: $token" "http://$addr$2" ${3:+--data-binary "$3"} >/dev/null
}
# A small catalog: two web instances (one failing its check), an api and a db.
api PUT /v1/catalog/register '{"Node":"vm-web-1","Address":"10.0.1.11","NodeMeta":{"zone":"a"},
 "Service":{"Service":"web","Port":8080,"Tags":["v1","frontend"],"Meta":{"version":"1.4.2"}},
 "Check":{"CheckID":"web-http","Name":"HTTP on :8080","ServiceID":"web","Status":"passing"}}'
api PUT /v1/catalog/register '{"Node":"vm-web-2","Address":"10.0.1.12","NodeMeta":{"zone":"b"},
 "Service":{"Service":"web","Port":8080,"Tags":["v2","frontend"],"Meta":{"version":"1.5.0"}},
 "Check":{"CheckID":"web-http","Name":"HTTP on :8080","ServiceID":"web","Status":"critical",
 "Output":"dial tcp 10.0.1.12:8080: connection refused"}}'
api PUT /v1/catalog/register '{"Node":"vm-api-1","Address":"10.0.2.21",
 "Service":{"Service":"api","Port":9090,"Tags":["grpc"]},
 "Check":{"CheckID":"api-grpc","Name":"gRPC health","ServiceID":"api","Status":"passing"}}'
api PUT /v1/catalog/register '{"Node":"vm-db-1","Address":"10.0.3.31",
 "Service":{"Service":"postgres","Port":5432,"Tags":["primary"]}}'

# Policy: the config entries and intentions of examples/policy/.
export WEFT_HTTP_ADDR="$addr" WEFT_HTTP_TOKEN="$token"
for kind in proxy-defaults service-defaults service-resolver service-splitter service-router \
	service-intentions mesh; do
	for f in examples/policy/$kind*.yaml; do
		[ -f "$f" ] && build/ctl/weftctl config write "$f" >/dev/null
	done
done
# (a restart keeps the store: only the intentions not there yet are created)
for f in examples/policy/intentions/*.json; do
	src=$(sed -n 's/.*"SourceName": *"\([^"]*\)".*/\1/p' "$f")
	dst=$(sed -n 's/.*"DestinationName": *"\([^"]*\)".*/\1/p' "$f")
	if ! curl -sf -o /dev/null -H "X-Consul-Token: $token" -G "http://$addr/v1/connect/intentions/exact" \
		--data-urlencode "source=$src" --data-urlencode "destination=$dst"; then
		build/ctl/weftctl intention create -file "$f" >/dev/null
	fi
done

# The mesh: two "VMs" on loopback addresses, each with its agent, app and sidecar.
mesh="$run/mesh"
rm -rf "$mesh"
mkdir -p "$mesh"
for port in 8080 9090 9191; do
	if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
		echo "demo: 127.0.0.1:$port is taken; the mesh's apps need 8080, 9090 and 9191" >&2
		exit 1
	fi
done
python3 examples/vm-mesh/apps/web.py 8080 9191 >"$mesh/web.log" 2>&1 &
echo $! >"$mesh/web.pid"
python3 examples/vm-mesh/apps/api.py 9090 >"$mesh/api.log" 2>&1 &
echo $! >"$mesh/api.pid"
for vm in vm1:2:web:19000 vm2:3:api:19100; do
	name=${vm%%:*}; rest=${vm#*:}; last=${rest%%:*}; rest=${rest#*:}; svc=${rest%%:*}
	admin_base=${rest#*:}
	mkdir -p "$mesh/$name/conf"
	cp "examples/vm-mesh/$name/$svc.yaml" "$mesh/$name/conf/"
	build/ctl/weftctl token create -kind agent -node "$name" -description "demo agent $name" |
		sed -n 's/^SecretID: *//p' >"$mesh/$name/agent.token"
	chmod 600 "$mesh/$name/agent.token"
	build/agent/weft-agent --server "https://$https_addr" --server-ca "$run/tls/server.pem" \
		--token-file "$mesh/$name/agent.token" --node "$name" --address "127.0.0.$last" \
		--http-addr "127.0.0.$last:8500" --config-dir "$mesh/$name/conf" \
		--data-dir "$mesh/$name/data" --proxy-admin-base "$admin_base" \
		>"$mesh/agent-$name.log" 2>&1 &
	echo $! >"$mesh/agent-$name.pid"
done
ok=""
for _ in $(seq 300); do
	if curl -sf -o /dev/null --max-time 2 http://127.0.0.1:9191/v1/items; then ok=1; break; fi
	sleep 0.1
done
if [ -z "$ok" ]; then
	echo "demo: the mesh did not come up in 30 s; logs in $mesh:" >&2
	tail -3 "$mesh"/agent-*.log >&2
	exit 1
fi

auth="-H \"X-Consul-Token: \$(cat $run/data/admin.token)\""
[ -n "$token" ] || auth=""
cat <<MSG

Weft is running: weft-server (standalone, SQLite store at $run/data/weft.db)
and a mesh of two VMs: web (vm1, 127.0.0.2) calls api (vm2, 127.0.0.3)
through both sidecars over mTLS, each run by the weft-agent of its VM.

Through the mesh:
  curl -s http://127.0.0.1:9191/v1/items                 # web's sidecar -> api: allowed
  curl -si -X DELETE http://127.0.0.1:9191/v1/items      # denied: 403, X-Weft-Denied-By names the intention
  curl -s http://127.0.0.1:8080/v1/items                 # the web app, calling api through the mesh
  curl -s -H "X-Consul-Token: \$(cat $mesh/vm2/agent.token)" http://127.0.0.3:8500/v1/agent/services
                                                         # vm2's agent: Consul's agent API
  UI:           http://$addr/ui/   (log in with the admin token below)
  API:          http://$addr   (Consul-compatible: point Consul tools here)
  admin token:  $run/data/admin.token   (mode 0600; send as X-Consul-Token)
  logs:         $run/weft-server.log, $mesh/*.log, $mesh/vm*/data/proxies/*/proxy.log
  stop:         scripts/demo.sh stop

Try:
  curl -s $auth http://$addr/v1/catalog/services
  curl -s $auth 'http://$addr/v1/health/service/web?passing'
  curl -s $auth http://$addr/v1/catalog/nodes
  curl -s $auth 'http://$addr/v1/catalog/service/web?index=1&wait=30s'   # a blocking query
MSG
cat <<MSG

With weftctl (policy from examples/policy/ is loaded):
  export WEFT_HTTP_ADDR=$addr WEFT_HTTP_TOKEN=\$(cat $run/data/admin.token)
  build/ctl/weftctl services
  build/ctl/weftctl intention list
  build/ctl/weftctl intention check web billing
  build/ctl/weftctl intention explain web api -method DELETE -path /v1/items
  build/ctl/weftctl intention analyze
  build/ctl/weftctl config read -kind service-router -name api
MSG
exit 0
