// The extender's one periodic job: every few seconds, a Warning event (reason NoIOBudget) on each
// pod the scheduler could not place because no node's IO budget can take its guarantee
// (explain.ts). Once per pod and reason: a pod that waits on gets no second event until the reason
// changes (another node fills or frees), and a pod gone is forgotten.
import type { Logger } from 'pino';
import { noNodeFits } from './explain';
import type { WaitingPod } from './cluster';
import type { NodeLabels, PendingClaim, PublishedCapacity } from './headroom';

/** What the explainer reads and writes (cluster.ts over the API server; a stand-in in unit tests). */
export interface ExplainerCluster {
  unschedulablePods(): Promise<WaitingPod[]>;
  pendingClaims(pod: WaitingPod): Promise<PendingClaim[]>;
  publishedCapacities(): Promise<PublishedCapacity[]>;
  allNodeLabels(): Promise<NodeLabels[]>;
  warn(pod: WaitingPod, reason: string, message: string): Promise<void>;
}

export const NO_IO_BUDGET = 'NoIOBudget';

export class Explainer {
  /** The reason last told, per pod uid. */
  private readonly told = new Map<string, string>();

  constructor(
    private readonly cluster: ExplainerCluster,
    private readonly log: Logger,
  ) {}

  /** One round: returns how many events it wrote. */
  async round(): Promise<number> {
    const pods = await this.cluster.unschedulablePods();
    for (const uid of this.told.keys()) if (!pods.some((p) => p.metadata.uid === uid)) this.told.delete(uid);
    let written = 0;
    let figures: { published: PublishedCapacity[]; nodes: NodeLabels[] } | undefined;
    for (const pod of pods) {
      const claims = await this.cluster.pendingClaims(pod);
      if (claims.length === 0) continue;
      figures ??= { published: await this.cluster.publishedCapacities(), nodes: await this.cluster.allNodeLabels() };
      const why = noNodeFits(claims, figures.published, figures.nodes);
      if (!why || this.told.get(pod.metadata.uid) === why) continue;
      await this.cluster.warn(pod, NO_IO_BUDGET, why);
      this.told.set(pod.metadata.uid, why);
      written++;
      this.log.info({ pod: `${pod.metadata.namespace ?? 'default'}/${pod.metadata.name}` }, why);
    }
    return written;
  }

  /** Rounds every `everyMs` until stopped; a failed round is logged and the next one tries again. */
  start(everyMs: number): { stop(): void } {
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const next = (): void => {
      if (stopped) return;
      timer = setTimeout(() => {
        this.round()
          .catch((err: Error) => this.log.warn({ err: err.message }, 'explaining unschedulable pods failed; trying again'))
          .finally(next);
      }, everyMs);
      timer.unref();
    };
    next();
    return {
      stop: () => {
        stopped = true;
        clearTimeout(timer);
      },
    };
  }
}
