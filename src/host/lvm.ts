// The thin LVM command layer (the TopoLVM lvmd way): each function runs one lvm2 tool through
// execFile, asks for a JSON report in bytes where there is one, and returns typed values. Nothing
// here knows about volumes or pools.
import { run } from './exec';

export interface PhysicalVolume {
  name: string;
  vg: string;
  sizeBytes: number;
  freeBytes: number;
}

export interface VolumeGroup {
  name: string;
  sizeBytes: number;
  freeBytes: number;
  pvCount: number;
  lvCount: number;
}

export interface LogicalVolume {
  name: string;
  vg: string;
  sizeBytes: number;
  path: string;
  active: boolean;
  stripes: number;
}

const REPORT = ['--reportformat', 'json', '--units', 'b', '--nosuffix'];
const LVM_TIMEOUT = 120_000;

type Report<K extends string> = { report: Record<K, Record<string, string>[]>[] };

function rows<K extends string>(stdout: string, key: K): Record<string, string>[] {
  const parsed = JSON.parse(stdout) as Report<K>;
  return parsed.report.flatMap((r) => r[key] ?? []);
}

export async function listPVs(): Promise<PhysicalVolume[]> {
  const { stdout } = await run('pvs', [...REPORT, '-o', 'pv_name,vg_name,pv_size,pv_free'], { timeoutMs: LVM_TIMEOUT });
  return rows(stdout, 'pv').map((r) => ({ name: r.pv_name!, vg: r.vg_name ?? '', sizeBytes: Number(r.pv_size), freeBytes: Number(r.pv_free) }));
}

/** The volume group, or undefined when it does not exist. */
export async function getVG(vg: string): Promise<VolumeGroup | undefined> {
  const { stdout, code } = await run('vgs', [...REPORT, '-o', 'vg_name,vg_size,vg_free,pv_count,lv_count', vg], { timeoutMs: LVM_TIMEOUT, okExitCodes: [5] });
  if (code !== 0) return undefined;
  const r = rows(stdout, 'vg')[0];
  if (!r) return undefined;
  return { name: r.vg_name!, sizeBytes: Number(r.vg_size), freeBytes: Number(r.vg_free), pvCount: Number(r.pv_count), lvCount: Number(r.lv_count) };
}

export async function listLVs(vg: string): Promise<LogicalVolume[]> {
  const { stdout } = await run('lvs', [...REPORT, '-o', 'lv_name,vg_name,lv_size,lv_path,lv_active,stripes', vg], { timeoutMs: LVM_TIMEOUT });
  return rows(stdout, 'lv').map((r) => ({
    name: r.lv_name!,
    vg: r.vg_name!,
    sizeBytes: Number(r.lv_size),
    path: r.lv_path || `/dev/${r.vg_name}/${r.lv_name}`,
    active: r.lv_active === 'active',
    stripes: Number(r.stripes || 1),
  }));
}

export async function createVG(vg: string, devices: string[], force: boolean): Promise<void> {
  await run('pvcreate', [...(force ? ['-ff'] : []), '-y', ...devices], { timeoutMs: LVM_TIMEOUT });
  await run('vgcreate', [vg, ...devices], { timeoutMs: LVM_TIMEOUT });
}

export async function createLV(vg: string, name: string, sizeBytes: number, stripes: number): Promise<void> {
  const striping = stripes > 1 ? ['-i', String(stripes), '-I', '64k'] : [];
  // -Wy: wipe any old signature in the new extents, so a new volume never inherits a filesystem.
  await run('lvcreate', ['-y', '-Wy', '-n', name, '-L', `${sizeBytes}b`, ...striping, vg], { timeoutMs: LVM_TIMEOUT });
}

export async function extendLV(vg: string, name: string, sizeBytes: number): Promise<void> {
  await run('lvextend', ['-L', `${sizeBytes}b`, `${vg}/${name}`], { timeoutMs: LVM_TIMEOUT });
}

export async function activateLV(vg: string, name: string): Promise<void> {
  await run('lvchange', ['-ay', `${vg}/${name}`], { timeoutMs: LVM_TIMEOUT });
}

export async function removeLV(vg: string, name: string): Promise<void> {
  await run('lvremove', ['-y', `${vg}/${name}`], { timeoutMs: LVM_TIMEOUT });
}
