// /v1/attachments: which volume is mounted where, for which pod, and which cgroups carry its rules.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { NoQuery, AttachmentList, errorReplies } from '../schemas';
import type { Services } from '../services';

export const attachmentRoutes = (s: Services): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/v1/attachments', { schema: { querystring: NoQuery, response: { 200: AttachmentList, ...errorReplies } } }, async () => ({
    attachments: s.attachments.list(),
  }));
};
