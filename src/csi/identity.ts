// The CSI Identity service: who qosd is, what it offers, whether it can serve now.
import { CsiError } from './status';
import { status } from '@grpc/grpc-js';
import { DRIVER_NAME } from './names';

export interface IdentityDeps {
  version: string;
  /** Why qosd cannot serve now (shutting down, the store unreadable), or undefined when it can. */
  problem(): string | undefined;
}

export class CsiIdentity {
  constructor(private readonly d: IdentityDeps) {}

  getPluginInfo(): { name: string; vendor_version: string; manifest: Record<string, string> } {
    return { name: DRIVER_NAME, vendor_version: this.d.version, manifest: {} };
  }

  getPluginCapabilities(): { capabilities: ({ service: { type: string } } | { volume_expansion: { type: string } })[] } {
    return {
      capabilities: [
        { service: { type: 'CONTROLLER_SERVICE' } },
        // A qosd volume lives on one node: the CO must schedule by its topology.
        { service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } },
        // Grown while mounted (xfs always; ext4 where qosd holds CAP_SYS_RESOURCE).
        { volume_expansion: { type: 'ONLINE' } },
      ],
    };
  }

  probe(): { ready: { value: boolean } } {
    const problem = this.d.problem();
    if (problem !== undefined) throw new CsiError(status.FAILED_PRECONDITION, `qosd cannot serve: ${problem}`);
    return { ready: { value: true } };
  }
}
