// How the daemon is started: with the Node.js flags of cli/node-flags.ts, from its unit's
// ExecStart and from its executable's #! line alike.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DAEMON_NODE_FLAGS } from '../../src/cli/node-flags';
import { serviceUnit } from '../../src/cli/install-units';

const QOSD = path.resolve(__dirname, '../../dist/cli/qosd.js');

describe('the daemon\'s Node.js flags', () => {
  it('are on the unit\'s ExecStart, between this node and the daemon', () => {
    const unit = serviceUnit('/etc/qosd/config.yaml', '/opt/node/bin/node');
    expect(unit).toMatch(new RegExp(`^ExecStart=/opt/node/bin/node ${DAEMON_NODE_FLAGS.join(' ')} \\S+/qosd\\.js --config /etc/qosd/config\\.yaml$`, 'm'));
  });

  it('are on the built executable\'s #! line, which runs', () => {
    expect(fs.readFileSync(QOSD, 'utf8').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${DAEMON_NODE_FLAGS.join(' ')}`);
    const r = spawnSync(QOSD, ['--help'], { encoding: 'utf8', env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` }, timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Usage: qosd/);
  });
});
