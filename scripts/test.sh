#!/bin/sh
# The whole test suite: installs what is missing, builds with -Werror, runs
# `make check` (unit, integration, fuzz corpus replay), then builds again with
# ASan+UBSan and runs the suite under the sanitizers.
#   WEFT_TEST_SANITIZE=0   skip the sanitizer pass (quicker, local use)
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/deps.sh --test

jobs=$(nproc)
status=0
total_pass=0 total_fail=0 total_skip=0

run_suite() {  # DIR LABEL [configure args]
	dir=$1 label=$2
	shift 2
	echo "== $label: building in $dir"
	scripts/build.sh "$dir" "$@"
	echo "== $label: make check"
	if ! (cd "$dir" && make -j"$jobs" check >check.out 2>&1); then
		status=1
		grep -E "^(FAIL|ERROR):" "$dir/check.out" || tail -30 "$dir/check.out"
		for log in $(grep -lE "^(FAIL|ERROR)" "$dir"/tests/*/*.log 2>/dev/null); do
			echo "---- $log"
			tail -60 "$log"
		done
	fi
	grep -E "^# (TOTAL|PASS|SKIP|FAIL|ERROR|XPASS|XFAIL):" "$dir/check.out" | sed "s/^/   /"
	p=$(sed -n 's/^# PASS: *//p' "$dir/check.out" | tail -1)
	f=$(sed -n 's/^# FAIL: *//p' "$dir/check.out" | tail -1)
	e=$(sed -n 's/^# ERROR: *//p' "$dir/check.out" | tail -1)
	s=$(sed -n 's/^# SKIP: *//p' "$dir/check.out" | tail -1)
	total_pass=$((total_pass + ${p:-0}))
	total_fail=$((total_fail + ${f:-0} + ${e:-0}))
	total_skip=$((total_skip + ${s:-0}))
	[ -n "$p" ] || { echo "$label: no test summary (build failed?)"; status=1; total_fail=$((total_fail + 1)); }
}

run_suite build "default build"
if [ "${WEFT_TEST_SANITIZE:-1}" != 0 ]; then
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
	san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
	run_suite build-asan "ASan+UBSan build" CFLAGS="-g -O1 $san" LDFLAGS="$san"
fi
echo "tests: $total_pass passed, $total_fail failed, $total_skip skipped" | tee build/test-summary.txt
exit $status
