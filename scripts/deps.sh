#!/bin/sh
# Installs the Debian packages Weft needs, only those missing (idempotent).
#   scripts/deps.sh          build and run
#   scripts/deps.sh --test   also what the test suite uses, and the browser
#                            tests' npm packages (tests/browser/install.sh)
#   scripts/deps.sh --bench  also the peers and load generators of
#                            bench/proxy.sh (HAProxy, nginx, wrk, hey)
set -e
BUILD="build-essential autoconf automake libtool pkg-config libsqlite3-dev libmicrohttpd-dev
libjansson-dev libsodium-dev libcurl4-openssl-dev libssl-dev libyaml-dev curl ca-certificates openssl
libevent-dev iptables"
TEST="libcmocka-dev python3 python3-consul prometheus clang libclang-rt-14-dev sqlite3 procps
iproute2 libhttp-parser-dev systemd iptables python3-grpcio"
want="$BUILD"
TEST="$TEST chromium"   # the browser tests (tests/browser) drive Debian's chromium
BENCH="haproxy nginx wrk hey procps python3"
[ "$1" = "--test" ] && want="$BUILD $TEST"
[ "$1" = "--bench" ] && want="$BUILD $BENCH"
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "deps: installing$missing" >&2
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The browser tests drive chromium with playwright-core from npm (test only;
# npm ci runs only when node_modules is missing or the lockfile changed).
if [ "$1" = "--test" ]; then
	if command -v npm >/dev/null 2>&1; then
		"$(dirname "$0")/../tests/browser/install.sh"
	else
		echo "deps: npm is missing: the browser tests will be skipped (install node and npm)" >&2
	fi
fi
