// Fault injection for recovery tests: QOSD_CRASH_AT names a step, and the daemon kills itself
// (SIGKILL: no cleanup, no flush, as a power cut or an OOM kill would) when it reaches it. Unset
// in production, where this is one string comparison per step.
export const CRASH_POINTS = [
  'create:intent', // volume row "creating" committed, nothing on the node yet
  'create:allocated', // backing file and loop device made
  'create:formatted', // mkfs done, row not yet "ready"
  'attach:intent', // attachment row "attaching" committed
  'attach:mounted', // mounted, rules not written, row not "attached"
  'attach:attached', // all done, reply not sent
  'detach:intent', // attachment row "detaching" committed
  'detach:unmounted', // unmounted, rules still in place
  'detach:cleared', // rules cleared, row not deleted
  'delete:intent', // volume row "deleting" committed
  'delete:removed', // storage released, row not deleted
] as const;

export type CrashPoint = (typeof CRASH_POINTS)[number];

const armed = process.env.QOSD_CRASH_AT;

export function crashPoint(step: CrashPoint): void {
  if (armed === step) process.kill(process.pid, 'SIGKILL');
}
