#!/bin/sh
# Browser tests of the web UI (make check): installs playwright-core from
# package-lock.json into tests/browser/node_modules when missing or when the
# lockfile changed, then runs ui.test.mjs with node's test runner against
# Debian's chromium. Skips (77) when chromium, node or npm is missing.
here=$(cd "$(dirname "$0")" && pwd)
chromium=${WEFT_CHROMIUM:-/usr/bin/chromium}
for need in node npm; do
	command -v "$need" >/dev/null 2>&1 || { echo "SKIP: $need is not installed (scripts/deps.sh --test)"; exit 77; }
done
[ -x "$chromium" ] || { echo "SKIP: $chromium is not installed (scripts/deps.sh --test installs chromium)"; exit 77; }
"$here/install.sh" || { echo "SKIP: cannot install playwright-core with npm ci (offline?)"; exit 77; }
cd "$here" || exit 1
exec node --test --test-reporter=spec --test-timeout=90000 ui.test.mjs
