// GET /v1/doctor: the daemon's own checks of the node (qosctl doctor adds the client's).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DoctorOut, NoQuery, errorReplies } from '../schemas';
import type { Services } from '../server';

export const doctorRoutes = (s: Services): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/v1/doctor', { schema: { querystring: NoQuery, response: { 200: DoctorOut, ...errorReplies } } }, async () => ({ checks: s.doctor() }));
};
