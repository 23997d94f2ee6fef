// The API server: fastify on a unix socket, schemas on every route, one error shape. Validation is
// strict: unknown fields are rejected (not stripped) and types are not coerced.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { clearStaleSocket } from '../util/unix-socket';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import type { Services } from './services';
import { formatValidation, installErrorHandlers } from './errors';
import { installJsonParser } from './json-body';
import { volumeRoutes } from './routes/volumes';
import { attachmentRoutes } from './routes/attachments';
import { flexRoutes } from './routes/flex';
import { statusRoutes } from './routes/status';
import { poolRoutes } from './routes/pools';
import { doctorRoutes } from './routes/doctor';

export function buildApi(s: Services, log: Logger): FastifyInstance {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // Per-request lines would drown the log at kubelet's call rates; failures are logged by handlers.
    logController: new LogController({ disableRequestLogging: true }),
    // The largest body is a flex mount's argv (kubelet's options with secrets, under the
    // kernel's 128 KiB per-argument limit); 1 MiB leaves room and refuses floods.
    bodyLimit: 1024 * 1024,
    ajv: {
      // verbose: errors carry their schema, so a union's errorMessage can be reported.
      customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false, allowUnionTypes: true, verbose: true },
      plugins: [(ajv) => ajv.addKeyword({ keyword: 'errorMessage', schemaType: 'string' })],
    },
    schemaErrorFormatter: formatValidation,
    // Errors fastify raises before a route runs (an over-long path parameter, a bad URL) get the
    // same error shape as everything else.
    frameworkErrors: (err: FastifyError, _req: FastifyRequest, reply: FastifyReply) => {
      void reply.status(400).send({ error: { code: 'InvalidArgument', message: err.message } });
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  installErrorHandlers(app);
  installJsonParser(app);
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    s.metrics.apiDuration.observe({ method: req.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    // Reads are too frequent to log; every change request gets one line with its id and time.
    if (req.method !== 'GET') {
      req.log.info({ method: req.method, route, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request');
    }
    done();
  });
  app.register(statusRoutes(s));
  app.register(volumeRoutes(s));
  app.register(attachmentRoutes(s));
  app.register(flexRoutes(s));
  app.register(poolRoutes(s));
  app.register(doctorRoutes(s));
  return app;
}

/** The listening socket systemd passed (socket activation), if it passed one to this process. */
export function inheritedSocketFd(env: NodeJS.ProcessEnv = process.env): number | undefined {
  if (env.LISTEN_PID !== String(process.pid)) return undefined;
  return Number(env.LISTEN_FDS ?? 0) >= 1 ? 3 : undefined; // SD_LISTEN_FDS_START
}

/**
 * Serves on the socket systemd holds (fd 3, LISTEN_FDS), so callers queue there while qosd
 * restarts; otherwise binds the path itself with mode 0660 from the first instant (umask, not a
 * later chmod). fastify's listen({fd}) crashes on a unix socket (measured with fastify 5), so an
 * inherited socket goes to the underlying server after app.ready().
 */
export async function listenOnSocket(app: FastifyInstance, socket: string): Promise<'inherited' | 'bound'> {
  const fd = inheritedSocketFd();
  if (fd !== undefined) {
    // Children (mkfs, lvm, …) must not think the socket is theirs.
    delete process.env.LISTEN_PID;
    delete process.env.LISTEN_FDS;
    delete process.env.LISTEN_FDNAMES;
    await app.ready();
    await new Promise<void>((resolve, reject) => {
      app.server.once('error', reject);
      app.server.listen({ fd }, () => {
        app.server.off('error', reject);
        resolve();
      });
    });
    return 'inherited';
  }
  fs.mkdirSync(path.dirname(socket), { recursive: true, mode: 0o755 });
  await clearStaleSocket(socket);
  const old = process.umask(0o117);
  try {
    await app.listen({ path: socket });
  } finally {
    process.umask(old);
  }
  return 'bound';
}
