# Sourced by build.sh, image.sh, up.sh and down.sh: the work directory, its layout, and shared functions.
# Every script takes `--dir DIR` (or REALKUBE_DIR=DIR); default /var/tmp/realkube.
set -euo pipefail

KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=${QOSD_KUBE_DIR:-${REALKUBE_DIR:-/var/cache/qosd-kube}}
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) W=$2; shift 2 ;;
    --dir=*) W=${1#--dir=}; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
set -- "${ARGS[@]+"${ARGS[@]}"}"
case "$W" in /*) ;; *) W=$(pwd)/$W ;; esac
W=${W%/}
# unix socket paths are limited to 107 bytes; containerd's lives at $W/containerd/containerd.sock.ttrpc
[ ${#W} -le 60 ] || { echo "realkube: work dir path too long (max 60 characters): $W" >&2; exit 2; }

BIN=$W/bin
RUN=$W/run                      # pid files, rendered configs, env file, kubeconfig
LOGS=$W/logs
SRC=$W/src/kubernetes           # the upstream tree from Debian's source package
KROOT=$W/kubelet                # kubelet --root-dir
MANIFESTS=$W/manifests          # kubelet --pod-manifest-path (static pods)
PLUGINS=$W/volume-plugins       # kubelet --volume-plugin-dir (FlexVolume drivers: VENDOR~DRIVER/DRIVER)
CSOCK=$W/containerd/containerd.sock
IMAGE=localhost/busybox:local
IMAGE_TAR=$W/image/busybox-oci.tar
NODE_NAME=${REALKUBE_NODE_NAME:-localhost}
APISERVER=https://127.0.0.1:6443
# paths the kubelet and containerd use whatever their flags say; down.sh removes those up.sh created
HARDCODED=(/var/log/pods /var/log/containers /var/lib/kubelet/device-plugins /var/lib/kubelet /run/containerd)
CGROOT=/sys/fs/cgroup
# More nodes (REALKUBE_NODES, default 1): node-1, node-2, ... beside "localhost", each a kubelet and
# containerd of its own in network, mount and PID namespaces of its own (node.sh), on this bridge.
NODES=${REALKUBE_NODES:-1}
BRIDGE=qosdk0
BRIDGE_IP=10.231.0.1
NODES_DIR=$W/nodes
node_ip() { echo "10.231.0.$(( 10 + ${1#node-} ))"; }   # NODE: its address on the bridge
extra_nodes() { local i; for (( i = 1; i < NODES; i++ )); do echo "node-$i"; done; }

say() { echo "realkube: $*" >&2; }
die() { echo "realkube: error: $*" >&2; exit 1; }
now_s() { date +%s; }

# pid_alive NAME: true when $RUN/NAME.pid names a live process whose executable is still NAME's binary
pid_of() { [ -f "$RUN/$1.pid" ] && cat "$RUN/$1.pid" || true; }
pid_alive() {
  local pid; pid=$(pid_of "$1")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  local exe; exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  case "$exe" in *"/$2"|*"/$2 (deleted)") return 0 ;; *) return 1 ;; esac
}

# start NAME EXE ARGS...: runs EXE detached (setsid, no stdin), logs to $LOGS/NAME.log, pid file
start() {
  local name=$1; shift
  mkdir -p "$RUN" "$LOGS"
  [ -f "$LOGS/$name.log" ] && mv "$LOGS/$name.log" "$LOGS/$name.log.1"
  setsid "$@" < /dev/null > "$LOGS/$name.log" 2>&1 &
  echo $! > "$RUN/$name.pid"
}

# wait_until SECONDS WHAT CMD...: polls CMD every 0.5 s
wait_until() {
  local t=$1 what=$2; shift 2
  local end=$(( $(now_s) + t ))
  until "$@" > /dev/null 2>&1; do
    [ "$(now_s)" -lt "$end" ] || { say "timed out after ${t}s waiting for $what"; return 1; }
    sleep 0.5
  done
}

# stop NAME BINARY [SECONDS] [TERMS]: SIGTERM (TERMS times, 2 s apart), then SIGKILL after SECONDS
stop() {
  local name=$1 exe=$2 t=${3:-15} terms=${4:-1} pid i
  pid_alive "$name" "$exe" || { rm -f "$RUN/$name.pid"; return 0; }
  pid=$(pid_of "$name")
  for (( i = 0; i < terms; i++ )); do kill -TERM "$pid" 2>/dev/null || true; [ $i -lt $((terms - 1)) ] && sleep 2; done
  local end=$(( $(now_s) + t ))
  while [ -d "/proc/$pid" ] && [ "$(now_s)" -lt "$end" ]; do sleep 0.2; done
  if [ -d "/proc/$pid" ]; then say "$name ($pid) still running after ${t}s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$RUN/$name.pid"
}

# mounts_under DIR: mount points at or below DIR, deepest (latest) first
mounts_under() {
  awk -v d="$1" '{ m = $5; gsub(/\\040/, " ", m); if (m == d || index(m, d "/") == 1) print m }' /proc/self/mountinfo | tac
}

token() { cat "$W/pki/token" 2>/dev/null; }
api() { curl -sk --max-time 10 -H "Authorization: Bearer $(token)" "$@"; }
# node_ready NAME: the node is Ready and no longer tainted not-ready
node_ready() {
  api "$APISERVER/api/v1/nodes/$1" | jq -e '([.status.conditions[]? | select(.type == "Ready" and .status == "True")] | length == 1)
    and ([.spec.taints[]? | select(.key == "node.kubernetes.io/not-ready")] | length == 0)'
}

# kubelet_config MANIFESTS CSOCK PLUGINS ADDRESS [YAML_LINE...]: a kubelet's config file, on stdout.
# Its settings in a config file, as current kubelets take them. This host runs cgroup v1, which a
# kubelet refuses from 1.35 on unless failCgroupV1 is false (1.37 still runs on it when told so).
# Anonymous access and AlwaysAllow on its own port, as the 1.20 defaults were: the API server has
# no client certificate for it (logs, exec).
kubelet_config() {
  local manifests=$1 csock=$2 plugins=$3 address=$4; shift 4
  cat <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
failSwapOn: false
staticPodPath: $manifests
fileCheckFrequency: 5s
containerRuntimeEndpoint: unix://$csock
imageServiceEndpoint: unix://$csock
runtimeRequestTimeout: 5m
volumePluginDir: $plugins
volumeStatsAggPeriod: ${KUBELET_VOLUME_STATS_AGG_PERIOD:-1m}
address: $address
port: 10250
readOnlyPort: 10255
healthzBindAddress: $address
healthzPort: 10248
evictionHard: {memory.available: 100Mi}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
YAML
  local line; for line in "$@"; do echo "$line"; done
}
