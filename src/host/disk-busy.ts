// How long a block device has had IO in flight: io_ticks, the tenth field of
// /sys/dev/block/MAJ:MIN/stat (Documentation/block/stat.rst), in milliseconds since boot. Its
// growth over an interval, divided by the interval, is the share of that time the device was
// busy. For a volume's own device (its loop or dm device) this says whether the volume is
// waiting on the drive all the time, which the controller uses to tell a volume the drive is
// starving from one that simply asks for little. Pressure (io.pressure) cannot tell: it counts
// only tasks asleep in io_schedule, and an async submitter (libaio waiting in io_getevents) is
// not one.
import * as path from 'node:path';
import { readSmall } from './read-small';

/** io_ticks of a device ("253:3") in ms; undefined when the device or its stat file is gone. */
export function ioTicksMs(deviceNumber: string, sysRoot = '/sys'): number | undefined {
  try {
    const fields = readSmall(path.join(sysRoot, 'dev', 'block', deviceNumber, 'stat')).trim().split(/\s+/);
    const ticks = Number(fields[9]);
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}
