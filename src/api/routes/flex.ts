// POST /v1/flex: the flex driver forwards kubelet's argv here and prints the reply it gets back.
// A flex Failure is still HTTP 200: the reply body is the answer for kubelet, not an API error.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { NoQuery, FlexBody, FlexReplyOut, errorReplies } from '../schemas';
import type { Services } from '../services';

export const flexRoutes = (s: Services): FastifyPluginAsyncTypebox => async (app) => {
  app.post('/v1/flex', { schema: { querystring: NoQuery, body: FlexBody, response: { 200: FlexReplyOut, ...errorReplies } } }, async (req) => {
    const command = req.body.argv[0]!;
    const started = process.hrtime.bigint();
    const reply = await s.flex.handle(req.body.argv);
    const label = ['init', 'mount', 'unmount'].includes(command) ? command : 'other';
    s.metrics.flexCalls.inc({ command: label, status: reply.status });
    s.metrics.flexDuration.observe({ command: label }, Number(process.hrtime.bigint() - started) / 1e9);
    if (reply.status === 'Failure') req.log.warn({ argv: req.body.argv.slice(0, 2), message: reply.message }, 'flex call failed');
    return reply;
  });
};
