#!/bin/sh
# Run once by the VM's initramfs (busybox) on the new root before systemd first boots it: makes
# the host's root, seen through the overlay, boot as a plain node would.
r=$1
# systemd takes /.dockerenv for "in a container": it would ignore the kernel command line and
# leave / private. Hidden in the overlay only.
rm -f "$r/.dockerenv"
# Debian's tmp.conf ("D /tmp") would walk the host's /tmp over 9p at every boot.
: > "$r/usr/lib/tmpfiles.d/tmp.conf"
# Services of the host image that have nothing to do on a test node (and some want a network).
for u in postgresql.service prometheus.service getty@tty1.service serial-getty@ttyS0.service systemd-timesyncd.service \
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer \
  systemd-pstore.service remote-fs.target systemd-networkd.service systemd-resolved.service; do
  ln -sf /dev/null "$r/etc/systemd/system/$u"
done
# Pods made by hand under kubepods (cgroupfs-style) need the io controller in every parent.
mkdir -p "$r/etc/systemd/system.conf.d"
printf '[Manager]\nDefaultIOAccounting=yes\nDefaultMemoryAccounting=yes\n' > "$r/etc/systemd/system.conf.d/qosd-vm.conf"
# /var/lib/qosd on its own ext4 drive: loop devices with direct IO refuse tmpfs and overlays.
printf 'LABEL=qosd-state /var/lib/qosd ext4 defaults 0 2\n' > "$r/etc/fstab"
# The test phase runs as a service once the node is up.
cat > "$r/etc/systemd/system/qosd-vm-phase.service" <<'UNIT'
[Unit]
Description=qosd VM test phase
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh /mnt/share/phase.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity
UNIT
mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/qosd-vm-phase.service "$r/etc/systemd/system/multi-user.target.wants/qosd-vm-phase.service"
echo qosd-vm > "$r/etc/hostname"
