// /v1/volumes: list, create, show, change (size, class, QoS figures), delete, and the history.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import {
  AttainmentList, CreateVolumeBody, EventList, NoQuery, PatchVolumeBody, SourceHeaders, VolumeList, VolumeNameParams, VolumeOut, errorReplies,
} from '../schemas';
import { volumeView } from '../views';
import { namespaceOwner } from '../../model/owner';
import { quantity } from '../../util/quantity';
import type { Services } from '../services';
import type { Direction, Figures, LatencyTargets } from '../../model/qos';
import { parseDuration } from '../../util/duration';
import type { QosChange, VolumeRequest } from '../../service/volumes';
import { invalid, notFound } from '../../model/errors';

type FiguresBody = Partial<Record<keyof Figures, number | string | null>>;

/** Body figures (numbers or quantity strings, null in a PATCH) as numbers. */
function toFigures(f: FiguresBody | undefined, field: string): QosChange['max'] {
  if (!f) return undefined;
  const out: NonNullable<QosChange['max']> = {};
  for (const [k, v] of Object.entries(f)) {
    out[k as keyof Figures] = v === null || v === undefined ? null : quantity(v, `${field}.${k}`);
  }
  return out;
}

/** Body latency targets (durations, null in a PATCH) as seconds; a bad one is a 400 naming the field. */
function toLatency(l: Partial<Record<Direction, string | null>> | undefined, field: string): QosChange['latency'] {
  if (!l) return undefined;
  const out: NonNullable<QosChange['latency']> = {};
  for (const [dir, text] of Object.entries(l) as [Direction, string | null | undefined][]) {
    if (text === null || text === undefined) {
      out[dir] = null;
      continue;
    }
    const s = parseDuration(text);
    if (typeof s !== 'number') throw invalid(`${field}.${dir}: ${s.error}`);
    out[dir] = s;
  }
  return out;
}

/** A create request as the volume service takes it, its quantities parsed. */
function createRequest(b: Static<typeof CreateVolumeBody>): VolumeRequest {
  return {
    name: b.name,
    ...(b.pool !== undefined && { pool: b.pool }),
    ...(b.size !== undefined && { size: quantity(b.size, 'body.size') }),
    ...(b.fsType !== undefined && { fsType: b.fsType }),
    ...(b.class !== undefined && { class: b.class }),
    ...(b.ephemeral !== undefined && { ephemeral: b.ephemeral }),
    ...(b.namespace !== undefined && { owner: namespaceOwner(b.namespace) }),
    ...(b.qos !== undefined && {
      qos: {
        min: toFigures(b.qos.min, 'body.qos.min') as Figures,
        max: toFigures(b.qos.max, 'body.qos.max') as Figures,
        ...(b.qos.latency && { latency: toLatency(b.qos.latency, 'body.qos.latency') as LatencyTargets }),
      },
    }),
  };
}

/** The class and figures a PATCH names: only those change. */
function qosChangeOf(b: Static<typeof PatchVolumeBody>): QosChange {
  const change: QosChange = {};
  if (b.class !== undefined) change.class = b.class;
  const min = toFigures(b.qos?.min, 'body.qos.min');
  const max = toFigures(b.qos?.max, 'body.qos.max');
  if (min) change.min = min;
  if (max) change.max = max;
  const latency = toLatency(b.qos?.latency, 'body.qos.latency');
  if (latency) change.latency = latency;
  return change;
}

const sourceOf = (headers: { 'x-qosd-source'?: 'api' | 'cli' }) => headers['x-qosd-source'] ?? 'api';

export const volumeRoutes = (s: Services): FastifyPluginAsyncTypebox => async (app) => {
  const view = (name: string) => {
    const v = s.volumes.get(name);
    return volumeView(v, s.store.attachments.list(name), s.limitsFor(v));
  };

  app.get('/v1/volumes', { schema: { querystring: NoQuery, response: { 200: VolumeList, ...errorReplies } } }, async () => {
    const all = s.store.attachments.list();
    return { volumes: s.volumes.list().map((v) => volumeView(v, all.filter((a) => a.volume === v.name), s.limitsFor(v))) };
  });

  app.post(
    '/v1/volumes',
    { schema: { querystring: NoQuery, headers: SourceHeaders, body: CreateVolumeBody, response: { 201: VolumeOut, ...errorReplies } } },
    async (req, reply) => {
      const v = await s.volumes.create(createRequest(req.body), sourceOf(req.headers));
      return reply.status(201).send(volumeView(v, [], s.limitsFor(v)));
    },
  );

  app.get('/v1/volumes/:name', { schema: { querystring: NoQuery, params: VolumeNameParams, response: { 200: VolumeOut, ...errorReplies } } }, async (req) =>
    view(req.params.name),
  );

  app.patch(
    '/v1/volumes/:name',
    { schema: { querystring: NoQuery, headers: SourceHeaders, params: VolumeNameParams, body: PatchVolumeBody, response: { 200: VolumeOut, ...errorReplies } } },
    async (req) => {
      const { name } = req.params;
      const source = sourceOf(req.headers);
      s.volumes.get(name); // 404 before any change
      const b = req.body;
      // QoS first: a refused admission must not leave a half-applied request behind a done grow.
      if (b.qos !== undefined || b.class !== undefined) await s.volumes.changeQos(name, qosChangeOf(b), source);
      if (b.size !== undefined) await s.volumes.resize(name, quantity(b.size, 'body.size'), source);
      if (b.namespace !== undefined) await s.volumes.giveTo(name, b.namespace, source);
      return view(name);
    },
  );

  app.delete(
    '/v1/volumes/:name',
    { schema: { querystring: NoQuery, headers: SourceHeaders, params: VolumeNameParams, response: { 204: Type.Null(), ...errorReplies } } },
    async (req, reply) => {
      await s.volumes.delete(req.params.name, sourceOf(req.headers));
      return reply.status(204).send(null);
    },
  );

  app.get(
    '/v1/volumes/:name/attainment',
    { schema: { querystring: NoQuery, params: VolumeNameParams, response: { 200: AttainmentList, ...errorReplies } } },
    async (req) => {
      s.volumes.get(req.params.name); // 404 for a volume that is not there
      // a latency measured at 0 ms delivers its target without bound: JSON has no Infinity
      const finite = (x: number) => (Number.isFinite(x) ? x : null);
      return { attainment: (await s.attainment(req.params.name)).map((a) => ({ ...a, worst: finite(a.worst), delivered: finite(a.delivered) })) };
    },
  );

  app.get(
    '/v1/volumes/:name/events',
    { schema: { querystring: NoQuery, params: VolumeNameParams, response: { 200: EventList, ...errorReplies } } },
    async (req) => {
      // The history outlives the volume: a deleted volume's events are still shown.
      const events = s.store.events.list(req.params.name);
      if (events.length === 0 && !s.store.volumes.get(req.params.name)) throw notFound(`volume ${req.params.name} not found`);
      return { events };
    },
  );
};
