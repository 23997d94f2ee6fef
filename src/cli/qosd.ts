#!/usr/bin/env node
// qosd: the node daemon. Flags override the config file; a bad config stops it at once with the
// key path and the reason.
import { Command } from 'commander';
import { ConfigError, loadConfig } from '../config/load';
import { DEFAULTS } from '../config/config';
import { VERSION, startDaemon } from '../daemon';

const program = new Command('qosd')
  .description('Node-resident storage QoS daemon')
  .version(VERSION)
  .option('--config <file>', `YAML config file (default ${DEFAULTS.config}, optional when at its default path)`)
  .option('--socket <path>', `API unix socket (default ${DEFAULTS.socket})`)
  .option('--state-dir <dir>', `state directory holding qosd.db (default ${DEFAULTS.stateDir})`)
  .option('--metrics-listen <host:port|off>', `Prometheus listener (default ${DEFAULTS.metricsListen})`)
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)')
  .option('--check-config', 'validate the config, print the resolved result and exit')
  .allowExcessArguments(false)
  .showHelpAfterError();

program.parse();
const opts = program.opts<{ config?: string; socket?: string; stateDir?: string; metricsListen?: string; logLevel?: string; checkConfig?: boolean }>();

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(opts);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`qosd: invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (opts.checkConfig) {
    process.stdout.write(`${JSON.stringify({ ...config, classes: Object.fromEntries(config.classes) }, null, 2)}\n`);
    return;
  }
  // Signals are handled from the start: a stop asked for while starting waits for the start to
  // finish, then closes cleanly (exit 0) rather than dying half-way.
  let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    if (!daemon) return; // finished below, once the start completes
    daemon.app.log.info({ signal }, 'qosd stopping: no new connections, finishing requests in flight');
    daemon.close().then(
      () => process.exit(0),
      (err: Error) => {
        process.stderr.write(`qosd: error while stopping: ${err.message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  daemon = await startDaemon(config);
  if (stopping) {
    stopping = false;
    stop('SIGTERM');
  }
}

main().catch((err: Error) => {
  process.stderr.write(`qosd: ${err.message}\n`);
  process.exit(1);
});
