#!/bin/sh
# A Weft mesh on "VMs": a weft-server and two VMs, each a network namespace
# with its own weft-agent, its service and that service's sidecar:
#
#   weft-srv  10.77.0.1   weft-server (HTTPS :8501, its own CA for the API)
#   weft-vm1  10.77.0.11  web (127.0.0.1:8080) + sidecar, upstream api on 127.0.0.1:9191
#   weft-vm2  10.77.0.12  api (127.0.0.1:9090) + sidecar
#
# joined by a bridge in a fourth namespace (weft-lan); nothing on the host's
# own interfaces changes. An intention lets web call api (GET /v1/...) and
# denies the rest. See README.md here for the walkthrough.
#   examples/vm-mesh/run.sh up       build if needed, start everything (root)
#   examples/vm-mesh/run.sh down     stop everything, remove the namespaces
# Settings: WEFT_VM_MESH_DIR (default ./run/vm-mesh), WEFT_BUILD (./build).
set -e
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
run=${WEFT_VM_MESH_DIR:-$top/run/vm-mesh}
bin=${WEFT_BUILD:-$top/build}
NAMESPACES="weft-srv weft-vm1 weft-vm2 weft-lan"

say() { echo "vm-mesh: $*"; }
die() { echo "vm-mesh: $*" >&2; exit 1; }
in_ns() { _ns=$1; shift; ip netns exec "$_ns" "$@"; }

down() {
	for p in "$run"/pids/*; do
		[ -f "$p" ] || continue
		kill -TERM "$(cat "$p")" 2>/dev/null || true
	done
	for _ in $(seq 50); do
		alive=""
		for p in "$run"/pids/*; do
			[ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null && alive=1
		done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for p in "$run"/pids/*; do
		[ -f "$p" ] && kill -KILL "$(cat "$p")" 2>/dev/null || true
		rm -f "$p"
	done
	for ns in $NAMESPACES; do
		ip netns del "$ns" 2>/dev/null || true
	done
}

# start NAME NS CMD...: a background process in namespace NS, logged and remembered
start() {
	_proc=$1 _ns=$2
	shift 2
	ip netns exec "$_ns" "$@" >"$run/$_proc.log" 2>&1 &
	echo $! >"$run/pids/$_proc"
}

wait_for() {  # SECONDS DESCRIPTION COMMAND...
	_secs=$1 _what=$2
	shift 2
	for _ in $(seq $((_secs * 10))); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	die "timed out after ${_secs}s waiting for $_what (logs in $run)"
}

up() {
	[ "$(id -u)" = 0 ] || die "needs root (it creates network namespaces)"
	command -v ip >/dev/null || die "needs iproute2 (ip)"
	if [ ! -x "$bin/agent/weft-agent" ]; then
		say "building"
		"$top/scripts/deps.sh" && "$top/scripts/build.sh" "$bin" >/dev/null
	fi
	down
	rm -rf "$run"
	mkdir -p "$run/pids" "$run/srv" "$run/vm1" "$run/vm2"
	chmod 700 "$run"

	say "network: namespaces weft-srv, weft-vm1, weft-vm2 on a bridge in weft-lan (10.77.0.0/24)"
	ip netns add weft-lan
	ip -n weft-lan link add br0 type bridge
	ip -n weft-lan link set br0 up
	ip -n weft-lan link set lo up
	for pair in srv:1 vm1:11 vm2:12; do
		name=${pair%%:*} host=${pair##*:}
		ip netns add "weft-$name"
		ip link add eth0 netns "weft-$name" type veth peer name "$name" netns weft-lan
		ip -n weft-lan link set "$name" master br0 up
		ip -n "weft-$name" addr add "10.77.0.$host/24" dev eth0
		ip -n "weft-$name" link set eth0 up
		ip -n "weft-$name" link set lo up
	done

	say "weft-server on 10.77.0.1 (HTTPS :8501, HTTP on its own loopback)"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
		-keyout "$run/srv/tls.key" -out "$run/srv/tls.pem" -subj "/CN=weft-server" \
		-addext "subjectAltName=IP:10.77.0.1" -addext "basicConstraints=critical,CA:FALSE" \
		>/dev/null 2>&1
	cp "$run/srv/tls.pem" "$run/server-ca.pem"
	start weft-server weft-srv "$bin/server/weft-server" --data-dir "$run/srv/data" \
		--http-addr 127.0.0.1:8500 --https-addr 10.77.0.1:8501 --tls-cert "$run/srv/tls.pem" \
		--tls-key "$run/srv/tls.key" --node-name weft-server
	wait_for 10 "weft-server" test -s "$run/srv/data/admin.token"
	wait_for 10 "weft-server's API" grep -q "sub=main ready" "$run/weft-server.log"
	admin=$(cat "$run/srv/data/admin.token")
	ctl() { in_ns weft-srv env WEFT_HTTP_ADDR=127.0.0.1:8500 WEFT_HTTP_TOKEN="$admin" "$bin/ctl/weftctl" "$@"; }
	ctl config write "$here/service-defaults.yaml" >/dev/null
	ctl config write "$here/intentions.yaml" >/dev/null

	for vm in vm1:11:web vm2:12:api; do
		name=${vm%%:*} rest=${vm#*:}
		host=${rest%%:*} svc=${rest##*:}
		ctl token create -kind agent -node "$name" -description "weft-agent on $name" |
			sed -n 's/^SecretID: *//p' >"$run/$name/agent.token"
		chmod 600 "$run/$name/agent.token"
		[ -s "$run/$name/agent.token" ] || die "could not create $name's agent token"
		mkdir -p "$run/$name/conf"
		cp "$here/$name/$svc.yaml" "$run/$name/conf/"
		say "$name (10.77.0.$host): $svc and weft-agent"
		if [ "$svc" = web ]; then
			start web weft-vm1 python3 "$here/apps/web.py" 8080 9191
		else
			start api weft-vm2 python3 "$here/apps/api.py" 9090
		fi
		start "agent-$name" "weft-$name" "$bin/agent/weft-agent" --server https://10.77.0.1:8501 \
			--server-ca "$run/server-ca.pem" --token-file "$run/$name/agent.token" \
			--node "$name" --address "10.77.0.$host" --config-dir "$run/$name/conf" \
			--data-dir "$run/$name/data" --proxy-bin "$bin/dataplane/weft-proxy"
	done
	wait_for 30 "web -> api through both sidecars" \
		in_ns weft-vm1 curl -sf http://127.0.0.1:8080/v1/items
	cat <<MSG

The mesh is up. web (on vm1) calls api (on vm2) through both sidecars, over
mTLS; api's sidecar enforces the intention (examples/vm-mesh/intentions.yaml).

  allowed (GET /v1/...):
    ip netns exec weft-vm1 curl -s http://127.0.0.1:9191/v1/items
  denied by the intention (DELETE), a 403 naming it in X-Weft-Denied-By:
    ip netns exec weft-vm1 curl -si -X DELETE http://127.0.0.1:9191/v1/items
  the same through the web app:
    ip netns exec weft-vm1 curl -s http://127.0.0.1:8080/v1/items
  the catalog, from the server:
    ip netns exec weft-srv curl -s -H "X-Consul-Token: \$(cat $run/srv/data/admin.token)" \\
        http://127.0.0.1:8500/v1/health/service/api
  a VM's agent (Consul's agent API):
    ip netns exec weft-vm2 curl -s -H "X-Consul-Token: \$(cat $run/vm2/agent.token)" \\
        http://127.0.0.1:8500/v1/agent/services
  logs: $run/*.log      stop: examples/vm-mesh/run.sh down
MSG
}

case "${1:-up}" in
up) up ;;
down) down; say "stopped" ;;
*) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
