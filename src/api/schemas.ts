// JSON schemas for every body, param and reply of the API (TypeBox: one definition is both the
// schema fastify validates and serialises with, and the handler's TypeScript type). Objects are
// closed (unknown fields are 400s, not silently dropped) and nothing is coerced.
import { Type, type Static } from '@sinclair/typebox';
import { QUANTITY_PATTERN } from '../util/quantity';
import { DURATION_PATTERN } from '../util/duration';

const closed = { additionalProperties: false } as const;

// errorMessage (a keyword registered in server.ts) replaces ajv's message for a union, whose
// first branch's complaint ("must be integer") would mislead for a mistyped "10GB".
const Iops = Type.Integer({ minimum: 1, maximum: 4294967295 });
// Above 2^53 a JSON number is no longer an exact integer (1e308 parses as one): refused here.
const Bytes = Type.Union([Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), Type.String({ pattern: QUANTITY_PATTERN })], {
  errorMessage: 'must be a positive integer or a quantity such as 500M or 10Gi',
});

export const FiguresIn = Type.Object(
  { readIops: Type.Optional(Iops), writeIops: Type.Optional(Iops), readBps: Type.Optional(Bytes), writeBps: Type.Optional(Bytes) },
  closed,
);
/** In a PATCH, null removes a figure. */
export const FiguresPatch = Type.Object(
  {
    readIops: Type.Optional(Type.Union([Iops, Type.Null()], { errorMessage: 'must be a positive integer, or null to remove it' })),
    writeIops: Type.Optional(Type.Union([Iops, Type.Null()], { errorMessage: 'must be a positive integer, or null to remove it' })),
    readBps: Type.Optional(Type.Union([Bytes, Type.Null()], { errorMessage: 'must be a positive integer or a quantity such as 500M, or null to remove it' })),
    writeBps: Type.Optional(Type.Union([Bytes, Type.Null()], { errorMessage: 'must be a positive integer or a quantity such as 500M, or null to remove it' })),
  },
  closed,
);
export const FiguresOut = Type.Object({
  readIops: Type.Optional(Type.Integer()),
  writeIops: Type.Optional(Type.Integer()),
  readBps: Type.Optional(Type.Integer()),
  writeBps: Type.Optional(Type.Integer()),
});

const Duration = Type.String({ pattern: DURATION_PATTERN, errorMessage: 'must be a duration such as 500us, 2ms or 0.01s' });
/** Latency targets per direction, as durations ("2ms"). */
export const LatencyIn = Type.Object({ read: Type.Optional(Duration), write: Type.Optional(Duration) }, closed);
/** In a PATCH, null removes a target. */
export const LatencyPatch = Type.Object(
  {
    read: Type.Optional(Type.Union([Duration, Type.Null()], { errorMessage: 'must be a duration such as 500us or 2ms, or null to remove it' })),
    write: Type.Optional(Type.Union([Duration, Type.Null()], { errorMessage: 'must be a duration such as 500us or 2ms, or null to remove it' })),
  },
  closed,
);
/** Targets out, in seconds (the API's unit for time). */
export const LatencyOut = Type.Object({ read: Type.Optional(Type.Number()), write: Type.Optional(Type.Number()) });

/** The last hour of each of a volume's guarantees (controller/attainment.ts). */
export const AttainmentList = Type.Object({
  attainment: Type.Array(
    Type.Object({
      volume: Type.String(), pool: Type.String(),
      direction: Type.Union([Type.Literal('read'), Type.Literal('write')]),
      guarantee: Type.Union([Type.Literal('rate'), Type.Literal('latency')]),
      seconds: Type.Number(), keptSeconds: Type.Number(),
      /** The least part of the guarantee delivered in one controller tick of the hour (null: without bound). */
      worst: Type.Union([Type.Number(), Type.Null()]),
      worstAt: Type.String(),
      delivered: Type.Union([Type.Number(), Type.Null()]),
    }),
  ),
});

/** Routes take no query parameters; any given is an error rather than silently ignored. */
export const NoQuery = Type.Object({}, closed);

/** Pool and class names: lowercase letters, digits and '-', at most 63 characters. */
// The patterns said in words: a user should not have to read a regular expression.
const SafeName = Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', maxLength: 63, errorMessage: "must match pattern: lowercase letters, digits or '-', starting and ending with a letter or digit, at most 63 characters" });
const VOLUME_NAME_WORDS = "must match pattern: lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit, at most 200 characters";

export const VolumeNameParams = Type.Object(
  { name: Type.String({ pattern: '^[a-z0-9]([a-z0-9._-]{0,198}[a-z0-9])?$', errorMessage: VOLUME_NAME_WORDS }) },
  closed,
);

const Namespace = Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', errorMessage: 'must be a Kubernetes namespace name (a DNS label)' });

export const CreateVolumeBody = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9]([a-z0-9._-]{0,198}[a-z0-9])?$', errorMessage: VOLUME_NAME_WORDS }),
    pool: Type.Optional(SafeName),
    size: Type.Optional(Bytes),
    fsType: Type.Optional(Type.Union([Type.Literal('ext4'), Type.Literal('xfs')], { errorMessage: 'must be "ext4" or "xfs"' })),
    class: Type.Optional(SafeName),
    ephemeral: Type.Optional(Type.Boolean()),
    qos: Type.Optional(Type.Object({ min: Type.Optional(FiguresIn), max: Type.Optional(FiguresIn), latency: Type.Optional(LatencyIn) }, closed)),
    /** The namespace whose pods may mount it through flex (none: the first to mount it claims it). */
    namespace: Type.Optional(Namespace),
  },
  closed,
);
export type CreateVolumeBody = Static<typeof CreateVolumeBody>;

export const PatchVolumeBody = Type.Object(
  {
    size: Type.Optional(Bytes),
    class: Type.Optional(SafeName),
    qos: Type.Optional(Type.Object({ min: Type.Optional(FiguresPatch), max: Type.Optional(FiguresPatch), latency: Type.Optional(LatencyPatch) }, closed)),
    /** Gives the volume to a namespace (flex mounts from it alone). */
    namespace: Type.Optional(Namespace),
  },
  { ...closed, minProperties: 1 },
);
export type PatchVolumeBody = Static<typeof PatchVolumeBody>;

export const AttachmentOut = Type.Object({
  id: Type.Integer(),
  volume: Type.String(),
  podUid: Type.Union([Type.String(), Type.Null()]),
  target: Type.String(),
  readOnly: Type.Boolean(),
  /** mount: a filesystem on a directory; block: the device node on a file (a CSI raw-block volume). */
  kind: Type.Union([Type.Literal('mount'), Type.Literal('block')]),
  state: Type.String(),
  cgroupVersion: Type.Union([Type.String(), Type.Null()]),
  podCgroup: Type.Union([Type.String(), Type.Null()]),
  device: Type.Union([Type.String(), Type.Null()]),
  cgroupPaths: Type.Array(Type.String()),
  source: Type.String(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

/** Who asked for a change, recorded in the event log; qosctl sends "cli". */
export const SourceHeaders = Type.Object({
  'x-qosd-source': Type.Optional(Type.Union([Type.Literal('api'), Type.Literal('cli')], { errorMessage: 'must be "api" or "cli"' })),
});

export const VolumeOut = Type.Object({
  name: Type.String(),
  pool: Type.String(),
  sizeBytes: Type.Integer(),
  fsType: Type.String(),
  class: Type.String(),
  ephemeral: Type.Boolean(),
  state: Type.String(),
  device: Type.Union([Type.String(), Type.Null()]),
  deviceNumber: Type.Union([Type.String(), Type.Null()]),
  backing: Type.Union([Type.String(), Type.Null()]),
  qos: Type.Object({ min: FiguresOut, max: FiguresOut, latency: Type.Optional(LatencyOut) }),
  overrides: Type.Object({ min: FiguresOut, max: FiguresOut, latency: Type.Optional(LatencyOut) }),
  /** Whose it is: "ns:<namespace>", "csi", or null (nobody's yet). */
  owner: Type.Union([Type.String(), Type.Null()]),
  /** The limits written now: max, tightened by the work-conserving controller when it acts. */
  effective: Type.Object({ max: FiguresOut }),
  attachments: Type.Array(AttachmentOut),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

export const VolumeList = Type.Object({ volumes: Type.Array(VolumeOut) });

export const EventOut = Type.Object({
  id: Type.Integer(),
  time: Type.String(),
  volume: Type.Union([Type.String(), Type.Null()]),
  kind: Type.String(),
  source: Type.String(),
  detail: Type.Record(Type.String(), Type.Unknown()),
});
export const EventList = Type.Object({ events: Type.Array(EventOut) });

const DimensionSource = Type.Union([Type.Literal('config'), Type.Literal('calibration')]);
export const PoolOut = Type.Object({
  name: Type.String(),
  backend: Type.String(),
  path: Type.Union([Type.String(), Type.Null()]),
  headroom: Type.Number(),
  capacity: FiguresOut,
  capacitySource: Type.Object({
    readIops: Type.Optional(DimensionSource),
    writeIops: Type.Optional(DimensionSource),
    readBps: Type.Optional(DimensionSource),
    writeBps: Type.Optional(DimensionSource),
  }),
  calibration: Type.Union([
    Type.Object({
      method: Type.String(), startedAt: Type.String(), finishedAt: Type.Union([Type.String(), Type.Null()]), figures: FiguresOut,
      /** The mixed workloads run after the corners: rates, their modelled cost, predicted vs measured IOPS. */
      mixes: Type.Array(Type.Object({ name: Type.String(), rates: FiguresOut, cost: Type.Number(), predictedIops: Type.Integer(), measuredIops: Type.Integer(), errorPct: Type.Number() })),
    }),
    Type.Null(),
  ]),
  admissible: FiguresOut,
  guaranteed: FiguresOut,
  available: FiguresOut,
  /** The one budget, as fractions of the device: promised to guarantees, promisable (1 − headroom), left. */
  share: Type.Object({ promised: Type.Number(), promisable: Type.Number(), available: Type.Number() }),
  volumes: Type.Integer(),
  provisionedBytes: Type.Integer(),
  allocatedBytes: Type.Integer(),
  freeBytes: Type.Union([Type.Integer(), Type.Null()]),
  overcommit: Type.Union([Type.Number(), Type.Null()]),
});
export const PoolList = Type.Object({ pools: Type.Array(PoolOut) });
export const PoolNameParams = Type.Object({ name: SafeName }, closed);
export const CalibrateBody = Type.Object(
  {
    seconds: Type.Optional(Type.Number({ minimum: 0.2, maximum: 120 })),
    method: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('fio'), Type.Literal('probe')], { errorMessage: 'must be "auto", "fio" or "probe"' })),
    scratchSize: Type.Optional(Bytes),
  },
  closed,
);
export type CalibrateBody = Static<typeof CalibrateBody>;

export const PoolInitBody = Type.Object(
  {
    devices: Type.Optional(Type.Array(Type.String({ pattern: '^/dev/[A-Za-z0-9/_.-]+$' }), { minItems: 1, maxItems: 64 })),
    force: Type.Optional(Type.Boolean()),
  },
  closed,
);

export const DoctorOut = Type.Object({
  checks: Type.Array(
    Type.Object({
      name: Type.String(),
      status: Type.Union([Type.Literal('ok'), Type.Literal('warn'), Type.Literal('fail')]),
      detail: Type.String(),
      fix: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
});
export const AttachmentList = Type.Object({ attachments: Type.Array(AttachmentOut) });

export const StatusOut = Type.Object({
  version: Type.String(),
  pid: Type.Integer(),
  uid: Type.Integer(),
  uptimeSeconds: Type.Number(),
  socket: Type.String(),
  stateDir: Type.String(),
  config: Type.Union([Type.String(), Type.Null()]),
  cgroup: Type.Object({
    version: Type.Union([Type.String(), Type.Null()]),
    base: Type.Union([Type.String(), Type.Null()]),
    error: Type.Union([Type.String(), Type.Null()]),
  }),
  kubelet: Type.Object({ rootDir: Type.String(), cgroupRoot: Type.String(), cgroupDriver: Type.String() }),
  /** null: CSI is off. registration: the socket kubelet watches, or null when off; kubelet: its last answer. */
  csi: Type.Union([
    Type.Object({
      socket: Type.String(),
      nodeName: Type.String(),
      registration: Type.Union([Type.String(), Type.Null()]),
      kubelet: Type.Union([Type.Object({ registered: Type.Boolean(), error: Type.String(), at: Type.String() }), Type.Null()]),
      /** null: csi.kubeconfig off. Otherwise the watch on this node's VolumeRequests (central controller's calls). */
      volumeRequests: Type.Union([
        Type.Object({ source: Type.String(), watching: Type.Boolean(), error: Type.Union([Type.String(), Type.Null()]), carriedOut: Type.Integer() }),
        Type.Null(),
      ]),
    }),
    Type.Null(),
  ]),
  pools: Type.Array(
    Type.Object({ name: Type.String(), backend: Type.String(), volumes: Type.Integer(), capacity: FiguresOut }),
  ),
  volumes: Type.Integer(),
  attachments: Type.Integer(),
});

export const FlexBody = Type.Object(
  // Linux caps one argument at 128 KiB (MAX_ARG_STRLEN), so kubelet can pass nothing longer.
  { argv: Type.Array(Type.String({ maxLength: 131072 }), { minItems: 1, maxItems: 16 }) },
  closed,
);
export type FlexBody = Static<typeof FlexBody>;

export const FlexReplyOut = Type.Object({
  status: Type.Union([Type.Literal('Success'), Type.Literal('Failure'), Type.Literal('Not supported')]),
  message: Type.Optional(Type.String()),
  capabilities: Type.Optional(
    Type.Object({
      attach: Type.Boolean(),
      selinuxRelabel: Type.Boolean(),
      fsGroup: Type.Boolean(),
      supportsMetrics: Type.Boolean(),
      requiresFSResize: Type.Boolean(),
    }),
  ),
});

export const ErrorOut = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String() }),
});

/** The error replies every route can give. */
export const errorReplies = {
  400: ErrorOut,
  404: ErrorOut,
  409: ErrorOut,
  412: ErrorOut,
  500: ErrorOut,
  507: ErrorOut,
};

export const DeviceList = Type.Object({
  devices: Type.Array(
    Type.Object({
      name: Type.String(),
      device: Type.String(),
      deviceNumber: Type.String(),
      controller: Type.String(),
      model: Type.String(),
      serial: Type.String(),
      firmware: Type.String(),
      sizeBytes: Type.Integer(),
      logicalBlockSize: Type.Integer(),
      pool: Type.Union([Type.String(), Type.Null()]),
      volumeGroup: Type.Union([Type.String(), Type.Null()]),
      signature: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
});
