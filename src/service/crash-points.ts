// Fault injection for tests: QOSD_CRASH_AT names a step, and the daemon kills itself (SIGKILL: no
// cleanup, no flush, as a power cut or an OOM kill would) when it reaches it; QOSD_HOLD_AT names a
// step where it waits while the file QOSD_HOLD_FILE exists (it writes FILE.reached on arrival), so
// a test can change the node between two steps. Unset in production: one comparison per step.
import * as fs from 'node:fs';
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

export const HOLD_POINTS = [
  'attach:target-made', // the target checked and made, not yet opened and mounted
] as const;

export type HoldPoint = (typeof HOLD_POINTS)[number];

const holdAt = process.env.QOSD_HOLD_AT;
const holdFile = process.env.QOSD_HOLD_FILE;

export async function holdPoint(step: HoldPoint): Promise<void> {
  if (holdAt !== step || !holdFile) return;
  fs.writeFileSync(`${holdFile}.reached`, '');
  while (fs.existsSync(holdFile)) await new Promise((r) => setTimeout(r, 20));
}
