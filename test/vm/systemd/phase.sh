#!/bin/sh
# One test phase of the systemd-mode VM (test/vm/run-systemd.sh), run by qosd-vm-phase.service
# after boot: the phase's test file, its status for the host, the journal, then the way this
# phase ends (1: an orderly reboot; 2: the power pulled in the middle of a create; 3: power-off).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
phase=$(cat /mnt/share/phase)
echo "vm: phase $phase, systemd $(systemctl --version | head -1 | cut -d' ' -f2), booted in $(cut -d' ' -f1 /proc/uptime) s, state $(systemctl is-system-running)"
cd /mnt/repo || { echo 2 > /mnt/share/status-$phase; systemctl poweroff; exit; }
files=$(ls test/vm/systemd/$phase-*.vm.ts)
CI=1 TERM=dumb NO_COLOR=1 QOSD_VM=1 QOSD_VM_SYSTEMD=1 QOSD_REQUIRE_NODE_TESTS=1 \
  node node_modules/vitest/vitest.mjs run --config vitest.vm.config.mts $files 2>&1
status=$?
journalctl -b --no-pager > /mnt/share/journal-$phase.txt 2>&1
echo $status > /mnt/share/status-$phase
sync
if [ "$status" = 0 ] && [ "$phase" = 1 ]; then systemctl reboot; exit; fi
if [ "$status" = 0 ] && [ "$phase" = 2 ]; then
  # The checks passed: now pull the plug in the middle of creating a volume (phase 3 checks).
  node test/vm/systemd/pull-plug.mjs
  echo "vm: the plug was not pulled" ; echo 3 > /mnt/share/status-$phase; sync
fi
systemctl poweroff
