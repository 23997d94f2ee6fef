# Sourced by the VM runners: builds the initramfs (busybox, the modules the VM needs) whose /init
# is the file given, into WORK/initrd.gz. Needs KVER set.
build_initrd() {
  local work=$1 init=$2
  local R=$work/initrd M=/lib/modules/$KVER
  mkdir -p "$R"/{bin,proc,sys,dev,mnt/lower,mnt/upper,newroot,lib/modules/$KVER}
  cp /bin/busybox "$R/bin/busybox"
  for a in sh mount umount mkdir modprobe switch_root rm ln cat touch sleep echo; do ln -s busybox "$R/bin/$a"; done
  cp -a "$M"/modules.* "$R/lib/modules/$KVER/"
  (cd "$M" && find kernel/fs/9p kernel/net/9p kernel/fs/overlayfs kernel/fs/netfs kernel/fs/fscache \
    kernel/drivers/nvme kernel/drivers/md kernel/drivers/block/loop.ko* kernel/drivers/block/virtio_blk.ko* \
    kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/mbcache.ko* kernel/lib kernel/crypto kernel/drivers/virtio kernel/fs/xfs kernel/block 2>/dev/null \
    | cpio -pdm "$R/lib/modules/$KVER/" 2>/dev/null)
  cp "$init" "$R/init"
  chmod +x "$R/init"
  (cd "$R" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.gz"
}
