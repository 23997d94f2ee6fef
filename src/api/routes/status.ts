// GET /v1/status (what the daemon runs on) and GET /metrics (Prometheus text).
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { NoQuery, StatusOut, errorReplies } from '../schemas';
import { backupStore } from '../../store/backup';
import type { Services } from '../services';

export const statusRoutes = (s: Services): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/v1/status', { schema: { querystring: NoQuery, response: { 200: StatusOut, ...errorReplies } } }, async () => s.status());

  // An online copy of the state database, written by the daemon to a file of the node's.
  app.post(
    '/v1/backup',
    {
      schema: {
        querystring: NoQuery,
        body: Type.Object({ file: Type.String({ minLength: 1, maxLength: 4096, pattern: '^/[^\\u0000]*$', errorMessage: 'must be an absolute path' }) }, { additionalProperties: false }),
        response: { 200: Type.Object({ file: Type.String(), bytes: Type.Integer() }), ...errorReplies },
      },
    },
    async (req) => ({ file: req.body.file, bytes: await backupStore(s.store, req.body.file) }),
  );

  app.get('/metrics', async (_req, reply) => {
    // Streamed piece by piece: at 10,000 volumes the text is ~10 MB.
    const pieces = await s.scrapeMetrics();
    return reply.type(s.metrics.contentType).send(Readable.from(pieces, { objectMode: false }));
  });
};
