// A stand-in API server for the unit's IP test (1-install.vm.ts): it answers qosd's list of
// VolumeRequests with an empty list and holds its watch open, and writes each request it gets to a
// file, so the test can tell whether qosd reached it at all.
import * as fs from 'node:fs';
import * as http from 'node:http';

const [host, port, seen] = process.argv.slice(2);
http
  .createServer((req, res) => {
    fs.appendFileSync(seen, `${req.method} ${req.url}\n`);
    res.writeHead(200, { 'content-type': 'application/json' });
    if (req.url.includes('watch=1')) return; // held open: a watch with nothing to report
    res.end(JSON.stringify({ apiVersion: 'qosd.io/v1alpha1', kind: 'VolumeRequestList', items: [], metadata: { resourceVersion: '1' } }));
  })
  .listen(Number(port), host);
