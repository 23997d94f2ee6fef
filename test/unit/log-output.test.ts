// Readable log lines for a terminal: the same record as the JSON line, rendered for a person.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { prettyLine } from '../../src/util/log-output';
import { ConfigError, loadConfig } from '../../src/config/load';

describe('log output', () => {
  it('renders a record as time, level, message and its fields; an error with its stack below', () => {
    const time = Date.UTC(2026, 11, 7, 9, 30, 1, 250);
    expect(prettyLine(JSON.stringify({ level: 30, time, pid: 7, hostname: 'n1', msg: 'qosd serving', socket: '/run/qosd/qosd.sock', metrics: '127.0.0.1:9567', recovery: { volumes: 2 } })))
      .toBe('09:30:01.250 INFO  qosd serving socket=/run/qosd/qosd.sock metrics=127.0.0.1:9567 recovery={"volumes":2}\n');
    expect(prettyLine(JSON.stringify({ level: 50, time, msg: 'mount failed', volume: 'a b', err: { message: 'x', stack: 'Error: x\n    at f' } })))
      .toBe('09:30:01.250 ERROR mount failed volume="a b"\n    Error: x\n        at f\n');
    expect(prettyLine('not json')).toBe('not json\n');
  });

  it('is chosen by --log-format; anything else is refused naming the flag', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-log-'));
    const config = path.join(dir, 'qosd.yaml');
    fs.writeFileSync(config, `stateDir: ${dir}\n`);
    expect(loadConfig({ config: config, logFormat: 'pretty' }).logFormat).toBe('pretty');
    expect(loadConfig({ config: config }).logFormat).toBe('json');
    expect(() => loadConfig({ config: config, logFormat: 'xml' })).toThrow(ConfigError);
    expect(() => loadConfig({ config: config, logFormat: 'xml' })).toThrow(/--log-format: must be json or pretty/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
