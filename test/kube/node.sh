#!/bin/bash
# node.sh [--dir DIR] up|down NODE: one more node of the cluster up.sh --api started (NODE is
# node-1, node-2, ...), on this machine as a container runtime would make it: network, mount and
# PID namespaces of its own, whose first process (node-init.sh) binds the node's own directories
# over the paths kubelet and containerd hard-code; its containerd and kubelet, and whatever a
# caller starts with `in_node` (qosd, a sidecar), live in them. So each node sees only its own
# pods, mounts and processes, on its own address (node_ip) on the bridge, with its own kubelet
# root dir (DIR/nodes/NODE) and cgroup root (/NODE), and a taint (qosd.test/node=NODE:NoSchedule)
# that keeps pods which do not tolerate it on "localhost".
#   up: starts the node and waits until it is Ready.
#   down: deletes its pods and waits for their volumes to be unmounted, stops its kubelet, ends its
#         namespaces (every process in them with it), removes its cgroups and its directory.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
[ "$(id -u)" = 0 ] || die "run as root"
[ $# = 2 ] || die "usage: node.sh [--dir DIR] up|down NODE"
action=$1 NODE=$2
case "$NODE" in node-[1-9]|node-[1-9][0-9]) ;; *) die "NODE must be node-1, node-2, ...: $NODE" ;; esac
. "$KIT/node-lib.sh"

up() {
  pid_alive "$NODE.init" unshare && die "$NODE is already up; node.sh down $NODE first"
  [ -f "$RUN/kubeconfig-bridge" ] || die "no $RUN/kubeconfig-bridge: start the cluster with REALKUBE_NODES=N up.sh --api"
  # what a run cut short left (node.sh down would have removed it)
  ip netns del "$NETNS" 2> /dev/null || true
  ip link del "$VETH" 2> /dev/null || true
  rm -rf "$ND"
  mkdir -p "$ND/kubelet" "$ND/manifests" "$ND/volume-plugins" "$ND/containerd" "$ND/cni/bin" "$ND/cni/net.d" "$ND/hard"

  # network: a veth pair, one end on the bridge, the other the node's eth0
  ip netns add "$NETNS"
  ip link add "$VETH" type veth peer name eth0 netns "$NETNS"
  ip link set "$VETH" master "$BRIDGE" up
  ip -n "$NETNS" addr add "$IP/24" dev eth0
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" link set eth0 up
  ip -n "$NETNS" route add default via "$BRIDGE_IP"

  # cgroups: the node's root in every hierarchy (cpuset's needs CPUs and memory nodes to hold tasks)
  for d in $(node_cgroup_dirs); do mkdir -p "$d"; done
  for f in cpus mems; do
    [ -f "$CGROOT/cpuset/$NODE/cpuset.$f" ] && cat "$CGROOT/cpuset/cpuset.$f" > "$CGROOT/cpuset/$NODE/cpuset.$f"
  done

  # the node's first process, in new PID and mount namespaces (mounts from the host reach it, its
  # own stay in it) and in its network namespace; it dies with unshare (--kill-child), and every
  # process of the node with it
  start "$NODE.init" nsenter --net="/run/netns/$NETNS" \
    unshare --pid --fork --kill-child --mount --propagation slave --mount-proc bash "$KIT/node-init.sh" "$ND/hard" "${HARDCODED[@]}"
  wait_until 10 "$NODE's first process" test -f "$ND/hard/ready" || die "$NODE's namespaces did not start: $(tail -5 "$LOGS/$NODE.init.log")"

  sed "s|@DIR@|$ND|g" "$KIT/containerd.toml.in" > "$ND/containerd.toml"
  echo '{"cniVersion":"0.4.0","name":"realkube","plugins":[{"type":"loopback"}]}' > "$ND/cni/net.d/10-realkube.conflist"
  in_node "$NODE.containerd" containerd --config "$ND/containerd.toml"
  wait_until 30 "$NODE's containerd" ctr --address "$NCSOCK" version || die "$NODE's containerd did not start: $(tail -5 "$LOGS/$NODE.containerd.log")"
  ctr --address "$NCSOCK" -n k8s.io images import "$IMAGE_TAR" > /dev/null
  wait_until 20 "image $IMAGE in $NODE's containerd" sh -c "ctr --address '$NCSOCK' -n k8s.io images ls -q | grep -qx '$IMAGE'" ||
    die "image $IMAGE not in $NODE's containerd after import"

  kubelet_config "$ND/manifests" "$NCSOCK" "$ND/volume-plugins" 0.0.0.0 \
    "cgroupRoot: /$NODE" "registerWithTaints: [{key: qosd.test/node, value: $NODE, effect: NoSchedule}]" > "$ND/kubelet.yaml"
  in_node "$NODE.kubelet" "$BIN/kubelet" --config="$ND/kubelet.yaml" --root-dir="$ND/kubelet" --cert-dir="$ND/kubelet/pki" \
    --hostname-override="$NODE" --node-ip="$IP" --kubeconfig="$RUN/kubeconfig-bridge" --v="${KUBELET_V:-2}"
  wait_until 60 "$NODE's kubelet" sh -c "curl -s http://$IP:10248/healthz | grep -qx ok" || die "$NODE's kubelet not healthy: $(tail -5 "$LOGS/$NODE.kubelet.log")"
  wait_until 120 "node $NODE Ready" node_ready "$NODE" || die "node $NODE not Ready: $(tail -5 "$LOGS/$NODE.kubelet.log")"
  say "node $NODE up: $IP, kubelet root $ND/kubelet, cgroup root /$NODE, flex drivers in $ND/volume-plugins"
}

down() {
  # its pods first, so that its kubelet unmounts their volumes while it still runs
  if pid_alive "$NODE.kubelet" kubelet; then
    if pid_alive kube-apiserver kube-apiserver; then
      api "$APISERVER/api/v1/pods?fieldSelector=spec.nodeName=$NODE" | jq -r '.items[]? | "\(.metadata.namespace)/\(.metadata.name)"' |
        while IFS=/ read -r ns name; do api -X DELETE "$APISERVER/api/v1/namespaces/$ns/pods/$name?gracePeriodSeconds=2" > /dev/null || true; done
    fi
    gone() { [ "$(curl -s --max-time 5 "http://$IP:10255/pods" | jq '.items | length')" = 0 ]; }
    wait_until "${REALKUBE_POD_WAIT:-120}" "$NODE's pods to stop" gone || say "$NODE's pods still there; going on"
  fi
  stop "$NODE.kubelet" kubelet 20
  stop "$NODE.containerd" containerd 20
  # the node's first process: the kernel ends every process of the node with it, and the node's
  # mounts with its mount namespace
  local init; init=$(node_init)
  [ -n "$init" ] && kill -TERM "$init" 2> /dev/null || true
  stop "$NODE.init" unshare 10
  # anything else still in its network namespace (a process entered from the host's PID namespace)
  for p in $(ip netns pids "$NETNS" 2> /dev/null); do kill -KILL "$p" 2> /dev/null || true; done
  ip netns del "$NETNS" 2> /dev/null || true
  ip link del "$VETH" 2> /dev/null || true
  sleep 0.5
  for d in $(node_cgroup_dirs); do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2> /dev/null || true; done
  local left=() dev file
  # loop devices over files of the node's (its qosd's volumes), now that nothing mounts them
  while read -r dev file; do
    case "$file" in "$ND"/*) losetup -d "$dev" 2> /dev/null || left+=("loop device $dev") ;; esac
  done < <(losetup -l -n -O NAME,BACK-FILE)
  for d in $(node_cgroup_dirs); do [ -d "$d" ] && left+=("cgroup $d"); done
  ip netns list | grep -qw "$NETNS" && left+=("network namespace $NETNS")
  ip link show "$VETH" > /dev/null 2>&1 && left+=("veth $VETH")
  [ ${#left[@]} = 0 ] || { say "$NODE left behind: ${left[*]}"; return 1; }
  rm -rf "$ND"
  rm -f "$RUN/$NODE".*.pid   # its processes ended with its namespaces
  say "node $NODE down"
}

$action
