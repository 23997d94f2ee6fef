#!/usr/bin/env bash
# npm test as an unprivileged user (default: nobody), on a copy of the checkout: the unit and API
# tests need no root and must pass there; the root-only tests skip, each saying why. The copy
# hard-links the files where it can (they stay read-only to the user) and gives the user its
# directories, so the build output and the tools' caches are its own.
set -euo pipefail
user=${1:-nobody}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/qosd-unprivileged-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -al "$repo/." "$work/" 2>/dev/null || cp -a "$repo/." "$work/"
rm -rf "$work/dist"
find "$work" -type d -exec chown "$user" {} +
cd "$work"
runuser -u "$user" -- env HOME="$work" npm_config_cache="$work/.npm" npm test
