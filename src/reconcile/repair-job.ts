// The one shape of repair. A job finds what may be wrong by reading only (the periodic jobs'
// worker does this off the daemon's thread; recovery at start does it in-thread), then confirms
// each finding against the node and the store as they are now, under the locks, on the daemon's
// thread, and repairs what is still wrong. A finding is only ever a reason to look again.
import type { TimeSlice } from '../util/time-slice';

export interface RepairJob<Found, Outcome> {
  /** What may need repair, found by reading only. */
  find(slice: TimeSlice): Promise<Found>;
  /** Each finding checked again as things are now, and what is still wrong repaired. */
  confirm(found: Found, slice: TimeSlice): Promise<Outcome>;
}

/** A job found and confirmed in the calling thread (recovery at start). */
export async function repairInThread<Found, Outcome>(job: RepairJob<Found, Outcome>, slice: TimeSlice): Promise<Outcome> {
  return job.confirm(await job.find(slice), slice);
}
