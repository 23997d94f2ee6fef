// GET /v1/devices: the node's NVMe namespaces, which pool (if any) uses each, and whether each
// holds a signature (so an operator sees what `qosctl pool init` would refuse).
import type { Config } from '../config/config';
import type { HostRoot } from '../host/host-root';
import { nvmeNamespaces, type NvmeNamespace, type SiBlockDevice } from '../host/nvme';
import { probeSignature } from '../host/filesystem';
import { listPVs } from '../host/lvm';
import { which } from '../host/exec';

export interface DeviceView extends NvmeNamespace {
  pool: string | null;
  volumeGroup: string | null;
  signature: string | null;
}

export async function listDevices(root: HostRoot, config: Pick<Config, 'pools'>): Promise<DeviceView[]> {
  // Loaded here, not at start: it is slow to require and only this route needs it.
  const si = (await import('systeminformation')) as unknown as { blockDevices(): Promise<SiBlockDevice[]> };
  const namespaces = nvmeNamespaces(root, await si.blockDevices());
  const pvs = which('pvs') ? await listPVs().catch(() => []) : [];
  const vgOf = new Map(pvs.map((p) => [p.name, p.vg]));
  const poolOfVg = new Map(config.pools.flatMap((p) => (p.backend === 'lvm' ? [[p.volumeGroup, p.name] as const] : [])));
  const out: DeviceView[] = [];
  for (const ns of namespaces) {
    const vg = vgOf.get(ns.device) || null;
    let signature: string | null = null;
    try {
      signature = (await probeSignature(ns.device)) ?? null;
    } catch {
      signature = null; // not readable here (a fixture tree, or no device node)
    }
    out.push({ ...ns, volumeGroup: vg, pool: vg ? poolOfVg.get(vg) ?? null : null, signature });
  }
  return out;
}
