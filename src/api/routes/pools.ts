// /v1/pools: capacity, guarantees, space; POST /v1/pools/:name/calibrate measures a pool and
// streams its progress as NDJSON (one JSON object per line, the last one "done" or "error").
import { PassThrough } from 'node:stream';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CalibrateBody, NoQuery, PoolInitBody, PoolList, PoolNameParams, PoolOut, SourceHeaders, errorReplies } from '../schemas';
import type { Services } from '../services';
import { quantity } from '../../util/quantity';
import { asQosdError } from '../../model/errors';

export const poolRoutes = (s: Services): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/v1/pools', { schema: { querystring: NoQuery, response: { 200: PoolList, ...errorReplies } } }, async () => ({ pools: await s.pools.listWithSpace() }));

  app.get('/v1/pools/:name', { schema: { querystring: NoQuery, params: PoolNameParams, response: { 200: PoolOut, ...errorReplies } } }, async (req) =>
    s.pools.get(req.params.name),
  );

  app.post(
    '/v1/pools/:name/init',
    { schema: { querystring: NoQuery, headers: SourceHeaders, params: PoolNameParams, body: PoolInitBody, response: { 200: PoolOut, ...errorReplies } } },
    async (req) => s.pools.initialize(req.params.name, req.body.devices, req.body.force ?? false, req.headers['x-qosd-source'] ?? 'api'),
  );

  app.post(
    '/v1/pools/:name/calibrate',
    { schema: { querystring: NoQuery, headers: SourceHeaders, params: PoolNameParams, body: CalibrateBody, response: { 200: Type.Unknown(), ...errorReplies } } },
    async (req, reply) => {
      s.pools.poolConfig(req.params.name); // 404 as a plain error, before the stream starts
      const opts = {
        seconds: req.body.seconds ?? 3,
        method: req.body.method ?? 'auto',
        scratchBytes: req.body.scratchSize !== undefined ? quantity(req.body.scratchSize, 'body.scratchSize') : 1024 ** 3,
      };
      const out = new PassThrough();
      const line = (o: unknown) => out.write(`${JSON.stringify(o)}\n`);
      s.calibrator
        .calibrate(req.params.name, opts, req.headers['x-qosd-source'] ?? 'api', line)
        .catch((err: unknown) => {
          const e = asQosdError(err);
          line({ event: 'error', error: { code: e.code, message: e.message } });
        })
        .finally(() => out.end());
      return reply.type('application/x-ndjson').send(out);
    },
  );
};
