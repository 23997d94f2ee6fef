// The event log keeps events for events.maxAgeDays and at most events.maxRows, removed oldest
// first in batches; the schema still refuses an UPDATE, and a DELETE of anything the retention
// has not marked.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { memoryStore } from '../helpers/fixtures';
import { pruneEvents } from '../../src/store/event-retention';
import { loadConfig } from '../../src/config/load';
import type { Store } from '../../src/store/store';

const DAY = 86_400_000;
const NOW = Date.parse('2026-12-07T12:00:00Z');

function addEvents(store: Store, n: number, ageDays: (i: number) => number): void {
  store.tx(() => {
    for (let i = 0; i < n; i++) {
      store.events.add({ time: new Date(NOW - ageDays(i) * DAY).toISOString(), volume: `v${i}`, kind: 'qos-changed', source: 'api', detail: { i } });
    }
  });
}

const count = (store: Store): number => store.db.prepare('SELECT count(*) FROM events').pluck().get() as number;

describe('event retention', () => {
  it('removes the events older than maxAgeDays, oldest first, and keeps the rest in order', async () => {
    const store = memoryStore();
    addEvents(store, 300, (i) => 300 - i); // from 300 days old to 1 day old
    let pauses = 0;
    const removed = await pruneEvents(store.events, { maxAgeDays: 90, maxRows: 100_000 }, NOW, async () => void pauses++);
    expect(removed).toBe(210);
    const left = store.events.list(undefined, 1000);
    expect(left).toHaveLength(90);
    expect(left[0]!.detail).toEqual({ i: 210 });
    expect(left.at(-1)!.detail).toEqual({ i: 299 });
    expect(pauses).toBe(1);
  });

  it('keeps at most maxRows, a batch of 1,000 per turn of the loop', async () => {
    const store = memoryStore();
    addEvents(store, 3500, () => 1);
    let pauses = 0;
    const removed = await pruneEvents(store.events, { maxAgeDays: 90, maxRows: 1000 }, NOW, async () => void pauses++);
    expect(removed).toBe(2500);
    expect(count(store)).toBe(1000);
    expect(pauses).toBe(3); // 1,000 + 1,000 + 500
    expect(store.events.list(undefined, 1)[0]!.detail).toEqual({ i: 3499 });
    // Nothing more to do: a second run removes nothing.
    expect(await pruneEvents(store.events, { maxAgeDays: 90, maxRows: 1000 }, NOW)).toBe(0);
  });

  it('still refuses an UPDATE of any event, and a DELETE of one the retention did not mark', async () => {
    const store = memoryStore();
    addEvents(store, 10, (i) => 200 - i);
    expect(() => store.db.prepare("UPDATE events SET kind = 'x'").run()).toThrow('events are append-only');
    expect(() => store.db.prepare('DELETE FROM events WHERE id = 5').run()).toThrow('only the retention removes them, oldest first');
    await pruneEvents(store.events, { maxAgeDays: 195, maxRows: 100_000 }, NOW); // ids 1-5 (200-196 days old)
    expect(count(store)).toBe(5);
    expect(() => store.db.prepare('DELETE FROM events WHERE id = 8').run()).toThrow('only the retention removes them');
    expect(() => store.db.prepare('UPDATE event_retention SET pruned_through = 1').run()).toThrow('only rises');
  });

  it('is configured by events.maxAgeDays and events.maxRows (90 days and 100,000 by default), and refuses nonsense naming the key', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-retention-'));
    const file = path.join(dir, 'config.yaml');
    fs.writeFileSync(file, 'csi: { socket: "off" }\n');
    expect(loadConfig({ config: file }).events).toEqual({ maxAgeDays: 90, maxRows: 100_000 });
    fs.writeFileSync(file, 'csi: { socket: "off" }\nevents: { maxAgeDays: 7, maxRows: 5000 }\n');
    expect(loadConfig({ config: file }).events).toEqual({ maxAgeDays: 7, maxRows: 5000 });
    fs.writeFileSync(file, 'csi: { socket: "off" }\nevents: { maxRows: 10 }\n');
    expect(() => loadConfig({ config: file })).toThrow('events.maxRows: must be an integer from 1000 to 100000000');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
