// The Prometheus listener (`metrics.listen`), served from the periodic jobs' worker thread: at
// 10,000 volumes an exposition is ~10 MB, and on the daemon's thread its bytes alone (taken in
// from the worker, written to the socket, collected) held API requests up for 10-20 ms at every
// scrape (bench/responsiveness.js). Here the per-volume families never leave the worker; the
// daemon's thread renders only its registry (a few kB), from the worker's reading.
import * as http from 'node:http';
import type { ScrapeFindings } from './protocol';

export interface MetricsListenerOptions {
  host: string;
  port: number;
  contentType: string;
  /** The reading and the per-volume families (the worker's scrape job). */
  scrape: () => Promise<ScrapeFindings>;
  /** The registry's part, from the daemon's thread. */
  head: (reading: Omit<ScrapeFindings, 'text'>) => Promise<string>;
}

export function serveMetrics(o: MetricsListenerOptions): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'NotFound', message: 'only GET /metrics is served here' } }));
      return;
    }
    o.scrape()
      .then(async ({ text, ...reading }) => {
        const head = await o.head(reading);
        res.writeHead(200, { 'content-type': o.contentType });
        res.write(head);
        res.end(text);
      })
      .catch((err: Error) => res.writeHead(500).end(err.message));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject).listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
