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

export function request<T = unknown>(socket: string, method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<ApiResponse<T>> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: socket,
        path,
        method,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
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
