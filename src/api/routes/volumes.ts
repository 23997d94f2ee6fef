// /v1/volumes: list, create, show, change (size, QoS), delete.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { NoQuery, CreateVolumeBody, PatchVolumeBody, VolumeList, VolumeNameParams, VolumeOut, errorReplies } from '../schemas';
import { volumeView } from '../views';
import { quantity } from '../../util/quantity';
import type { Services } from '../server';
import type { Figures } from '../../service/qos-spec';
import type { QosPatch } from '../../service/volumes';

type FiguresBody = Partial<Record<keyof Figures, number | string | null>>;

function toFigures(f: FiguresBody | undefined, field: string): QosPatch['max'] {
  if (!f) return undefined;
  const out: NonNullable<QosPatch['max']> = {};
  for (const [k, v] of Object.entries(f)) {
    out[k as keyof Figures] = v === null || v === undefined ? null : quantity(v, `${field}.${k}`);
  }
  return out;
}

export const volumeRoutes = (s: Services): FastifyPluginAsyncTypebox => async (app) => {
  const view = (name: string) => volumeView(s.volumes.get(name), s.store.attachments.list(name));

  app.get('/v1/volumes', { schema: { querystring: NoQuery, response: { 200: VolumeList, ...errorReplies } } }, async () => {
    const all = s.store.attachments.list();
    return { volumes: s.volumes.list().map((v) => volumeView(v, all.filter((a) => a.volume === v.name))) };
  });

  app.post('/v1/volumes', { schema: { querystring: NoQuery, body: CreateVolumeBody, response: { 201: VolumeOut, ...errorReplies } } }, async (req, reply) => {
    const b = req.body;
    const v = await s.volumes.create(
      {
        name: b.name,
        ...(b.pool !== undefined && { pool: b.pool }),
        ...(b.size !== undefined && { size: quantity(b.size, 'body.size') }),
        ...(b.fsType !== undefined && { fsType: b.fsType }),
        ...(b.class !== undefined && { class: b.class }),
        ...(b.ephemeral !== undefined && { ephemeral: b.ephemeral }),
        ...(b.qos !== undefined && {
          qos: {
            min: toFigures(b.qos.min, 'body.qos.min') as Figures,
            max: toFigures(b.qos.max, 'body.qos.max') as Figures,
          },
        }),
      },
      'api',
    );
    return reply.status(201).send(volumeView(v, []));
  });

  app.get('/v1/volumes/:name', { schema: { querystring: NoQuery, params: VolumeNameParams, response: { 200: VolumeOut, ...errorReplies } } }, async (req) =>
    view(req.params.name),
  );

  app.patch(
    '/v1/volumes/:name',
    { schema: { querystring: NoQuery, params: VolumeNameParams, body: PatchVolumeBody, response: { 200: VolumeOut, ...errorReplies } } },
    async (req) => {
      const { name } = req.params;
      s.volumes.get(name); // 404 before any change
      if (req.body.size !== undefined) await s.volumes.resize(name, quantity(req.body.size, 'body.size'), 'api');
      if (req.body.qos !== undefined) {
        const patch: QosPatch = {};
        const min = toFigures(req.body.qos.min, 'body.qos.min');
        const max = toFigures(req.body.qos.max, 'body.qos.max');
        if (min) patch.min = min;
        if (max) patch.max = max;
        await s.volumes.setQos(name, patch, 'api');
      }
      return view(name);
    },
  );

  app.delete('/v1/volumes/:name', { schema: { querystring: NoQuery, params: VolumeNameParams, response: { 204: Type.Null(), ...errorReplies } } }, async (req, reply) => {
    await s.volumes.delete(req.params.name, 'api');
    return reply.status(204).send(null);
  });
};
