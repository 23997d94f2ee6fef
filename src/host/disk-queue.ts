// How much IO a block device has had in flight: time_in_queue, the eleventh field of
// <sys>/dev/block/MAJ:MIN/stat (Documentation/block/stat.rst), the sum of every IO's time from
// start to completion in milliseconds. Its growth over an interval, divided by the interval, is
// the average number of IOs in flight then (Little's law). For a volume's own device (its loop or
// dm device) this says whether the volume keeps IO outstanding, i.e. wants more than it gets, or
// idles between requests, i.e. asks for little. Two other signals were considered: io_ticks (the
// busy time, field ten) was only ~0.5 for a victim held below its minimum in the VM, where the
// guest's CPU and not the drive bounds IO, while its average in flight (1.0–1.6) still stood
// well apart from a paced reader's (rate × latency ≪ 1); and pressure (io.pressure) counts only
// tasks asleep in io_schedule, which an async submitter (libaio, in io_getevents) never is.
import * as path from 'node:path';
import { readSmall } from './read-small';
import type { HostRoot } from './host-root';

/** time_in_queue (ms) from the text of a block device's stat file; undefined when it has none. */
export function parseTimeInQueue(stat: string): number | undefined {
  const ms = Number(stat.trim().split(/\s+/)[10]);
  return Number.isFinite(ms) ? ms : undefined;
}

/** time_in_queue of a device ("253:3") in ms; undefined when the device or its stat file is gone. */
export function timeInQueueMs(root: HostRoot, deviceNumber: string): number | undefined {
  try {
    return parseTimeInQueue(readSmall(path.join(root.sys, 'dev', 'block', deviceNumber, 'stat')));
  } catch {
    return undefined;
  }
}
