#!/bin/sh
# The main job: installs what is missing, builds, starts a standalone
# weft-server on the embedded SQLite store, registers a small sample catalog
# and prints where to look.
#   scripts/demo.sh          start (or restart) it
#   scripts/demo.sh stop     stop it
# Settings: WEFT_DEMO_ADDR (default 127.0.0.1:8500), WEFT_DEMO_DIR (./run).
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
addr=${WEFT_DEMO_ADDR:-127.0.0.1:8500}
run=${WEFT_DEMO_DIR:-$top/run}
pidfile="$run/weft-server.pid"

stop() {
	if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		kill -TERM "$(cat "$pidfile")"
		for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
		echo "demo: weft-server stopped"
	fi
	rm -f "$pidfile"
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
mkdir -p "$run/data"
build/server/weft-server --data-dir "$run/data" --http-addr "$addr" --node-name weft-demo \
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
build/ctl/weftctl intention create -file examples/policy/intentions/*.json >/dev/null

auth="-H \"X-Consul-Token: \$(cat $run/data/admin.token)\""
[ -n "$token" ] || auth=""
cat <<MSG

Weft is running: weft-server (standalone, SQLite store at $run/data/weft.db)
  UI:           http://$addr/ui/   (log in with the admin token below)
  API:          http://$addr   (Consul-compatible: point Consul tools here)
  admin token:  $run/data/admin.token   (mode 0600; send as X-Consul-Token)
  log:          $run/weft-server.log
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
