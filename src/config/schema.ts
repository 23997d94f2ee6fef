// The config file's shape, as one TypeBox definition: it is both the JSON schema the loader checks
// the YAML against and the TypeScript type of the raw file. Every key is optional; defaults.ts fills
// them in. Unknown keys are errors (a typo must not silently fall back to a default).
import { Type, type Static, type TString } from '@sinclair/typebox';
import { QUANTITY_PATTERN } from '../util/quantity';
import { DURATION_PATTERN } from '../util/duration';

const strict = { additionalProperties: false } as const;

/** A positive integer, or a quantity string such as "500M" or "2Gi". */
export const Quantity = Type.Union(
  [Type.Integer({ minimum: 1 }), Type.String({ pattern: QUANTITY_PATTERN })],
  { errorMessage: 'must be a positive integer or a quantity such as 500M or 2Gi' },
);

/** A positive integer (operations per second). */
export const Count = Type.Integer({ minimum: 1, errorMessage: 'must be a positive integer' });

export const FiguresSchema = Type.Object(
  {
    readIops: Type.Optional(Count),
    writeIops: Type.Optional(Count),
    readBps: Type.Optional(Quantity),
    writeBps: Type.Optional(Quantity),
  },
  strict,
);

/** A short duration: "500us", "2ms", "0.01s". */
export const Duration = Type.String({ pattern: DURATION_PATTERN, errorMessage: 'must be a duration such as 500us, 2ms or 0.01s' });

/** Per direction, a duration: a class's latency targets, a pool's unloaded latency. */
export const LatencySchema = Type.Object({ read: Type.Optional(Duration), write: Type.Optional(Duration) }, strict);

const Name = (what: string): TString =>
  Type.String({
    pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$',
    errorMessage: `must be a ${what} name: lowercase letters, digits and '-', at most 63 characters`,
  });

const AbsPath = Type.String({ pattern: '^/', minLength: 1, errorMessage: 'must be an absolute path' });
const AnyPath = Type.String({ minLength: 1, errorMessage: 'must be a non-empty path' });

export const PoolSchema = Type.Object(
  {
    name: Name('pool'),
    backend: Type.Union([Type.Literal('file'), Type.Literal('lvm')], { errorMessage: 'must be "file" or "lvm"' }),
    path: Type.Optional(AnyPath),
    volumeGroup: Type.Optional(Type.String({ minLength: 1 })),
    devices: Type.Optional(Type.Array(AbsPath)),
    stripes: Type.Optional(Type.Integer({ minimum: 1, maximum: 32, errorMessage: 'must be an integer from 1 to 32' })),
    // file pools: make the path when it does not exist; provision beyond the free space by this factor
    create: Type.Optional(Type.Boolean({ errorMessage: 'must be true or false' })),
    overcommit: Type.Optional(Type.Number({ minimum: 1, maximum: 100, errorMessage: 'must be a number from 1 (no overcommit) to 100' })),
    capacity: Type.Optional(FiguresSchema),
    // the device's latency for one 4 KiB IO at queue depth 1 (fio), for admitting latency targets
    unloadedLatency: Type.Optional(LatencySchema),
  },
  strict,
);

export const ClassSchema = Type.Object(
  { min: Type.Optional(FiguresSchema), max: Type.Optional(FiguresSchema), latency: Type.Optional(LatencySchema) },
  strict,
);

export const ConfigFileSchema = Type.Object(
  {
    socket: Type.Optional(AnyPath),
    stateDir: Type.Optional(AnyPath),
    logLevel: Type.Optional(
      Type.Union(
        [
          Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'),
          Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent'),
        ],
        { errorMessage: 'must be one of fatal, error, warn, info, debug, trace, silent' },
      ),
    ),
    metrics: Type.Optional(
      Type.Object(
        {
          listen: Type.Optional(
            Type.String({
              pattern: '^(off|[^:]+:[0-9]{1,5}|\\[[0-9a-fA-F:]+\\]:[0-9]{1,5})$',
              errorMessage: 'must be HOST:PORT or "off"',
            }),
          ),
          // Whether the listener serves the per-volume families (volume names, pod UIDs).
          perVolume: Type.Optional(Type.Boolean({ errorMessage: 'must be true or false' })),
        },
        strict,
      ),
    ),
    flex: Type.Optional(
      Type.Object(
        {
          // The namespaces whose pods may use the qosd/nvme flex driver; absent: every namespace.
          allowedNamespaces: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', errorMessage: 'must be a Kubernetes namespace name' }))),
        },
        strict,
      ),
    ),
    csi: Type.Optional(
      Type.Object(
        {
          // A path, or "off": no CSI socket (and no registration with kubelet).
          socket: Type.Optional(AnyPath),
          nodeName: Type.Optional(
            Type.String({
              pattern: '^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$',
              errorMessage: 'must be the Kubernetes node name: lowercase letters, digits, "-" and ".", at most 63 characters (it is a label value)',
            }),
          ),
          registration: Type.Optional(Type.Boolean({ errorMessage: 'must be true or false' })),
          // "off", "in-cluster" or a kubeconfig file: the API server access through which the
          // central controller's VolumeRequests reach this node (csi/volume-request-worker.ts).
          kubeconfig: Type.Optional(AnyPath),
        },
        strict,
      ),
    ),
    kubelet: Type.Optional(
      Type.Object(
        {
          rootDir: Type.Optional(AnyPath),
          cgroupRoot: Type.Optional(AbsPath),
          cgroupDriver: Type.Optional(
            Type.Union([Type.Literal('auto'), Type.Literal('cgroupfs'), Type.Literal('systemd')], {
              errorMessage: 'must be "auto", "cgroupfs" or "systemd"',
            }),
          ),
        },
        strict,
      ),
    ),
    cgroup: Type.Optional(
      Type.Object(
        {
          mountPoint: Type.Optional(AnyPath),
          version: Type.Optional(
            Type.Union([Type.Literal('auto'), Type.Literal('v1'), Type.Literal('v2')], {
              errorMessage: 'must be "auto", "v1" or "v2"',
            }),
          ),
        },
        strict,
      ),
    ),
    reconcile: Type.Optional(
      Type.Object(
        {
          intervalSeconds: Type.Optional(
            Type.Number({ exclusiveMinimum: 0, maximum: 3600, errorMessage: 'must be a number of seconds in (0, 3600]' }),
          ),
        },
        strict,
      ),
    ),
    controller: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ errorMessage: 'must be true or false' })),
          intervalMs: Type.Optional(Type.Integer({ minimum: 50, maximum: 60000, errorMessage: 'must be an integer number of milliseconds from 50 to 60000' })),
        },
        strict,
      ),
    ),
    events: Type.Optional(
      Type.Object(
        {
          maxAgeDays: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 36500, errorMessage: 'must be a number of days in (0, 36500]' })),
          maxRows: Type.Optional(Type.Integer({ minimum: 1000, maximum: 100_000_000, errorMessage: 'must be an integer from 1000 to 100000000' })),
        },
        strict,
      ),
    ),
    admission: Type.Optional(
      Type.Object(
        {
          headroom: Type.Optional(
            Type.Number({ minimum: 0, exclusiveMaximum: 1, errorMessage: 'must be a fraction in [0, 1), e.g. 0.1 for 10%' }),
          ),
        },
        strict,
      ),
    ),
    pools: Type.Optional(Type.Array(PoolSchema)),
    classes: Type.Optional(Type.Record(Type.String(), ClassSchema)),
    defaults: Type.Optional(
      Type.Object(
        {
          pool: Type.Optional(Type.String({ minLength: 1 })),
          class: Type.Optional(Type.String({ minLength: 1 })),
          size: Type.Optional(Quantity),
          fsType: Type.Optional(
            Type.Union([Type.Literal('ext4'), Type.Literal('xfs')], { errorMessage: 'must be "ext4" or "xfs"' }),
          ),
        },
        strict,
      ),
    ),
  },
  strict,
);

export type ConfigFile = Static<typeof ConfigFileSchema>;
