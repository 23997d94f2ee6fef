// A small HTTP-over-unix-socket JSON client for qosctl (and tests).
import * as http from 'node:http';

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** qosctl identifies itself so the event log records "cli" as the source of its changes. */
const CLIENT_HEADERS: Record<string, string> = {};
export function identifyAs(source: 'cli'): void {
  CLIENT_HEADERS['x-qosd-source'] = source;
}

export function request<T = unknown>(socket: string, method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<ApiResponse<T>> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string | number> = { ...CLIENT_HEADERS };
  if (payload !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: socket,
        path,
        method,
        headers,
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          if ((res.headers['content-type'] ?? '').includes('json') && text) {
            try {
              parsed = JSON.parse(text);
            } catch {
              /* keep the text */
            }
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from qosd within ${timeoutMs / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new ApiError(0, 'Unavailable', `qosd is not running at ${socket} (${err.code}); start it, or pass --socket`));
      } else if (err.code === 'EACCES') {
        reject(new ApiError(0, 'Unavailable', `no permission to use ${socket}; run as root or as a member of its group`));
      } else reject(new ApiError(0, 'Unavailable', `talking to qosd at ${socket}: ${err.message}`));
    });
    req.end(payload);
  });
}

/** request() that turns an error reply into ApiError. */
export async function call<T = unknown>(socket: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await request<T | { error?: { code: string; message: string } }>(socket, method, path, body);
  if (res.status >= 400) {
    const e = (res.body as { error?: { code: string; message: string } }).error;
    throw new ApiError(res.status, e?.code ?? 'Error', e?.message ?? `HTTP ${res.status}`);
  }
  return res.body as T;
}

/**
 * POSTs and hands each line of an NDJSON reply to onLine as it arrives (calibration progress).
 * An error reply (4xx/5xx with the error shape) becomes ApiError before any line.
 */
export function streamLines(socket: string, path: string, body: unknown, onLine: (obj: Record<string, unknown>) => void): Promise<void> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: socket, path, method: 'POST', headers: { ...CLIENT_HEADERS, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        let buf = '';
        res.setEncoding('utf8');
        if ((res.statusCode ?? 500) >= 400) {
          res.on('data', (c: string) => (buf += c));
          res.on('end', () => {
            let e: { code?: string; message?: string } = {};
            try {
              e = (JSON.parse(buf) as { error: typeof e }).error;
            } catch {
              /* not the error shape */
            }
            reject(new ApiError(res.statusCode ?? 0, e.code ?? 'Error', e.message ?? buf));
          });
          return;
        }
        res.on('data', (c: string) => {
          buf += c;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line) onLine(JSON.parse(line) as Record<string, unknown>);
          }
        });
        res.on('end', () => resolve());
        res.on('error', reject);
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(new ApiError(0, 'Unavailable', err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? `qosd is not running at ${socket} (${err.code}); start it, or pass --socket` : `talking to qosd at ${socket}: ${err.message}`)),
    );
    req.end(payload);
  });
}
