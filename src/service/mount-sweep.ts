// Which attachments a mount sweep must look at: the attached ones whose target does not hold their
// volume's device (not mounted, or another device there). At 10,000 attachments nearly all hold
// theirs; the periodic jobs' worker finds the few that do not, and the daemon's thread looks at
// those alone (AttachmentService.sweepSuspects).
import type { Attachment } from '../store/attachments';
import type { Volume } from '../store/volumes';
import type { MountEntry } from '../host/mountinfo';
import { deviceOf, formatDevice } from '../host/block-device';
import type { TimeSlice } from '../util/time-slice';

/** Whether the mounts at the attachment's target hold `want` (null: any device will do). */
export function holdsDevice(att: Attachment, here: MountEntry[], want: string | null): boolean {
  if (here.length === 0) return false;
  if (want === null) return true;
  if (att.kind === 'mount') return here.some((m) => m.device === want);
  try {
    return formatDevice(deviceOf(att.target)) === want;
  } catch {
    return false;
  }
}

/** The ids of the attached attachments whose target does not hold their device, and how many do. */
export async function mountSuspects(
  attachments: readonly Attachment[],
  volumes: ReadonlyMap<string, Volume>,
  mounts: Map<string, MountEntry[]>,
  slice: TimeSlice,
): Promise<{ suspects: number[]; mounted: number }> {
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
