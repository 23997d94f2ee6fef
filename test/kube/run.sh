#!/usr/bin/env bash
# npm run test:kube (root): qosd against a real Kubernetes node. Builds (once, into the cache
# /var/cache/qosd-kube; QOSD_KUBE_DIR moves it) Kubernetes v1.37.2 (kubelet, kube-apiserver,
# kube-scheduler, kube-controller-manager, kubectl), etcd, the CSI sidecars and csi-sanity from
# their pinned Go modules (build.sh), starts containerd, etcd, the control plane and a kubelet
# (cgroupfs driver, the host's cgroup v1) with qosd's flex driver in its volume plugin directory,
# qosd beside it, and the CSI sidecars as the manifests in deploy/kubernetes run them (host
# processes: there is no container engine here), runs test/kube/*.kube.ts, and tears everything
# down whatever the outcome (down.sh: by pid file, then mounts, cgroups and the paths kubelet
# hard-codes). The harness scripts (lib.sh, build.sh, image.sh, up.sh, down.sh) are the team's
# realkube kit, moved to a current release.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
[ "$(id -u)" = 0 ] || die "npm run test:kube needs root"

started=$(now_s)
"$here/build.sh" all
say "binaries ready after $(( $(now_s) - started ))s"

Q=$W/qosd
cleanup() {
  local rc=$?
  for s in csi-resizer csi-provisioner; do stop "$s" "$s" 15 || true; done
  stop csi-controller node 15 || true
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
KUBELET_VOLUME_STATS_AGG_PERIOD=2s "$here/up.sh" --api
. "$RUN/env"

# qosd beside the kubelet, on the kubelet's root dir and cgroup layout
rm -rf "$Q"; mkdir -p "$Q/volumes" "$Q/state"
cat > "$Q/config.yaml" <<YAML
socket: $Q/qosd.sock
csi: { socket: $Q/csi/csi.sock, nodeName: $REALKUBE_NODE_NAME, kubeconfig: $RUN/kubeconfig }
stateDir: $Q/state
logLevel: info
metrics: { listen: "off" }
kubelet: { rootDir: $KUBELET_ROOT_DIR, cgroupRoot: /, cgroupDriver: cgroupfs }
reconcile: { intervalSeconds: 2 }
pools:
  - { name: default, backend: file, path: $Q/volumes, capacity: { readIops: 100000, writeIops: 100000, readBps: 5G, writeBps: 5G } }
defaults: { size: 64Mi }
YAML
# the VolumeRequest resource first, as an install does: qosd watches it from the start
"$BIN/kubectl" --kubeconfig "$RUN/kubeconfig" apply -f "$repo/deploy/kubernetes/volume-requests.yaml" >/dev/null
start qosd "$(command -v node)" "$repo/dist/cli/qosd.js" --config "$Q/config.yaml"
wait_until 30 qosd test -S "$Q/qosd.sock" || { tail -20 "$LOGS/qosd.log" >&2; die "qosd did not start"; }
node "$repo/dist/cli/qosctl.js" --socket "$Q/qosd.sock" install-flex --plugin-dir "$KUBELET_VOLUME_PLUGIN_DIR"
say "qosd up ($Q/qosd.sock, CSI $Q/csi/csi.sock registered through $KUBELET_ROOT_DIR/plugins_registry), flex driver in $KUBELET_VOLUME_PLUGIN_DIR/qosd~nvme"

# The CSI sidecars as deploy/kubernetes runs them, with the same arguments, as host processes:
# the addresses are the host's, the API server is reached with this cluster's kubeconfig, and the
# provisioner's capacity objects have no owner (there is no pod to own them).
"$BIN/kubectl" --kubeconfig "$RUN/kubeconfig" apply -f "$repo/deploy/kubernetes/csi-driver.yaml" >/dev/null
manifest_args() { # the container's args in a manifest, one per line
  node -e 'const y = require(process.argv[1]); const docs = y.parseAllDocuments(require("fs").readFileSync(process.argv[2], "utf8")).map((d) => d.toJS());
    const c = docs.flatMap((d) => d?.spec?.template?.spec?.containers ?? []).find((c) => c.name === process.argv[3]);
    for (const a of c.args) console.log(a);' "$repo/node_modules/yaml" "$1" "$2"
}
mapfile -t provisioner_args < <(manifest_args "$repo/deploy/kubernetes/provisioner.yaml" csi-provisioner | grep -v '^--csi-address=\|^--capacity-ownerref-level=')
start csi-provisioner env NODE_NAME="$REALKUBE_NODE_NAME" NAMESPACE=kube-system POD_NAME="qosd-csi-provisioner-$REALKUBE_NODE_NAME" \
  "$BIN/csi-provisioner" --csi-address="$Q/csi/csi.sock" --kubeconfig="$RUN/kubeconfig" --capacity-ownerref-level=-1 "${provisioner_args[@]}"
mkdir -p "$Q/central"
start csi-controller "$(command -v node)" "$repo/dist/cli/qosd.js" csi-controller --socket "$Q/central/csi.sock" --kubeconfig "$RUN/kubeconfig" --wait-seconds=8
wait_until 30 "qosd csi-controller" test -S "$Q/central/csi.sock" || { tail -20 "$LOGS/csi-controller.log" >&2; die "qosd csi-controller did not start"; }
mapfile -t resizer_args < <(manifest_args "$repo/deploy/kubernetes/central-controller.yaml" csi-resizer | grep -v '^--csi-address=\|^--leader-election')
start csi-resizer "$BIN/csi-resizer" --csi-address="$Q/central/csi.sock" --kubeconfig="$RUN/kubeconfig" --leader-election=false "${resizer_args[@]}"
sleep 2
for s in csi-provisioner csi-resizer; do pid_alive "$s" "$s" || { tail -20 "$LOGS/$s.log" >&2; die "$s did not start"; }; done
say "csi-provisioner ($(grep ^csi-provisioner "$BIN/BUILDINFO" | cut -d' ' -f2)) and csi-resizer ($(grep ^csi-resizer "$BIN/BUILDINFO" | cut -d' ' -f2)) up"

export QOSD_KUBE_RUN="$RUN" QOSD_KUBE_DIR="$W" QOSD_KUBE_BIN="$BIN" QOSD_KUBE_QOSD="$Q" QOSD_KUBE_LOGS="$LOGS" QOSD_KUBE_HARNESS="$here"
cd "$repo"
npx vitest run --config vitest.kube.config.mts "$@"
