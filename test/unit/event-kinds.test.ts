// The event log's kinds are a closed list, and docs/api.md's table names exactly that list.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EVENT_KINDS } from '../../src/model/event-kinds';

describe('event kinds', () => {
  it("docs/api.md's table lists every kind the log can hold, and no other", () => {
    const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'api.md'), 'utf8');
    const start = doc.indexOf('| kind | when |');
    expect(start).toBeGreaterThan(0);
    const table = doc.slice(start).split('\n\n')[0] ?? '';
    const rows = table.split('\n').slice(2);
    const documented = rows.map((l) => /^\| `([a-z-]+)` \|/.exec(l)?.[1]);
    expect([...documented].sort()).toEqual([...EVENT_KINDS].sort());
  });
});
