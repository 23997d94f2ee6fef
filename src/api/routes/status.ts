// GET /v1/status (what the daemon runs on) and GET /metrics (Prometheus text).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { NoQuery, StatusOut, errorReplies } from '../schemas';
import type { Services } from '../services';

export const statusRoutes = (s: Services): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/v1/status', { schema: { querystring: NoQuery, response: { 200: StatusOut, ...errorReplies } } }, async () => s.status());

  app.get('/metrics', async (_req, reply) => {
    const text = await s.scrapeMetrics();
    return reply.type(s.metrics.contentType).send(text);
  });
};
