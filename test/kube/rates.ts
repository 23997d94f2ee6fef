// A rate measured in a container, judged as the node tests judge theirs (helpers/throttle.ts):
// the limit is a hard upper bound; the lower bound is checked against the same IO unthrottled,
// measured on the host in the same test (skipped, saying so, where that is under twice the limit).
import { expectThrottled } from '../helpers/throttle';

export async function expectContainerThrottled(what: string, rate: number, limit: number, baseline: () => Promise<number>): Promise<void> {
  const v = await expectThrottled({ rate, limit, baseline });
  console.log(`${what}: ${rate}/s in the container against ${limit}/s (unthrottled on the host ${v.baseline.toFixed(0)}/s${v.lower === undefined ? '; lower bound skipped' : `; at least ${v.lower.toFixed(0)}/s expected`})`);
}
