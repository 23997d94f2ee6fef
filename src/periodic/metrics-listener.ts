// The Prometheus listener (`metrics.listen`), served from the periodic jobs' worker thread: a
// large node's exposition is megabytes, and on the daemon's thread its bytes alone (taken in from
// the worker, written to the socket, collected) held API requests up at every scrape
// (bench/responsiveness.js). Here the per-volume families never leave the worker; the
// daemon's thread renders only its registry (a few kB), from the worker's reading.
//
// Anyone who can reach the port can call it (a local user, on 127.0.0.1), so it is bounded: a few
// connections at a time (more are closed as they come), a short time to send the request and to
// stay idle, and one scrape in flight whose result serves every request within a second of it.
import * as http from 'node:http';
import type { ScrapeFindings } from './protocol';

/** Connections served at once; Prometheus needs one, a few humans and tools a few more. */
export const MAX_CONNECTIONS = 32;
/** How long a scrape's result answers the requests that come after it. */
const CACHE_MS = 1000;
/** A request's headers must come within this; an idle connection is closed after it. */
const HEADERS_TIMEOUT_MS = 5000;

export interface MetricsListenerOptions {
  host: string;
  port: number;
  contentType: string;
  /** The reading and the per-volume families (the worker's scrape job). */
  scrape: () => Promise<ScrapeFindings>;
  /** The registry's part, from the daemon's thread. */
  head: (reading: Omit<ScrapeFindings, 'text'>) => Promise<string>;
  /**
   * metrics.perVolume: whether the per-volume families (volume names, pod UIDs) are served here;
   * false leaves the daemon's and the pools' (the unix socket's /metrics always has everything).
   */
  perVolume?: boolean;
}

export function serveMetrics(o: MetricsListenerOptions): Promise<http.Server> {
  type Exposition = { head: string; text: ScrapeFindings['text'] | string; at: number };
  let inFlight: Promise<Exposition> | undefined;
  let last: Exposition | undefined;
  const exposition = (): Promise<Exposition> => {
    if (last && Date.now() - last.at < CACHE_MS) return Promise.resolve(last);
    inFlight ??= o
      .scrape()
      .then(async ({ text, ...reading }): Promise<Exposition> => ({ head: await o.head(reading), text: o.perVolume === false ? '' : text, at: Date.now() }))
      .then((r) => (last = r))
      .finally(() => (inFlight = undefined));
    return inFlight;
  };
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'NotFound', message: 'only GET /metrics is served here' } }));
      return;
    }
    exposition()
      .then(({ head, text }) => {
        res.writeHead(200, { 'content-type': o.contentType });
        res.write(head);
        res.end(text);
      })
      .catch((err: Error) => res.writeHead(500).end(err.message));
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = HEADERS_TIMEOUT_MS;
  // A connection that sends nothing (or stops) is closed, however it got here.
  server.setTimeout(HEADERS_TIMEOUT_MS, (socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', reject).listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
