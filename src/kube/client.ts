// A small Kubernetes API client: JSON requests and watches over HTTPS, with the connection's
// credentials. qosd needs a handful of calls on one resource (VolumeRequest) and one list of
// PersistentVolumes, so it speaks the REST API directly rather than carry a client library.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { KubeConnection } from './connection';

/** An answer other than 2xx: the HTTP status and the API server's Status reason and message. */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export interface Watch {
  /** Settles when the server ends the watch (it does, every few minutes) or the connection fails. */
  done: Promise<void>;
  stop(): void;
}

export const MERGE_PATCH = 'application/merge-patch+json';

/** How long one watch lasts before the server ends it (and the caller watches again). */
export const WATCH_SECONDS = 300;

export class KubeClient {
  private readonly agent: http.Agent;

  constructor(
    readonly connection: KubeConnection,
    private readonly timeoutMs = 10_000,
  ) {
    const tls = connection.server.protocol === 'https:';
    this.agent = tls
      ? new https.Agent({ keepAlive: true, ca: connection.ca, cert: connection.cert, key: connection.key, rejectUnauthorized: !connection.insecureSkipTlsVerify })
      : new http.Agent({ keepAlive: true });
  }

  async get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const res = await this.send(method, path, body, contentType, this.timeoutMs);
    const text = await readAll(res);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw apiError(status, text, `${method} ${path}`);
    return (text ? JSON.parse(text) : {}) as T;
  }

  /** A watch on a collection path (`?watch=1` is added); events as they come, one JSON per line. */
  watch<T>(path: string, onEvent: (e: WatchEvent<T>) => void): Watch {
    let req: http.ClientRequest | undefined;
    let stopped = false;
    const done = (async () => {
      const sep = path.includes('?') ? '&' : '?';
      // The server ends the watch after WATCH_SECONDS (the caller lists and watches again); a
      // connection silent for longer than that and a margin is taken for dead and closed here.
      const res = await this.send('GET', `${path}${sep}watch=1&allowWatchBookmarks=true&timeoutSeconds=${WATCH_SECONDS}`, undefined, 'application/json', 0, (r) => {
        req = r;
        r.setTimeout((WATCH_SECONDS + 60) * 1000, () => r.destroy(new Error(`watch ${path}: nothing from the API server for ${WATCH_SECONDS + 60} s`)));
      });
      if ((res.statusCode ?? 0) !== 200) throw apiError(res.statusCode ?? 0, await readAll(res), `watch ${path}`);
      let rest = '';
      res.setEncoding('utf8');
      for await (const chunk of res as AsyncIterable<string>) {
        rest += chunk;
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          const line = rest.slice(0, nl).trim();
          rest = rest.slice(nl + 1);
          if (line) onEvent(JSON.parse(line) as WatchEvent<T>);
        }
      }
    })().catch((err: unknown) => {
      if (!stopped) throw err;
    });
    return {
      done,
      stop() {
        stopped = true;
        req?.destroy();
      },
    };
  }

  close(): void {
    this.agent.destroy();
  }

  private async send(method: string, path: string, body: unknown, contentType: string, timeoutMs: number, onRequest?: (r: http.ClientRequest) => void): Promise<http.IncomingMessage> {
    const c = this.connection;
    const headers: Record<string, string> = { Accept: 'application/json' };
    const token = c.tokenSource ? await c.tokenSource() : c.tokenFile ? fs.readFileSync(c.tokenFile, 'utf8').trim() : c.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = String(payload.length);
    }
    const url = new URL(path, c.server);
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers, agent: this.agent }, resolve);
      onRequest?.(req);
      req.on('error', reject);
      if (timeoutMs > 0) req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url.pathname}: no answer from ${c.server.host} within ${timeoutMs} ms`)));
      req.end(payload);
    });
  }
}

async function readAll(res: http.IncomingMessage): Promise<string> {
  let text = '';
  res.setEncoding('utf8');
  for await (const chunk of res as AsyncIterable<string>) text += chunk;
  return text;
}

function apiError(status: number, text: string, what: string): KubeApiError {
  let reason = '';
  let message = text.slice(0, 500);
  try {
    const s = JSON.parse(text) as { reason?: string; message?: string };
    reason = s.reason ?? '';
    message = s.message ?? message;
  } catch {
    // not a Status object: the text is the message
  }
  return new KubeApiError(status, reason, `${what}: ${status} ${reason} ${message}`.replace(/\s+/g, ' ').trim());
}
