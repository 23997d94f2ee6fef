#!/usr/bin/env bash
# npm run test:kube (root): qosd against a real Kubernetes node. Builds (once, into the cache
# /var/cache/qosd-kube; QOSD_KUBE_DIR moves it) kubelet, kube-apiserver, kube-scheduler,
# kube-controller-manager and kubectl v1.20.2 from Debian's source package, starts containerd,
# etcd, the control plane and a kubelet (cgroupfs driver, the host's cgroup v1) with qosd's flex
# driver in its volume plugin directory and qosd running beside it, runs test/kube/*.kube.ts, and
# tears everything down whatever the outcome (down.sh: by pid file, then mounts, cgroups and the
# paths kubelet hard-codes). The harness scripts (lib.sh, build.sh, image.sh, up.sh, down.sh) are
# the team's measured realkube kit; its README lists every error met on this kind of machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
[ "$(id -u)" = 0 ] || die "npm run test:kube needs root"

started=$(now_s)
"$here/build.sh" kubelet api kubectl
say "binaries ready after $(( $(now_s) - started ))s"

Q=$W/qosd
cleanup() {
  local rc=$?
  stop qosd node 15 || true
  "$here/down.sh" || rc=1
  # qosd's volumes: their loop devices and backing files (the volumes of a run are not kept)
  for l in $(losetup -j "$Q/volumes" -O NAME -n 2>/dev/null || true); do losetup -d "$l" 2>/dev/null || true; done
  for f in "$Q"/volumes/*.img; do [ -f "$f" ] || continue; for l in $(losetup -j "$f" -O NAME -n); do losetup -d "$l" || true; done; done
  rm -rf "$Q"
  exit $rc
}
trap cleanup EXIT

# A cluster of its own each run: the tests name their pods, and pods or events an interrupted run
# left in etcd would meet them (an old pod's events were read as the new one's).
rm -rf "$W/etcd"
# kubelet asks CSI drivers for volume stats every 2 s instead of every minute (csi.kube.ts reads them)
KUBELET_EXTRA=--volume-stats-agg-period=2s "$here/up.sh" --api
. "$RUN/env"

# qosd beside the kubelet, on the kubelet's root dir and cgroup layout
rm -rf "$Q"; mkdir -p "$Q/volumes" "$Q/state"
cat > "$Q/config.yaml" <<YAML
socket: $Q/qosd.sock
csi: { socket: $Q/csi.sock, nodeName: $REALKUBE_NODE_NAME, kubeconfig: $RUN/kubeconfig }
stateDir: $Q/state
logLevel: info
metrics: { listen: "off" }
kubelet: { rootDir: $KUBELET_ROOT_DIR, cgroupRoot: /, cgroupDriver: cgroupfs }
reconcile: { intervalSeconds: 2 }
pools:
  - { name: default, backend: file, path: $Q/volumes, capacity: { readIops: 20000, writeIops: 20000, readBps: 2G, writeBps: 2G } }
defaults: { size: 64Mi }
YAML
# the VolumeRequest resource first, as an install does: qosd watches it from the start
"$BIN/kubectl" --kubeconfig "$RUN/kubeconfig" apply -f "$repo/deploy/kubernetes/volume-requests.yaml" >/dev/null
start qosd "$(command -v node)" "$repo/dist/cli/qosd.js" --config "$Q/config.yaml"
wait_until 30 qosd test -S "$Q/qosd.sock" || { tail -20 "$LOGS/qosd.log" >&2; die "qosd did not start"; }
node "$repo/dist/cli/qosctl.js" --socket "$Q/qosd.sock" install-flex --plugin-dir "$KUBELET_VOLUME_PLUGIN_DIR"
say "qosd up ($Q/qosd.sock, CSI $Q/csi.sock registered through $KUBELET_ROOT_DIR/plugins_registry), flex driver in $KUBELET_VOLUME_PLUGIN_DIR/qosd~nvme"

export QOSD_KUBE_RUN="$RUN" QOSD_KUBE_BIN="$BIN" QOSD_KUBE_QOSD="$Q" QOSD_KUBE_LOGS="$LOGS" QOSD_KUBE_HARNESS="$here"
cd "$repo"
npx vitest run --config vitest.kube.config.mts "$@"
