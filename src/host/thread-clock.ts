// How long the calling thread has waited for a core: the second field of
// <proc>/thread-self/schedstat (ns runnable but not running). The kernel brings it up to date each
// time the thread is given a core back, so a wait inside a stretch of synchronous work is counted
// by the time that work reads it again; the first field (ns run) is brought up to date only at
// scheduler ticks, too coarse for a 1 ms slice. Benchmarks use it to tell a job's own time within
// a slice from the time its thread waited while other threads and processes ran.
import { readSmall } from './read-small';
import type { HostRoot } from './host-root';

/** The time this thread (or `task`: a thread or process id) has waited for a core so far, in ms. */
export function threadWaitMs(root: HostRoot, task = 'thread-self'): number {
  const fields = readSmall(`${root.proc}/${task}/schedstat`).split(' ');
  return Number(fields[1]) / 1e6;
}
