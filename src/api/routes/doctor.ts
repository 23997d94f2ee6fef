// GET /v1/doctor: the daemon's own checks of the node (qosctl doctor adds the client's).
// GET /v1/devices: the node's NVMe namespaces and what uses them.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DeviceList, DoctorOut, NoQuery, errorReplies } from '../schemas';
import type { Services } from '../services';

export const doctorRoutes = (s: Services): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/v1/devices', { schema: { querystring: NoQuery, response: { 200: DeviceList, ...errorReplies } } }, async () => ({
    devices: await s.devices(),
  }));

  app.get('/v1/doctor', { schema: { querystring: NoQuery, response: { 200: DoctorOut, ...errorReplies } } }, async () => ({ checks: await s.doctor() }));
};
