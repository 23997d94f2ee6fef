// The scheduler extender's HTTP face: kube-scheduler POSTs ExtenderArgs (the pod, and the
// candidate nodes or their names) to /filter and /prioritize and reads back which nodes can take
// the pod's qosd claims (with the reason for each that cannot) and each node's headroom score. It
// answers nothing else, reads at most MAX_BODY bytes, and writes nothing to the cluster: its one
// caller is the scheduler beside it (it listens on loopback unless told otherwise).
import * as http from 'node:http';
import type { Logger } from 'pino';
import { nodeFit, scoreOf, type NodeFit, type NodeLabels, type PendingClaim, type PublishedCapacity } from './headroom';
import type { PodLike } from './cluster';

/** What the extender reads from the cluster (cluster.ts over the API server; a stand-in in unit tests). */
export interface ClusterReader {
  pendingClaims(pod: PodLike): Promise<PendingClaim[]>;
  publishedCapacities(): Promise<PublishedCapacity[]>;
  nodeLabels(names: readonly string[]): Promise<NodeLabels[]>;
}

interface NodeObject {
  metadata: { name: string; labels?: Record<string, string> };
}
/**
 * What kube-scheduler posts: its Go type (k8s.io/kube-scheduler/extender/v1) has no JSON tags, so
 * the keys are the Go field names, Pod, Nodes and NodeNames; the lower-case spelling other
 * extenders' clients use is read too.
 */
interface ExtenderArgs {
  Pod?: PodLike;
  Nodes?: { items?: NodeObject[] } | null;
  NodeNames?: string[] | null;
  pod?: PodLike;
  nodes?: { items?: NodeObject[] } | null;
  nodenames?: string[] | null;
}
interface Args {
  pod?: PodLike;
  nodes?: { items?: NodeObject[] } | null;
  nodenames?: string[] | null;
}
const argsOf = (a: ExtenderArgs): Args => ({ pod: a.Pod ?? a.pod, nodes: a.Nodes ?? a.nodes, nodenames: a.NodeNames ?? a.nodenames });

/** The most a call's body may hold: a pod and a node list of a large cluster. */
export const MAX_BODY = 16 * 1024 * 1024;

export function extenderHandler(cluster: ClusterReader, log: Logger): http.RequestListener {
  return (req, res) => {
    const reply = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    };
    const verb = req.url === '/filter' ? 'filter' : req.url === '/prioritize' ? 'prioritize' : undefined;
    if (!verb) return reply(404, { error: `no such endpoint ${req.url ?? ''}: POST /filter or /prioritize` });
    if (req.method !== 'POST') return reply(405, { error: `${req.url}: POST only` });
    readBody(req).then(
      async (text) => {
        let args: Args;
        try {
          args = argsOf(JSON.parse(text) as ExtenderArgs);
        } catch (err) {
          return reply(400, { error: `body: not JSON (${(err as Error).message})` });
        }
        if (!args.pod?.metadata?.name) return reply(400, { error: 'pod: missing, or without metadata.name' });
        try {
          const fits = await judge(cluster, args);
          log.debug({ verb, pod: `${args.pod.metadata.namespace ?? 'default'}/${args.pod.metadata.name}`, nodes: Object.fromEntries([...fits].map(([n, f]) => [n, f.fits ? scoreOf(f) : f.reason])) }, 'answered the scheduler');
          // Replies in the Go field names too (HostPriority, ExtenderFilterResult).
          if (verb === 'prioritize') return reply(200, [...fits].map(([host, fit]) => ({ Host: host, Score: scoreOf(fit) })));
          // Preempting pods frees no device time (a guarantee is held by its volume, not its pod),
          // so every node out is out for good as far as preemption goes.
          const failed = Object.fromEntries([...fits].flatMap(([n, f]) => (f.fits ? [] : [[n, f.reason]])));
          const passing = [...fits].filter(([, f]) => f.fits).map(([n]) => n);
          const result = { FailedNodes: {}, FailedAndUnresolvableNodes: failed, Error: '' };
          if (args.nodes?.items) {
            const keep = new Set(passing);
            return reply(200, { Nodes: { ...args.nodes, items: args.nodes.items.filter((n) => keep.has(n.metadata.name)) }, ...result });
          }
          return reply(200, { NodeNames: passing, ...result });
        } catch (err) {
          // The scheduler counts the pod unschedulable for now and tries again; its own capacity
          // check (the same published figures) still filters while the API server is away.
          log.warn({ err, pod: `${args.pod.metadata.namespace ?? 'default'}/${args.pod.metadata.name}` }, `${verb}: could not read the cluster`);
          const error = `qosd scheduler-extender: ${(err as Error).message}`;
          return reply(200, verb === 'filter' ? { Error: error } : []);
        }
      },
      (err: Error & { statusCode?: number }) => reply(err.statusCode ?? 400, { error: err.message }),
    );
  };
}

/** Each candidate node's fit for the pod's pending qosd claims (every node fits a pod without any). */
async function judge(cluster: ClusterReader, args: Args): Promise<Map<string, NodeFit>> {
  const given = args.nodes?.items?.map((n) => ({ name: n.metadata.name, labels: n.metadata.labels ?? {} }));
  const names = given ? given.map((n) => n.name) : (args.nodenames ?? []);
  const claims = await cluster.pendingClaims(args.pod!);
  if (claims.length === 0) return new Map(names.map((n) => [n, { fits: true, headroom: 1 }]));
  const [published, nodes] = await Promise.all([cluster.publishedCapacities(), given ? Promise.resolve(given) : cluster.nodeLabels(names)]);
  return new Map(nodes.map((n) => [n.name, nodeFit(claims, published, n)]));
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error(`body: more than ${MAX_BODY} bytes`), { statusCode: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
