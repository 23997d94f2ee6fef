// Reads the YAML config, checks it against schema.ts, fills in defaults, applies flags, and runs
// the checks a schema cannot express (pool names unique, defaults point at real pools and classes).
// Any problem is a ConfigError naming the key path and the reason, so the daemon stops at start
// rather than running on a half-understood file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { Value } from '@sinclair/typebox/value';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { ConfigFileSchema, type ConfigFile } from './schema';
import { fromKubeconfig } from '../kube/connection';
import { DEFAULT_CLASSES, DEFAULTS, type Config, type LogLevel, type PoolConfig } from './config';
import { parseQuantity } from '../util/quantity';
import { DIMENSIONS, DIRECTIONS, checkSpec, type Direction, type Figures, type LatencyTargets, type QosSpec } from '../model/qos';
import { parseDuration } from '../util/duration';

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly reason: string,
    readonly file?: string,
  ) {
    super(`${file ? `${file}: ` : ''}${key ? `${key}: ` : ''}${reason}`);
  }
}

export interface ConfigFlags {
  config?: string;
  socket?: string;
  stateDir?: string;
  metricsListen?: string;
  logLevel?: string;
  /** json or pretty; qosd.ts picks pretty for a terminal when not given. */
  logFormat?: string;
}

/** JSON pointer "/pools/0/capacity/readIops" → "pools[0].capacity.readIops". */
export function keyPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^[0-9]+$/.test(part)) out += `[${part}]`;
    else out += out ? `.${part}` : part;
  }
  return out;
}

function describe(e: ValueError): string {
  if (e.type === ValueErrorType.ObjectAdditionalProperties) return 'unknown key';
  if (e.type === ValueErrorType.ObjectRequiredProperty) return 'is required';
  const custom = (e.schema as { errorMessage?: string }).errorMessage;
  return custom ?? e.message.toLowerCase();
}

function readFile(file: string, explicit: boolean): ConfigFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The default path is optional (embedded defaults); a path the operator named is not.
    if (code === 'ENOENT' && !explicit) return {};
    throw new ConfigError('', `cannot read config file: ${(err as Error).message}`, file);
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError('', `not valid YAML: ${doc.errors[0]!.message}`, file);
  }
  const raw: unknown = doc.toJS() ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError('', 'the top level must be a mapping of keys', file);
  }
  const first = Value.Errors(ConfigFileSchema, raw).First();
  if (first) throw new ConfigError(keyPath(first.path), describe(first), file);
  return raw as ConfigFile;
}

/** Each of `names` present in `raw`, parsed; a bad one is a ConfigError naming `key.name`. */
function parsedEach<K extends string, V>(raw: Partial<Record<K, V>> | undefined, names: readonly K[], parse: (v: V) => number | { error: string }, key: string): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = {};
  for (const name of names) {
    const v = raw?.[name];
    if (v === undefined) continue;
    const n = parse(v);
    if (typeof n !== 'number') throw new ConfigError(`${key}.${name}`, n.error);
    out[name] = n;
  }
  return out;
}

function figures(raw: Record<string, number | string> | undefined, key: string): Figures {
  return parsedEach(raw, DIMENSIONS, parseQuantity, key);
}

function parseListen(value: string, key: string): Config['metricsListen'] {
  if (value === 'off') return undefined;
  const m = /^\[?([^\]]+?)\]?:([0-9]{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new ConfigError(key, `"${value}" must be HOST:PORT (port 1-65535) or "off"`);
  return { host: m[1]!, port };
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function csiConfig(raw: ConfigFile['csi'], abs: (p: string) => string): Config['csi'] {
  const socket = raw?.socket ?? DEFAULTS.csiSocket;
  if (socket === 'off') return undefined;
  if (!socket.endsWith('.sock')) throw new ConfigError('csi.socket', 'a CSI endpoint must end in .sock (the spec says so), or be "off"');
  const nodeName = raw?.nodeName ?? os.hostname().toLowerCase();
  if (!/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/.test(nodeName)) {
    throw new ConfigError('csi.nodeName', `the hostname "${nodeName}" is not a usable node name (at most 63 lowercase letters, digits, "-" and "."); set csi.nodeName to the Kubernetes node name`);
  }
  const kubeconfig = raw?.kubeconfig === undefined || raw.kubeconfig === 'off' ? undefined : raw.kubeconfig === 'in-cluster' ? 'in-cluster' : abs(raw.kubeconfig);
  if (kubeconfig && kubeconfig !== 'in-cluster') {
    try {
      fromKubeconfig(kubeconfig);
    } catch (err) {
      throw new ConfigError('csi.kubeconfig', (err as Error).message);
    }
  }
  return { socket: abs(socket), nodeName, registration: raw?.registration ?? true, kubeconfig };
}

/** The pools, each checked: a file pool's path must exist unless qosd may make it. */
function poolsConfig(raw: ConfigFile['pools'], stateDir: string, abs: (p: string) => string): PoolConfig[] {
  return (raw ?? [{ name: 'default', backend: 'file' }]).map((p, i): PoolConfig => {
    const key = `pools[${i}]`;
    const capacity = figures(p.capacity, `${key}.capacity`);
    const unloadedLatency = latency(p.unloadedLatency, `${key}.unloadedLatency`);
    if (p.backend === 'file') {
      if (p.volumeGroup !== undefined || p.devices !== undefined || p.stripes !== undefined) {
        throw new ConfigError(`${key}`, 'volumeGroup, devices and stripes belong to the lvm backend, not file');
      }
      const poolPath = p.path ? abs(p.path) : path.join(stateDir, 'volumes', p.name);
      // A path that is not there may be a filesystem that is not mounted: qosd would fill the root
      // filesystem instead. It makes one only under its own state directory, or when told to.
      const create = p.create ?? (poolPath === stateDir || poolPath.startsWith(stateDir + path.sep));
      if (!create && !fs.existsSync(poolPath)) {
        throw new ConfigError(`${key}.path`, `${poolPath} does not exist (is its filesystem mounted?); make it, or set ${key}.create: true for qosd to`);
      }
      return { name: p.name, backend: 'file', path: poolPath, create, overcommit: p.overcommit ?? 1, capacity, ...(unloadedLatency && { unloadedLatency }) };
    }
    if (!p.volumeGroup) throw new ConfigError(`${key}.volumeGroup`, 'is required for the lvm backend');
    if (p.path !== undefined) throw new ConfigError(`${key}.path`, 'belongs to the file backend, not lvm');
    if (p.create !== undefined || p.overcommit !== undefined) throw new ConfigError(`${key}`, 'create and overcommit belong to the file backend, not lvm');
    const stripes = p.stripes ?? 1;
    if (p.devices && stripes > p.devices.length) throw new ConfigError(`${key}.stripes`, `${stripes} stripes need at least ${stripes} devices, not ${p.devices.length}`);
    return { name: p.name, backend: 'lvm', volumeGroup: p.volumeGroup, devices: p.devices ?? [], stripes, capacity, ...(unloadedLatency && { unloadedLatency }) };
  });
}

/** Durations per direction, in seconds; undefined when none is given. */
function latency(raw: Partial<Record<Direction, string>> | undefined, key: string): LatencyTargets | undefined {
  const out: LatencyTargets = parsedEach(raw, DIRECTIONS, parseDuration, key);
  return Object.keys(out).length ? out : undefined;
}

/** The QoS classes: the built-in ones, and the file's over them. */
function classesConfig(raw: ConfigFile['classes']): Map<string, QosSpec> {
  const classes = new Map<string, QosSpec>();
  const rawClasses = { ...DEFAULT_CLASSES, ...(raw ?? {}) };
  for (const [name, c] of Object.entries(rawClasses)) {
    const key = `classes.${name}`;
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) {
      throw new ConfigError(key, 'a class name is lowercase letters, digits and "-", at most 63 characters');
    }
    const spec: QosSpec = { min: figures(c.min, `${key}.min`), max: figures(c.max, `${key}.max`) };
    const targets = latency(c.latency, `${key}.latency`);
    if (targets) spec.latency = targets;
    const bad = checkSpec(spec);
    if (bad) throw new ConfigError(`${key}.${bad.split(':')[0]}`, bad.slice(bad.indexOf(':') + 2));
    classes.set(name, spec);
  }
  return classes;
}

/** The log's level (the flag over the file) and format (a flag only). */
function logConfig(flags: ConfigFlags, raw: ConfigFile): Pick<Config, 'logLevel' | 'logFormat'> {
  let logLevel: LogLevel = raw.logLevel ?? 'info';
  if (flags.logLevel !== undefined) {
    if (!LOG_LEVELS.includes(flags.logLevel as LogLevel)) {
      throw new ConfigError('--log-level', `must be one of ${LOG_LEVELS.join(', ')}`);
    }
    logLevel = flags.logLevel as LogLevel;
  }
  const logFormat = flags.logFormat ?? 'json';
  if (logFormat !== 'json' && logFormat !== 'pretty') throw new ConfigError('--log-format', 'must be json or pretty');
  return { logLevel, logFormat };
}

/** Loads and resolves the config; throws ConfigError on the first problem. */
export function loadConfig(flags: ConfigFlags = {}): Config {
  const explicit = flags.config !== undefined;
  const file = path.resolve(flags.config ?? DEFAULTS.config);
  const raw = readFile(file, explicit);
  const sourceExists = fs.existsSync(file);
  const base = path.dirname(file);
  // Relative paths in the file are relative to the file, so a checkout's dev config works from any cwd.
  const abs = (p: string): string => path.resolve(base, p);
  const fromFlag = (p: string): string => path.resolve(p);

  try {
    const stateDir = flags.stateDir !== undefined ? fromFlag(flags.stateDir) : abs(raw.stateDir ?? DEFAULTS.stateDir);
    const socket = flags.socket !== undefined ? fromFlag(flags.socket) : abs(raw.socket ?? DEFAULTS.socket);

    const { logLevel, logFormat } = logConfig(flags, raw);

    const metricsListen =
      flags.metricsListen !== undefined
        ? parseListen(flags.metricsListen, '--metrics-listen')
        : parseListen(raw.metrics?.listen ?? DEFAULTS.metricsListen, 'metrics.listen');

    const pools = poolsConfig(raw.pools, stateDir, abs);
    if (pools.length === 0) throw new ConfigError('pools', 'must list at least one pool');
    const seen = new Set<string>();
    pools.forEach((p, i) => {
      if (seen.has(p.name)) throw new ConfigError(`pools[${i}].name`, `"${p.name}" is used by an earlier pool`);
      seen.add(p.name);
    });

    const classes = classesConfig(raw.classes);

    const d = raw.defaults ?? {};
    const defaultPool = d.pool ?? pools[0]!.name;
    if (!seen.has(defaultPool)) throw new ConfigError('defaults.pool', `"${defaultPool}" is not a configured pool`);
    const defaultClass = d.class ?? 'best-effort';
    if (!classes.has(defaultClass)) throw new ConfigError('defaults.class', `"${defaultClass}" is not a configured class`);
    const size = parseQuantity(d.size ?? DEFAULTS.size);
    if (typeof size !== 'number') throw new ConfigError('defaults.size', size.error);

    return {
      source: sourceExists ? file : undefined,
      socket,
      stateDir,
      logLevel,
      logFormat,
      metricsListen,
      metricsPerVolume: raw.metrics?.perVolume ?? true,
      csi: csiConfig(raw.csi, abs),
      kubelet: {
        rootDir: abs(raw.kubelet?.rootDir ?? DEFAULTS.kubeletRootDir),
        cgroupRoot: raw.kubelet?.cgroupRoot ?? DEFAULTS.cgroupRoot,
        cgroupDriver: raw.kubelet?.cgroupDriver ?? 'auto',
      },
      cgroup: {
        mountPoint: abs(raw.cgroup?.mountPoint ?? DEFAULTS.cgroupMountPoint),
        version: raw.cgroup?.version ?? 'auto',
      },
      reconcileIntervalMs: Math.round((raw.reconcile?.intervalSeconds ?? DEFAULTS.reconcileIntervalSeconds) * 1000),
      headroom: raw.admission?.headroom ?? DEFAULTS.headroom,
      flex: { allowedNamespaces: raw.flex?.allowedNamespaces },
      events: { maxAgeDays: raw.events?.maxAgeDays ?? DEFAULTS.eventsMaxAgeDays, maxRows: raw.events?.maxRows ?? DEFAULTS.eventsMaxRows },
      controller: { enabled: raw.controller?.enabled ?? true, intervalMs: raw.controller?.intervalMs ?? 250 },
      pools,
      classes,
      defaults: { pool: defaultPool, class: defaultClass, size, fsType: d.fsType ?? DEFAULTS.fsType },
    };
  } catch (err) {
    if (err instanceof ConfigError && err.file === undefined && !err.key.startsWith('--')) {
      throw new ConfigError(err.key, err.reason, sourceExists ? file : undefined);
    }
    throw err;
  }
}
