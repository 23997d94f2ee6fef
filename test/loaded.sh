#!/usr/bin/env bash
# Runs a command (default: the host suite, as CI runs it) while two CPU hogs run beside it at the
# same priority (nice 0), as when CI's own Kubernetes build shares the machine's two cores with the
# tests. The suite must hold there: no test may depend on the machine's speed.
#   bash test/loaded.sh                 # QOSD_REQUIRE_NODE_TESTS=1 npm test
#   bash test/loaded.sh .ci/run         # the whole CI run
set -euo pipefail
cd "$(dirname "$0")/.."
hogs=()
stop_hogs() { for p in "${hogs[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap stop_hogs EXIT
for _ in 1 2; do
  nice -n 0 sh -c 'while :; do :; done' &
  hogs+=($!)
done
echo "test:loaded: two CPU hogs (pids ${hogs[*]}) beside: ${*:-npm test}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
started=$(date +%s)
status=0
if [ $# -eq 0 ]; then
  QOSD_REQUIRE_NODE_TESTS=1 npm test || status=$?
else
  "$@" || status=$?
fi
echo "test:loaded: exit ${status} after $(( $(date +%s) - started )) s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
