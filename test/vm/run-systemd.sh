#!/usr/bin/env bash
# The systemd mode of the VM harness: the VM boots Debian's systemd as PID 1 from the host's root
# (read-only over 9p, under an overlay whose upper layer is an ext4 drive, so the VM keeps its
# state across reboots), qosd is installed in it from the package tarball exactly as the README's
# "Install on a node" says, and the test files of test/vm/systemd/ run as a systemd service, one
# phase per boot:
#   1  install, socket activation, flex mounts seen from PID 1 (file and lvm pools), io.max,
#      restart under load, the journal, the system-call filter; then `systemctl reboot`;
#   2  after the reboot: volumes, data, loop devices and a kubelet retry; then a hard power-off
#      (sysrq b: no sync, no unmount) in the middle of creating a volume;
#   3  after the power-off: the same checks, and the interrupted mount's retry.
# Facts this stands on (systemd 252 booted here): /.dockerenv makes systemd think it runs in a
# container (it then ignores the kernel command line and leaves / private), so it is hidden;
# Debian's tmp.conf would walk the host's /tmp over 9p, so it is emptied; DefaultIOAccounting=yes
# keeps the io controller on for cgroupfs-style pods; losetup --direct-io=on fails on tmpfs, so
# /var/lib/qosd is an ext4 drive of its own.
# Needs: apt-get install qemu-system-x86 linux-image-amd64 busybox-static lvm2 (and udev, systemd).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
for tool in qemu-system-x86_64 busybox mkfs.ext4 npm; do
  command -v "$tool" >/dev/null || { echo "test:vm systemd: $tool is missing" >&2; exit 2; }
done
[ -x /lib/systemd/systemd ] || { echo "test:vm systemd: /lib/systemd/systemd is missing (apt-get install systemd udev)" >&2; exit 2; }
KVER=$(ls /lib/modules | sort -V | tail -1)
[ -f "/boot/vmlinuz-$KVER" ] || { echo "test:vm systemd: no /boot/vmlinuz-$KVER (apt-get install linux-image-amd64)" >&2; exit 2; }

work=$(mktemp -d /tmp/qosd-sysvm-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/share"

# The package as a node gets it: `npm run package` of this build (dependencies bundled, the SQLite
# addon staged for this Node.js), which the VM installs with npm as the README says.
(cd "$repo" && node scripts/package.js --out "$work/share" >/dev/null)
ls "$work/share"/qosd-*.tgz >/dev/null

cat > "$work/init" <<'EOI'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_pci virtio_blk 9pnet_virtio 9p overlay nvme dm_mod loop crc32c_generic ext4 xfs; do modprobe $m 2>/dev/null; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /mnt/lower || exec sh
mount -t ext4 /dev/vda /mnt/upper || exec sh
mkdir -p /mnt/upper/u /mnt/upper/w
mount -t overlay overlay -o lowerdir=/mnt/lower,upperdir=/mnt/upper/u,workdir=/mnt/upper/w /newroot || exec sh
mkdir -p /newroot/mnt/share /newroot/mnt/repo
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /newroot/mnt/share
# The checkout may live under /tmp (CI clones there): bound aside, where the tests run from.
mount --bind "/newroot$(cat /newroot/mnt/share/repo)" /newroot/mnt/repo
[ -e /mnt/upper/prepared ] || { sh /newroot/mnt/share/prepare-root.sh /newroot && touch /mnt/upper/prepared; }
exec switch_root /newroot /lib/systemd/systemd
EOI
. "$here/initrd.sh"
build_initrd "$work" "$work/init"

cp "$here/systemd/prepare-root.sh" "$here/systemd/phase.sh" "$work/share/"
printf '%s\n' "$repo" > "$work/share/repo"
# The overlay's upper layer and /var/lib/qosd: ext4 images made here (no loop device needed).
truncate -s 4G "$work/upper.img" && mkfs.ext4 -q -F "$work/upper.img"
truncate -s 3G "$work/state.img" && mkfs.ext4 -q -F -L qosd-state "$work/state.img"
for i in 0 1; do truncate -s 2G "$work/nvme$i.img"; done

rc=0
for phase in 1 2 3; do
  echo "$phase" > "$work/share/phase"
  started=$(date +%s)
  set +e
  timeout 1200 qemu-system-x86_64 -m 3072 -smp 2 -nographic -no-reboot \
    -kernel "/boot/vmlinuz-$KVER" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 systemd.show_status=false" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$work/share",mount_tag=share,security_model=none \
    -drive file="$work/upper.img",if=virtio,format=raw \
    -drive file="$work/state.img",if=virtio,format=raw \
    -drive file="$work/nvme0.img",if=none,id=nv0,format=raw -device nvme,serial=QOSDNVME0,drive=nv0 \
    -drive file="$work/nvme1.img",if=none,id=nv1,format=raw -device nvme,serial=QOSDNVME1,drive=nv1 \
    </dev/null
  qemu_rc=$?
  set -e
  status=$(cat "$work/share/status-$phase" 2>/dev/null || echo missing)
  echo "test:vm systemd: phase $phase: qemu exit $qemu_rc, tests exit $status, $(( $(date +%s) - started )) s"
  if [ "$status" != 0 ]; then
    rc=1
    for f in "$work/share"/journal-*.txt; do [ -f "$f" ] && { echo "--- $f"; tail -n 80 "$f"; }; done
    # QOSD_VM_CONTINUE=1 (debugging): boot the next phase anyway, to see what it finds.
    [ "${QOSD_VM_CONTINUE:-}" = 1 ] || break
  fi
done
exit $rc
