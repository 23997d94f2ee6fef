#!/bin/bash
# node-init.sh HARD PATH...: the first process of a node node.sh starts (PID 1 in its PID
# namespace, in its own mount namespace): binds HARD/PATH over each PATH kubelet and containerd
# hard-code (/var/lib/kubelet, /var/log/pods, /run/containerd, ...), so that this node's do not
# meet the host's, says it is ready (HARD/ready), and waits, reaping what the node's processes
# leave to it (containerd's shims are re-parented here), until SIGTERM or its parent's end.
set -euo pipefail
hard=$1; shift
for p in "$@"; do
  mkdir -p "$hard$p" "$p"
  mount --bind "$hard$p" "$p"
done
touch "$hard/ready"
trap 'exit 0' TERM
while :; do sleep 5 & wait $! || true; done
