#!/usr/bin/env -S node --single-threaded-gc
// qosd: the node daemon. Flags override the config file; a bad config stops it at once with the
// key path and the reason. The #! line carries the daemon's Node.js flags (node-flags.ts says why).
import { earlyStop } from './early-signals'; // first: signals are caught from the first instant
import { Command } from 'commander';
import { ConfigError, loadConfig } from '../config/load';
import { DEFAULTS } from '../config/config';
import { VERSION, startDaemon } from '../daemon';
import { AddonAbiMismatch } from '../store/db';
import { CENTRAL_DEFAULTS, runCentral, type CentralFlags } from './csi-controller';
import { EXTENDER_DEFAULTS, runExtender, type ExtenderFlags } from './scheduler-extender';

const program = new Command('qosd')
  .description('Node-resident storage QoS daemon')
  .version(VERSION)
  .option('--config <file>', `YAML config file (default ${DEFAULTS.config}, optional when at its default path)`)
  .option('--socket <path>', `API unix socket (default ${DEFAULTS.socket})`)
  .option('--state-dir <dir>', `state directory holding qosd.db (default ${DEFAULTS.stateDir})`)
  .option('--metrics-listen <host:port|off>', `Prometheus listener (default ${DEFAULTS.metricsListen})`)
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)')
  .option('--log-format <json|pretty>', 'JSON lines (default; journald), or readable lines (default when stdout is a terminal)')
  .option('--check-config', 'validate the config, print the resolved result and exit')
  .allowExcessArguments(false)
  .showHelpAfterError()
  .enablePositionalOptions() // --socket before csi-controller is the daemon's, after it the command's
  .action(() => main().catch(fatal));

program
  .command('csi-controller')
  .description('the central CSI controller for external-resizer: expansions and QoS changes (VolumeAttributesClass) carried to the owning node through the API server')
  .option('--socket <path>', 'CSI socket shared with the sidecar', CENTRAL_DEFAULTS.socket)
  .option('--kubeconfig <file|in-cluster>', 'API server access: a kubeconfig file, or the pod\'s service account', CENTRAL_DEFAULTS.kubeconfig)
  .option('--wait-seconds <n>', "how long a call waits for the node's qosd (keep it below the sidecar's --timeout)", CENTRAL_DEFAULTS.waitSeconds)
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', CENTRAL_DEFAULTS.logLevel)
  .allowExcessArguments(false)
  .action((flags: CentralFlags) => runCentral(flags, VERSION).catch(fatal));

program
  .command('scheduler-extender')
  .description("a kube-scheduler extender placing pods with guaranteed qosd claims by each node's IO headroom (the CSIStorageCapacity qosd publishes): filter and prioritize")
  .option('--listen <host:port>', 'address the scheduler calls (keep it on loopback, beside the scheduler)', EXTENDER_DEFAULTS.listen)
  .option('--kubeconfig <file|in-cluster>', "API server access: a kubeconfig file, or the pod's service account", EXTENDER_DEFAULTS.kubeconfig)
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', EXTENDER_DEFAULTS.logLevel)
  .allowExcessArguments(false)
  .action((flags: ExtenderFlags) => runExtender(flags).catch(fatal));

const opts = program.opts<{ config?: string; socket?: string; stateDir?: string; metricsListen?: string; logLevel?: string; logFormat?: string; checkConfig?: boolean }>();

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig({ ...opts, logFormat: opts.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json') });
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
  const daemon = await startDaemon(config);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    daemon.app.log.info({ signal }, 'qosd stopping: no new connections, finishing requests in flight');
    daemon.close().then(
      () => process.exit(0),
      (err: Error) => {
        process.stderr.write(`qosd: error while stopping: ${err.message}\n`);
        process.exit(1);
      },
    );
  };
  earlyStop.handler = stop;
  // A stop asked for while starting is carried out now that the daemon is up.
  if (earlyStop.signal) stop(earlyStop.signal);
}

/**
 * The exit status of a start that no retry can mend: the unit's RestartPreventExitStatus names
 * it, so systemd stops restarting (the socket stays up; a caller's connection tries once more).
 */
const EXIT_NEEDS_REINSTALL = 78;

function fatal(err: Error): never {
  process.stderr.write(`qosd: ${err.message}\n`);
  // better-sqlite3's own words for an addon of another Node.js, where the package staged none.
  const wrongAbi = err instanceof AddonAbiMismatch || /NODE_MODULE_VERSION/.test(err.message);
  process.exit(wrongAbi ? EXIT_NEEDS_REINSTALL : 1);
}

program.parse();
