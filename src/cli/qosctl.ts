#!/usr/bin/env node
// qosctl: the operator CLI. Talks to qosd over its unix socket; -o json prints the API's JSON,
// -o table (the default) prints what a person reads. Exit status: 0 ok, 1 the daemon refused or
// failed (or doctor found a failure), 2 bad arguments.
import { Command, Option } from 'commander';
import { identifyAs } from './client';
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
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

registerNodeCommands(program);
registerPoolCommands(program);
registerVolumeCommands(program);

program.parseAsync().catch((err: Error) => {
  process.stderr.write(`qosctl: ${err.message}\n`);
  process.exit(2);
});
