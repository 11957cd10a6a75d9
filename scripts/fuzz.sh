#!/bin/sh
# Builds the libFuzzer targets (clang, ASan+UBSan) in build-fuzz/ and runs
# each tests/fuzz/fuzz_NAME for SECONDS (default 30) on its seed corpus
# tests/fuzz/corpus/NAME/ with its dictionary tests/fuzz/NAME.dict.
# Fails on any crash, leak, timeout or out-of-memory; the input that did it
# is left in build-fuzz/artifacts/. New inputs found go to
# build-fuzz/corpus/NAME/ (not the seed corpus: copy the useful ones by hand).
#   scripts/fuzz.sh [SECONDS] [NAME...]
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-30}
[ $# -gt 0 ] && shift
case $secs in *[!0-9]*|'') echo "usage: scripts/fuzz.sh [SECONDS] [NAME...]" >&2; exit 2;; esac
cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] && [ configure -nt Makefile.am ] || ./autogen.sh >/dev/null 2>&1 || ./autogen.sh
mkdir -p build-fuzz
cd build-fuzz
if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
	CC=clang "$top/configure" --enable-fuzz --disable-unit-tests CFLAGS="-O1 -g" \
		>configure.out 2>&1 || { tail -20 configure.out; exit 1; }
fi
# The targets are those wired in tests/fuzz/Makefile.inc.
wired=$(make -s print-fuzz-targets | tr ' ' '\n' | sed -n 's|^tests/fuzz/fuzz_||p')
for f in "$top"/tests/fuzz/fuzz_*.c; do
	n=${f##*/fuzz_}
	n=${n%.c}
	echo "$wired" | grep -qx "$n" ||
		echo "fuzz: warning: tests/fuzz/fuzz_$n.c is not in tests/fuzz/Makefile.inc; skipped" >&2
done
if [ $# -gt 0 ]; then
	names="$*"
else
	names=$wired
fi
targets=""
for n in $names; do
	echo "$wired" | grep -qx "$n" || { echo "fuzz: no target $n in tests/fuzz/Makefile.inc" >&2; exit 2; }
	targets="$targets tests/fuzz/fuzz_$n"
done
# shellcheck disable=SC2086
make -j"$(nproc)" $targets >make.out 2>&1 || { grep -E "error|Error" make.out | head -40; exit 1; }

mkdir -p artifacts
status=0
for n in $names; do
	mkdir -p "corpus/$n"
	dict=""
	[ -f "$top/tests/fuzz/$n.dict" ] && dict="-dict=$top/tests/fuzz/$n.dict"
	echo "fuzz: $n for ${secs}s"
	# -timeout: one input may take at most 10 s; -rss_limit_mb: memory cap;
	# leaks are detected (ASan's LeakSanitizer) and fail the run.
	# shellcheck disable=SC2086
	if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"./tests/fuzz/fuzz_$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-max_len=16384 -print_final_stats=1 -artifact_prefix="artifacts/$n-" $dict \
		"corpus/$n" "$top/tests/fuzz/corpus/$n" >"fuzz-$n.log" 2>&1; then
		echo "fuzz: $n FAILED; see build-fuzz/fuzz-$n.log and build-fuzz/artifacts/" >&2
		grep -E "ERROR|SUMMARY|Test unit written" "fuzz-$n.log" | head -10 >&2
		status=1
	else
		grep -E "^stat::number_of_executed_units|^stat::new_units_added" "fuzz-$n.log" |
			sed "s/^/fuzz: $n /"
	fi
done
[ $status -eq 0 ] && echo "fuzz: all targets ran ${secs}s without a crash, leak or timeout"
exit $status
