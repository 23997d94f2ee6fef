// Which attachments a mount repair must look at: the attached ones whose target does not hold their
// volume's device (not mounted, or another device there). At 10,000 attachments nearly all hold
// theirs; the find step (in the periodic jobs' worker, or in-thread at start) names the few that do
// not, and the confirm step (mount-repair.ts) looks at those alone.
import type { Attachment } from '../store/attachments';
import type { Volume } from '../store/volumes';
import type { MountEntry } from '../host/mountinfo';
import { holdsDevice } from '../service/targets';
import type { TimeSlice } from '../util/time-slice';

export interface MountSuspects {
  /** Attached attachments whose target does not hold their device. */
  suspects: number[];
  /** How many attached ones do. */
  mounted: number;
}

export async function mountSuspects(
  attachments: readonly Attachment[],
  volumes: ReadonlyMap<string, Volume>,
  mounts: Map<string, MountEntry[]>,
  slice: TimeSlice,
): Promise<MountSuspects> {
  const suspects: number[] = [];
  let mounted = 0;
  for (const att of attachments) {
    if (slice.due()) await slice.yield();
    if (att.state !== 'attached') continue;
    const want = att.device ?? volumes.get(att.volume)?.deviceNumber ?? null;
    if (holdsDevice(att, mounts.get(att.target) ?? [], want)) mounted++;
    else suspects.push(att.id);
  }
  slice.end();
  return { suspects, mounted };
}
