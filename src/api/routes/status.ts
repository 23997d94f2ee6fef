// GET /v1/status (what the daemon runs on) and GET /metrics (Prometheus text).
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { NoQuery, StatusOut, errorReplies } from '../schemas';
import type { Services } from '../services';

export const statusRoutes = (s: Services): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/v1/status', { schema: { querystring: NoQuery, response: { 200: StatusOut, ...errorReplies } } }, async () => s.status());

  app.get('/metrics', async (_req, reply) => {
    // Streamed piece by piece: at 10,000 volumes the text is ~10 MB.
    const pieces = await s.scrapeMetrics();
    return reply.type(s.metrics.contentType).send(Readable.from(pieces, { objectMode: false }));
  });
};
