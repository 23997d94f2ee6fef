// What the API routes serve from: the daemon's services, handed in by daemon.ts (tests hand in fakes).
import type { Store } from '../store/store';
import type { VolumeService } from '../service/volumes';
import type { AttachmentService } from '../service/attachments';
import type { FlexHandler } from '../service/flex';
import type { PoolService } from '../service/pools';
import type { Calibrator } from '../service/calibrate';
import type { Check } from '../service/doctor';
import type { DeviceView } from '../service/devices';
import type { Volume } from '../store/volumes';
import type { Figures } from '../model/qos';
import type { Metrics } from '../metrics/registry';
import type { Static } from '@sinclair/typebox';
import type { StatusOut } from './schemas';
import type { AttainmentSummary } from '../model/attainment';

export interface Services {
  store: Store;
  volumes: VolumeService;
  attachments: AttachmentService;
  flex: FlexHandler;
  pools: PoolService;
  calibrator: Calibrator;
  metrics: Metrics;
  doctor(): Promise<Check[]>;
  /** The node's NVMe namespaces and what uses each. */
  devices(): Promise<DeviceView[]>;
  /** The limits in force for a volume now. */
  limitsFor(v: Volume): Figures;
  status(): Static<typeof StatusOut>;
  /** The last hour of each of a volume's guarantees the controller has seen in force. */
  attainment(volume: string): Promise<AttainmentSummary[]>;
  /** One scrape: the Prometheus exposition text in pieces (to write in turn), kernel stats read fresh. */
  scrapeMetrics(): Promise<Buffer[]>;
}
