// kubelet's plugin registration, served by qosd itself (what node-driver-registrar does as a
// sidecar): a socket in <kubelet root>/plugins_registry that kubelet's plugin watcher finds, asks
// GetInfo on, and answers through NotifyRegistrationStatus after it has called NodeGetInfo.
import type { Logger } from 'pino';
import { CSI_VERSIONS, DRIVER_NAME } from './names';

export interface RegistrationStatus {
  registered: boolean;
  error: string;
  at: string;
}

export class CsiRegistration {
  /** kubelet's last answer, or undefined while it has not called. */
  last: RegistrationStatus | undefined;

  constructor(
    /** The CSI socket kubelet should use: what node-driver-registrar calls --kubelet-registration-path. */
    private readonly endpoint: string,
    private readonly log: Logger,
    /** Told each answer (the qosd_csi_registered gauge). */
    private readonly onStatus: (registered: boolean) => void = () => undefined,
  ) {}

  getInfo(): { type: string; name: string; endpoint: string; supported_versions: string[] } {
    return { type: 'CSIPlugin', name: DRIVER_NAME, endpoint: this.endpoint, supported_versions: CSI_VERSIONS };
  }

  notifyRegistrationStatus(req: { plugin_registered: boolean; error: string }): Record<string, never> {
    this.last = { registered: req.plugin_registered, error: req.error, at: new Date().toISOString() };
    this.onStatus(req.plugin_registered);
    if (req.plugin_registered) this.log.info({ driver: DRIVER_NAME, endpoint: this.endpoint }, 'kubelet registered the CSI driver');
    else this.log.error({ driver: DRIVER_NAME, endpoint: this.endpoint, error: req.error }, 'kubelet refused to register the CSI driver');
    return {};
  }
}
