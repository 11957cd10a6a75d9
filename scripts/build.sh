#!/bin/sh
# Bootstraps autotools and builds in DIR (default: build/), with extra
# configure arguments after it. Reconfigures only when needed.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
[ $# -gt 0 ] && shift
cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] && [ configure -nt Makefile.am ] || ./autogen.sh >/dev/null 2>&1 || ./autogen.sh
mkdir -p "$dir"
cd "$dir"
if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ] || [ "$*" != "$(cat .configure-args 2>/dev/null)" ]; then
	"$top/configure" --enable-werror "$@" >configure.out 2>&1 || { tail -20 configure.out; exit 1; }
	echo "$*" > .configure-args
fi
make -j"$(nproc)" >make.out 2>&1 || { grep -E "error|Error" make.out | head -40; exit 1; }
