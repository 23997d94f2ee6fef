// The option names a Kubernetes user writes for a volume's QoS: the same in a flex PV's options,
// a CSI PV's volumeAttributes and (CSI part 2) a StorageClass's parameters: minReadIops …
// maxWriteBps. Values are strings, as Kubernetes passes them; IOPS whole numbers, bandwidth a
// quantity ("100M", "1Gi").
import { parseQuantity } from '../util/quantity';
import { DIMENSIONS, type Dimension, type Direction, type Figures, type LatencyTargets, type QosSpec } from '../model/qos';
import { parseDuration } from '../util/duration';
import { invalid } from '../model/errors';

type LimitOption = [side: 'min' | 'max', dim: Dimension];

export const LIMIT_OPTIONS: ReadonlyMap<string, LimitOption> = new Map(
  DIMENSIONS.flatMap((d): [string, LimitOption][] => {
    const cap = d[0]!.toUpperCase() + d.slice(1);
    return [[`max${cap}`, ['max', d]], [`min${cap}`, ['min', d]]];
  }),
);

/** Latency targets: a duration ("2ms", "500us") per direction. */
export const LATENCY_OPTIONS: ReadonlyMap<string, Direction> = new Map([['readLatencyTarget', 'read'], ['writeLatencyTarget', 'write']]);

/** Every QoS option a user may write (limits, guarantees, latency targets). */
export const QOS_OPTIONS: readonly string[] = [...LIMIT_OPTIONS.keys(), ...LATENCY_OPTIONS.keys()];

/** "latency.read" (the API's name) as the option a user writes: "readLatencyTarget"; "min.readIops": "minReadIops". */
export function optionName(field: string): string {
  const [side, rest] = field.split('.');
  if (side === 'latency' && rest) return `${rest}LatencyTarget`;
  return rest ? `${side}${rest[0]!.toUpperCase()}${rest.slice(1)}` : field;
}

/**
 * The QoS figures named in `opts`, or undefined when it names none; InvalidArgument names the
 * option as `label(key)` gives it (e.g. `option maxReadIops`, `volume_context["maxReadIops"]`).
 */
export function limitsFromOptions(opts: ReadonlyMap<string, string>, label: (key: string) => string): QosSpec | undefined {
  const min: Figures = {};
  const max: Figures = {};
  for (const [opt, [side, dim]] of LIMIT_OPTIONS) {
    const text = opts.get(opt);
    if (text === undefined) continue;
    if (dim.endsWith('Iops') && !/^[0-9]+$/.test(text.trim())) throw invalid(`${label(opt)}: "${text}" must be a whole number of operations per second`);
    const n = parseQuantity(text);
    if (typeof n !== 'number') throw invalid(`${label(opt)}: ${n.error}`);
    (side === 'min' ? min : max)[dim] = n;
  }
  const latency: LatencyTargets = {};
  for (const [opt, dir] of LATENCY_OPTIONS) {
    const text = opts.get(opt);
    if (text === undefined) continue;
    const seconds = parseDuration(text);
    if (typeof seconds !== 'number') throw invalid(`${label(opt)}: ${seconds.error}`);
    latency[dir] = seconds;
  }
  const hasLatency = Object.keys(latency).length > 0;
  if (!Object.keys(min).length && !Object.keys(max).length && !hasLatency) return undefined;
  return hasLatency ? { min, max, latency } : { min, max };
}
