#!/usr/bin/env node
// qosctl: the operator CLI. Talks to qosd over its unix socket; -o json prints the API's JSON,
// -o table (the default) prints what a person reads. Exit status: 0 ok, 1 the daemon refused or
// failed (or doctor found a failure), 2 bad arguments.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { call, identifyAs } from './client';
import { action, emit, globals } from './output';
import { DEFAULTS } from '../config/config';
import { registerVolumeCommands } from './commands/volume';
import { registerPoolCommands } from './commands/pool';
import { registerNodeCommands } from './commands/node';

identifyAs('cli');

// `qosctl volumes | head`: a reader that closes the pipe early ends the output, quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const program = new Command('qosctl')
  .description('Operate qosd, the node storage QoS daemon')
  .addOption(new Option('--socket <path>', 'qosd API socket').env('QOSD_SOCKET').default(DEFAULTS.socket))
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'wide', 'json']).default('table'))
  // A mistake gets one line and a hint, not the whole help.
  .showHelpAfterError('(qosctl --help lists the commands; qosctl COMMAND --help their options)')
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

const CLIENT_VERSION = (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

program
  .command('version')
  .description("print qosctl's version, and the daemon's when it answers")
  .action(
    action(async function (this: Command) {
      const g = globals(this);
      let daemon: string | null = null;
      let why = '';
      try {
        daemon = (await call<{ version: string }>(g.socket, 'GET', '/v1/status')).version;
      } catch (err) {
        why = (err as Error).message;
      }
      emit(g, { qosctl: CLIENT_VERSION, qosd: daemon }, () =>
        process.stdout.write(`qosctl ${CLIENT_VERSION}\nqosd   ${daemon ?? `(not reachable: ${why})`}\n`));
    }),
  );

registerNodeCommands(program);
registerPoolCommands(program);
registerVolumeCommands(program);

// --version (-V) is the version command.
const argv = process.argv.map((a) => (a === '--version' || a === '-V' ? 'version' : a));
program.parseAsync(argv).catch((err: Error) => {
  process.stderr.write(`qosctl: ${err.message}\n`);
  process.exit(2);
});
