// The option names a Kubernetes user writes for a volume's QoS: the same in a flex PV's options,
// a CSI PV's volumeAttributes and (CSI part 2) a StorageClass's parameters: minReadIops …
// maxWriteBps. Values are strings, as Kubernetes passes them; IOPS whole numbers, bandwidth a
// quantity ("100M", "1Gi").
import { parseQuantity } from '../util/quantity';
import { DIMENSIONS, type Dimension, type Figures, type QosSpec } from '../model/qos';
import { invalid } from '../model/errors';

type LimitOption = [side: 'min' | 'max', dim: Dimension];

export const LIMIT_OPTIONS: ReadonlyMap<string, LimitOption> = new Map(
  DIMENSIONS.flatMap((d): [string, LimitOption][] => {
    const cap = d[0]!.toUpperCase() + d.slice(1);
    return [[`max${cap}`, ['max', d]], [`min${cap}`, ['min', d]]];
  }),
);

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
  return Object.keys(min).length || Object.keys(max).length ? { min, max } : undefined;
}
