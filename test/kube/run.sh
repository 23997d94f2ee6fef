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
# three nodes unless told otherwise (QOSD_KUBE_NODES=1: "localhost" alone); the scheduler with
# qosd's extender (deploy/kube-scheduler)
export REALKUBE_NODES=${REALKUBE_NODES:-${QOSD_KUBE_NODES:-3}}
export REALKUBE_SCHEDULER_CONFIG=$repo/deploy/kube-scheduler/scheduler-config.yaml
. "$here/lib.sh"
[ "$(id -u)" = 0 ] || die "npm run test:kube needs root"

started=$(now_s)
"$here/build.sh" all
say "binaries ready after $(( $(now_s) - started ))s"

Q=$W/qosd
# A sidecar exits when it loses qosd's socket (a test kills qosd); kubelet would restart its
# container, so each runs in a loop that restarts it (its own process group, stopped whole).
restarting() { # NAME EXE ARGS...
  local name=$1; shift
  start "$name" bash -c 'while :; do "$@"; echo "[run.sh] exited ($?); restarting it, as kubelet restarts a container"; sleep 1; done' restarting "$@"
}
stop_restarting() { # NAME
  local pid; pid=$(pid_of "$1")
  [ -n "$pid" ] && { kill -TERM -- "-$pid"; kill -CONT -- "-$pid"; } 2>/dev/null || true
  rm -f "$RUN/$1.pid"
}
cleanup() {
  local rc=$?
  for s in csi-resizer csi-provisioner $(extra_nodes | sed 's/$/.csi-provisioner/'); do stop_restarting "$s"; done
  stop scheduler-extender node 10 || true
  # qosd serves on while down.sh deletes the pods, so that kubelet can unmount their volumes
  "$here/down.sh" || rc=1
  stop csi-controller node 15 || true
  stop qosd node 15 || true
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
# the VolumeRequest resource and the node access first, as an install does (README): qosd watches
# VolumeRequests from the start, with a token of its own node's service account, not the admin's
K=("$BIN/kubectl" --kubeconfig "$RUN/kubeconfig")
"${K[@]}" apply -f "$repo/deploy/kubernetes/volume-requests.yaml" -f "$repo/deploy/kubernetes/node-access.yaml" >/dev/null
qosd_config() { # QOSD_DIR NODE KUBELET_ROOT CGROUP_ROOT SERVER: the node's service account's kubeconfig and qosd's config
  local q=$1 node=$2 server=$5
  "${K[@]}" -n qosd-nodes get serviceaccount "$node" >/dev/null 2>&1 || "${K[@]}" -n qosd-nodes create serviceaccount "$node" >/dev/null
  sed -e "s|user: {token: .*}|user: {token: $("${K[@]}" -n qosd-nodes create token "$node" --duration=24h)}|" \
      -e "s|server: \"[^\"]*\"|server: \"$server\"|" "$RUN/kubeconfig" > "$q/node-kubeconfig"
  chmod 600 "$q/node-kubeconfig"
  cat > "$q/config.yaml" <<YAML
socket: $q/qosd.sock
csi: { socket: $q/csi/csi.sock, nodeName: $node, kubeconfig: $q/node-kubeconfig }
stateDir: $q/state
logLevel: info
metrics: { listen: "off" }
kubelet: { rootDir: $3, cgroupRoot: $4, cgroupDriver: cgroupfs }
reconcile: { intervalSeconds: 2 }
pools:
  - { name: default, backend: file, path: $q/volumes, capacity: { readIops: 100000, writeIops: 100000, readBps: 5G, writeBps: 5G } }
defaults: { size: 64Mi }
YAML
}
qosd_config "$Q" "$REALKUBE_NODE_NAME" "$KUBELET_ROOT_DIR" / "$REALKUBE_APISERVER"
start qosd "$(command -v node)" "$repo/dist/cli/qosd.js" --config "$Q/config.yaml"
wait_until 30 qosd test -S "$Q/qosd.sock" || { tail -20 "$LOGS/qosd.log" >&2; die "qosd did not start"; }
node "$repo/dist/cli/qosctl.js" --socket "$Q/qosd.sock" install-flex --plugin-dir "$KUBELET_VOLUME_PLUGIN_DIR"
say "qosd up ($Q/qosd.sock, CSI $Q/csi/csi.sock registered through $KUBELET_ROOT_DIR/plugins_registry), flex driver in $KUBELET_VOLUME_PLUGIN_DIR/qosd~nvme"

# The CSI sidecars as deploy/kubernetes runs them, with the same arguments, as host processes:
# the addresses are the host's, each reaches the API server as its manifest's service account
# (the manifests' RBAC applied, their workloads not: there is no container engine for them), and
# the provisioner's capacity objects have no owner (there is no pod to own them).
"${K[@]}" apply -f "$repo/deploy/kubernetes/csi-driver.yaml" >/dev/null
manifest_docs() { # FILE KIND...: the manifest's documents of those kinds, as a JSON List
  node -e 'const y = require(process.argv[1]); const kinds = process.argv.slice(3);
    const items = y.parseAllDocuments(require("fs").readFileSync(process.argv[2], "utf8")).map((d) => d.toJS()).filter((d) => d && kinds.includes(d.kind));
    console.log(JSON.stringify({ apiVersion: "v1", kind: "List", items }));' "$repo/node_modules/yaml" "$@"
}
manifest_args() { # FILE CONTAINER: the container's args in a manifest, one per line
  node -e 'const y = require(process.argv[1]); const docs = y.parseAllDocuments(require("fs").readFileSync(process.argv[2], "utf8")).map((d) => d.toJS());
    const c = docs.flatMap((d) => d?.spec?.template?.spec?.containers ?? []).find((c) => c.name === process.argv[3]);
    for (const a of c.args) console.log(a);' "$repo/node_modules/yaml" "$1" "$2"
}
kubeconfig_of() { # SERVICEACCOUNT FILE: a kubeconfig with that kube-system account's token
  sed "s|user: {token: .*}|user: {token: $("${K[@]}" -n kube-system create token "$1" --duration=24h)}|" "$RUN/kubeconfig" > "$2"
  chmod 600 "$2"
}
for f in provisioner central-controller; do
  manifest_docs "$repo/deploy/kubernetes/$f.yaml" ServiceAccount ClusterRole ClusterRoleBinding Role RoleBinding | "${K[@]}" apply -f - >/dev/null
done
kubeconfig_of qosd-csi-provisioner "$Q/provisioner-kubeconfig"
kubeconfig_of qosd-csi-controller "$Q/central-kubeconfig"
mapfile -t provisioner_args < <(manifest_args "$repo/deploy/kubernetes/provisioner.yaml" csi-provisioner | grep -v '^--csi-address=\|^--capacity-ownerref-level=')
# Its periodic capacity poll is an hour here (the manifest keeps the default minute), so that the
# capacity a test sees change was refreshed by the admission or release itself.
restarting csi-provisioner env NODE_NAME="$REALKUBE_NODE_NAME" NAMESPACE=kube-system POD_NAME="qosd-csi-provisioner-$REALKUBE_NODE_NAME" \
  "$BIN/csi-provisioner" --csi-address="$Q/csi/csi.sock" --kubeconfig="$Q/provisioner-kubeconfig" --capacity-ownerref-level=-1 --capacity-poll-interval=1h "${provisioner_args[@]}"
mkdir -p "$Q/central"
start csi-controller "$(command -v node)" "$repo/dist/cli/qosd.js" csi-controller --socket "$Q/central/csi.sock" --kubeconfig "$Q/central-kubeconfig" --wait-seconds=8
wait_until 30 "qosd csi-controller" test -S "$Q/central/csi.sock" || { tail -20 "$LOGS/csi-controller.log" >&2; die "qosd csi-controller did not start"; }
mapfile -t resizer_args < <(manifest_args "$repo/deploy/kubernetes/central-controller.yaml" csi-resizer | grep -v '^--csi-address=\|^--leader-election')
restarting csi-resizer "$BIN/csi-resizer" --csi-address="$Q/central/csi.sock" --kubeconfig="$Q/central-kubeconfig" --leader-election=false "${resizer_args[@]}"
sleep 2
for s in csi-provisioner csi-resizer; do
  pgrep -x "$s" >/dev/null && ! grep -q '^\[run.sh\] exited' "$LOGS/$s.log" || { tail -20 "$LOGS/$s.log" >&2; die "$s did not start"; }
done
say "csi-provisioner ($(grep ^csi-provisioner "$BIN/BUILDINFO" | cut -d' ' -f2)) and csi-resizer ($(grep ^csi-resizer "$BIN/BUILDINFO" | cut -d' ' -f2)) up"

# The other nodes: on each, qosd in the node's namespaces (its kubelet root, its cgroup root, the
# API server through the bridge), its flex driver, and its provisioner, as the DaemonSets run them.
for NODE in $(extra_nodes); do
  . "$here/node-lib.sh"
  nq=$ND/qosd
  mkdir -p "$nq/volumes" "$nq/state"
  qosd_config "$nq" "$NODE" "$ND/kubelet" "/$NODE" "https://$BRIDGE_IP:6443"
  in_node "$NODE.qosd" "$(command -v node)" "$repo/dist/cli/qosd.js" --config "$nq/config.yaml"
  wait_until 30 "$NODE's qosd" test -S "$nq/qosd.sock" || { tail -20 "$LOGS/$NODE.qosd.log" >&2; die "$NODE's qosd did not start"; }
  node "$repo/dist/cli/qosctl.js" --socket "$nq/qosd.sock" install-flex --plugin-dir "$ND/volume-plugins" >/dev/null
  sed "s|server: \"[^\"]*\"|server: \"https://$BRIDGE_IP:6443\"|" "$Q/provisioner-kubeconfig" > "$nq/provisioner-kubeconfig"
  # in the node's namespaces, restarted as kubelet restarts a container (its process group: the
  # pid file names nsenter, stop_restarting ends the group)
  start "$NODE.csi-provisioner" nsenter --target "$(node_init)" --mount --pid --net --wd=/ -- \
    bash -c 'while :; do "$@"; echo "[run.sh] exited ($?); restarting it"; sleep 1; done' restarting \
    env NODE_NAME="$NODE" NAMESPACE=kube-system POD_NAME="qosd-csi-provisioner-$NODE" \
    "$BIN/csi-provisioner" --csi-address="$nq/csi/csi.sock" --kubeconfig="$nq/provisioner-kubeconfig" --capacity-ownerref-level=-1 --capacity-poll-interval=1h "${provisioner_args[@]}"
  say "$NODE: qosd, its flex driver and csi-provisioner up"
done

# qosd's scheduler extender, as its manifest runs it beside kube-scheduler (the scheduler's
# configuration, deploy/kube-scheduler, names it; up.sh started the scheduler with it)
manifest_docs "$repo/deploy/kubernetes/scheduler-extender.yaml" ServiceAccount ClusterRole ClusterRoleBinding | "${K[@]}" apply -f - >/dev/null
kubeconfig_of qosd-scheduler-extender "$Q/extender-kubeconfig"
start scheduler-extender "$(command -v node)" "$repo/dist/cli/qosd.js" scheduler-extender --kubeconfig "$Q/extender-kubeconfig" --listen 127.0.0.1:8998 --log-level debug
wait_until 30 "qosd scheduler-extender" sh -c "ss -Hltn 'sport = :8998' | grep -q LISTEN" || { tail -20 "$LOGS/scheduler-extender.log" >&2; die "qosd scheduler-extender did not start"; }

export QOSD_KUBE_RUN="$RUN" QOSD_KUBE_DIR="$W" QOSD_KUBE_BIN="$BIN" QOSD_KUBE_QOSD="$Q" QOSD_KUBE_LOGS="$LOGS" QOSD_KUBE_HARNESS="$here"
cd "$repo"
npx vitest run --config vitest.kube.config.mts "$@"
