#!/bin/sh
# PID 1 inside the VM: the host's userland (read-only, under a tmpfs overlay). Sets up what a
# Kubernetes node on cgroup v2 has, runs the VM test files, reports the status, powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc 2>/dev/null; mount -t sysfs sys /sys 2>/dev/null; mount -t devtmpfs dev /dev 2>/dev/null
# The checkout may live under /tmp (CI clones there): bind it aside before /tmp becomes a tmpfs.
repo=$(cat /mnt/share/repo)
mkdir -p /mnt/repo && mount --bind "$repo" /mnt/repo
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp
mount -t cgroup2 none /sys/fs/cgroup
echo "+io +memory +cpu +pids" > /sys/fs/cgroup/cgroup.subtree_control
# No udev in the VM: LVM must make its own device nodes and not wait for udev.
mkdir -p /etc/lvm
cat >> /etc/lvm/lvm.conf <<'LVM'
activation { udev_sync = 0 udev_rules = 0 }
devices { obtain_device_list_from_udev = 0 }
LVM
boot=$(cut -d' ' -f1 /proc/uptime)
echo "$boot" > /mnt/share/boot-seconds
cd /mnt/repo || { echo "vm: cannot enter the checkout ($repo)"; echo 2 > /mnt/share/status; poweroff -f; }
echo "vm: kernel $(uname -r), booted in ${boot} s; cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
set -a; . /mnt/share/env; set +a
CI=1 TERM=dumb NO_COLOR=1 QOSD_VM=1 QOSD_REQUIRE_NODE_TESTS=1 node node_modules/vitest/vitest.mjs run --config vitest.vm.config.mts $(cat /mnt/share/filter) 2>&1
echo $? > /mnt/share/status
sync
poweroff -f
