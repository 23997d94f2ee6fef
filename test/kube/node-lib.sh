# Sourced after lib.sh with NODE set (node-1, ...): that node's layout, and in_node to start a
# process inside its namespaces (node.sh makes them).
ND=$NODES_DIR/$NODE             # its kubelet root, containerd, manifests, flex drivers, qosd
NETNS=qosdk-$NODE
VETH=qk-$NODE                   # the host's end of its veth pair (at most 15 characters)
IP=$(node_ip "$NODE")
NCSOCK=$ND/containerd/containerd.sock

# node_cgroup_dirs: the node's cgroup root in each hierarchy (one line per directory, once)
node_cgroup_dirs() {
  local d
  for d in "$CGROOT"/*/; do [ -f "$d/cgroup.procs" ] && readlink -f "$d$NODE"; done | sort -u
}

# node_init: the host's pid of the node's first process (PID 1 in its namespaces)
node_init() {
  local outer; outer=$(pid_of "$NODE.init")
  [ -n "$outer" ] && awk '{ print $1 }' "/proc/$outer/task/$outer/children" 2> /dev/null
}

# in_node NAME EXE ARGS...: `start` inside the node's namespaces; the pid file names the process
# itself (nsenter forks it into the PID namespace), so stop and pid_alive work as on the host
in_node() {
  local name=$1; shift
  local init; init=$(node_init)
  [ -n "$init" ] || die "$NODE is not up (no first process)"
  start "$name" nsenter --target "$init" --mount --pid --net --wd=/ -- "$@"
  local outer inner="" i
  outer=$(pid_of "$name")
  for (( i = 0; i < 50; i++ )); do
    inner=$(awk '{ print $1 }' "/proc/$outer/task/$outer/children" 2> /dev/null)
    [ -n "$inner" ] && break
    sleep 0.1
  done
  [ -n "$inner" ] || die "$name did not start in $NODE: $(tail -5 "$LOGS/$name.log")"
  echo "$inner" > "$RUN/$name.pid"
}
