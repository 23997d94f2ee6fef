// One error shape for every failure the API returns: {"error":{"code","message"}}. Validation
// messages name the field as a path ("body.qos.max.readIops: must be integer").
import type { FastifyError, FastifyInstance } from 'fastify';
import type { FastifySchemaValidationError } from 'fastify/types/schema';
import { QosdError } from '../model/errors';

function fieldPath(dataVar: string, instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  let out = dataVar;
  for (const p of parts) out += /^[0-9]+$/.test(p) ? `[${p}]` : `.${p}`;
  return out;
}

/** Formats ajv errors as "where: what" (first error only: allErrors is off, as fastify advises). */
export function formatValidation(errors: FastifySchemaValidationError[], dataVar: string): Error {
  // For a union, ajv lists each branch's complaint before the anyOf itself: report the anyOf.
  const e = errors.find((x) => x.keyword === 'anyOf') ?? errors[0]!;
  const custom = (e as { parentSchema?: { errorMessage?: string } }).parentSchema?.errorMessage;
  const params = e.params as Record<string, unknown>;
  let msg: string;
  if (e.keyword === 'additionalProperties') msg = `${fieldPath(dataVar, e.instancePath, String(params.additionalProperty))}: unknown field`;
  else if (e.keyword === 'required') msg = `${fieldPath(dataVar, e.instancePath, String(params.missingProperty))}: is required`;
  else if (e.keyword === 'minProperties') msg = `${fieldPath(dataVar, e.instancePath)}: must set at least one field`;
  else if (custom) msg = `${fieldPath(dataVar, e.instancePath)}: ${custom}`;
  else msg = `${fieldPath(dataVar, e.instancePath)}: ${e.message ?? 'is invalid'}`;
  return new Error(msg);
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | QosdError, req, reply) => {
    if (err instanceof QosdError) {
      if (err.code === 'Internal') req.log.error({ err }, 'request failed');
      return reply.status(err.status).send({ error: { code: err.code, message: err.message } });
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      // Schema validation, malformed JSON, empty or oversized bodies, wrong content type.
      return reply.status(status === 413 || status === 415 ? status : 400).send({ error: { code: 'InvalidArgument', message: err.message } });
    }
    req.log.error({ err }, 'request failed');
    return reply.status(500).send({ error: { code: 'Internal', message: err.message } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: 'NotFound', message: `no route ${req.method} ${req.url}` } }),
  );
}
