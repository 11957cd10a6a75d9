#!/bin/sh
# Installs the browser tests' npm packages (package-lock.json) into
# tests/browser/node_modules, only when missing or when the lockfile changed.
set -e
cd "$(dirname "$0")"
stamp=node_modules/.weft-package-lock.json
if [ -d node_modules/playwright-core ] && cmp -s package-lock.json "$stamp"; then
	exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >&2
cp package-lock.json "$stamp"
