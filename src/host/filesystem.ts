// Filesystem probing, creation and growth. qosd never formats a device that blkid finds any
// signature on (filesystem, RAID member, partition table): that is how data gets lost.
import { run } from './exec';
import { QosdError } from '../model/errors';

import type { FsType } from '../model/filesystem';

/** The signature blkid finds on the device (TYPE or PTTYPE), or undefined for a blank device. */
export async function probeSignature(device: string): Promise<string | undefined> {
  // -p: low-level probe that bypasses the blkid cache, so a fresh mkfs elsewhere is seen.
  const { stdout, code } = await run('blkid', ['-p', '-o', 'export', device], { timeoutMs: 30_000, okExitCodes: [2] });
  if (code === 2) return undefined;
  const fields = new Map(
    stdout
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
  );
  return fields.get('TYPE') ?? (fields.has('PTTYPE') ? `partition table ${fields.get('PTTYPE')}` : 'unknown signature');
}

/**
 * `zeroInodeTables`: write ext4's inode tables now rather than leave them to the kernel. Left lazy,
 * the kernel's ext4lazyinit thread zeroes them in the first minutes after the first mount, from no
 * pod's cgroup: a steady trickle of writes on every fresh volume (seen in the VM), device time
 * that no guarantee was charged for and no cut can reach. On a thick device (an LV) mke2fs zeroes
 * them with one BLKZEROOUT, which a drive does in its own time; on a sparse file it would allocate
 * them (a part of the volume's size), so thin pools keep the lazy init.
 */
/**
 * Writes zeros over the whole device (BLKZEROOUT, through blkdiscard): the kernel asks the drive to
 * write zeroes where it can (NVMe Write Zeroes: no data moves) and writes zero pages where it
 * cannot. A new LV takes extents an earlier volume, another tenant's, left full of its data.
 */
export async function zeroDevice(device: string, sizeBytes: number): Promise<void> {
  // The slowest path writes every byte: allow for 50 MB/s, and never less than two minutes.
  const timeoutMs = Math.max(120_000, Math.ceil(sizeBytes / 50e6) * 1000);
  await run('blkdiscard', ['--zeroout', device], { timeoutMs });
}

export async function makeFilesystem(device: string, fsType: FsType, opts: { zeroInodeTables: boolean }): Promise<void> {
  if (fsType === 'ext4') {
    // nodiscard: a discard of a whole big device can take minutes on some drives, and mke2fs
    // zeroes what must be zero either way. The journal stays lazy: the kernel never writes it in
    // the background.
    const itable = opts.zeroInodeTables ? 'lazy_itable_init=0' : 'lazy_itable_init=1';
    await run('mkfs.ext4', ['-q', '-E', `nodiscard,${itable},lazy_journal_init=1`, device], { timeoutMs: 300_000 });
  } else {
    // XFS writes its inode chunks as files are made: no background initialisation to avoid.
    await run('mkfs.xfs', ['-q', '-K', device], { timeoutMs: 300_000 });
  }
}

/** Grows a mounted filesystem to fill its (already grown) device. */
export async function growMountedFilesystem(device: string, mountPoint: string, fsType: FsType): Promise<void> {
  if (fsType === 'xfs') {
    await run('xfs_growfs', [mountPoint], { timeoutMs: 300_000 });
    return;
  }
  try {
    await run('resize2fs', [device], { timeoutMs: 300_000 });
  } catch (err) {
    // The ext4 online-resize ioctl needs CAP_SYS_RESOURCE, which some containers drop: the node's
    // state, not a fault (CSI: FAILED_PRECONDITION, "MUST NOT retry" as is).
    if (/Permission denied/.test((err as Error).message)) {
      throw new QosdError('FailedPrecondition', `${(err as Error).message} (growing a mounted ext4 filesystem needs CAP_SYS_RESOURCE; grow the volume while it is unmounted)`);
    }
    throw err;
  }
}

/** Grows an unmounted ext4 filesystem: resize2fs insists on a fresh check first. */
export async function growUnmountedExt4(device: string): Promise<void> {
  // e2fsck exit 1 means "errors corrected", which is fine to grow after.
  await run('e2fsck', ['-f', '-p', device], { timeoutMs: 600_000, okExitCodes: [1] });
  await run('resize2fs', [device], { timeoutMs: 300_000 });
}
