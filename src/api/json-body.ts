// The JSON body parser: fastify's own (prototype-poisoning safe), behind a nesting-depth limit.
// A deeply nested body (thousands of "[") can exhaust the parser's stack; no qosd body needs more
// than a few levels, so anything past MAX_DEPTH is a 400 before it is parsed.
import type { FastifyInstance } from 'fastify';

export const MAX_DEPTH = 32;

/** The deepest nesting of objects/arrays in JSON text, counting outside strings only. */
export function jsonDepth(text: string, stopAt = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
      continue;
    }
    if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > max && (max = depth) > stopAt) return max;
    } else if (c === 125 || c === 93) depth--;
  }
  return max;
}

export function installJsonParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (jsonDepth(body as string, MAX_DEPTH) > MAX_DEPTH) {
      done(Object.assign(new Error(`body: nested deeper than ${MAX_DEPTH} levels`), { statusCode: 400 }), undefined);
      return;
    }
    parse(req, body as string, done);
  });
}
