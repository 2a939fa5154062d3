/**
 * Cluster mode: any node accepts every request; one about a host, a VM, a migration or a running
 * Operation is served by the node that runs it (it holds the worker, the live state, the console
 * and the Operation's cancel switch). This Express middleware forwards such a request, as it
 * came (method, path, headers, body bytes; the tenant's bearer token included), to the owning
 * node's HTTP URL and streams the answer back, so a 202 and its Operation look the same from
 * every node. A forwarded request carries `x-hvsim-forwarded` and is never forwarded again.
 * Headers and bodies are never logged. A request whose owner is gone (heartbeat timed out, the
 * takeover not done yet) is answered 503 with Retry-After; an owner that does not answer, 502.
 */
import type { NextFunction, Request, Response } from 'express';
import { request as httpRequest } from 'node:http';
import type { ClusterService } from './cluster.service.js';

const UUID = '[0-9a-fA-F-]{36}';
/** Paths served by the owner of what they name, with the kind of that thing. */
const ROUTES: Array<{ re: RegExp; kind: 'host' | 'vm' | 'migration' | 'operation'; methods?: string[] }> = [
  { re: new RegExp(`^/v1/vms/(${UUID})(?:/.*)?$`), kind: 'vm' },
  { re: new RegExp(`^/v1/hosts/(${UUID})(?:/.*)?$`), kind: 'host' },
  { re: new RegExp(`^/v1/migrations/(${UUID})/cancel$`), kind: 'migration', methods: ['POST'] },
  { re: new RegExp(`^/v1/operations/(${UUID})/cancel$`), kind: 'operation', methods: ['POST'] },
];

export const FORWARDED = 'x-hvsim-forwarded';
/** Hop-by-hop headers, never passed on (RFC 9110 7.6.1). */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

/** What a request path names that must be served by its owner, if anything. */
export function routeOf(method: string, path: string): { kind: 'host' | 'vm' | 'migration' | 'operation'; id: string } | null {
  for (const r of ROUTES) {
    const m = r.re.exec(path);
    if (m && (!r.methods || r.methods.includes(method))) return { kind: r.kind, id: m[1].toLowerCase() };
  }
  return null;
}

function problem(res: Response, status: number, title: string, detail: string, extra: Record<string, unknown> = {}): void {
  if (res.headersSent) { res.destroy(); return; }
  res.status(status).type('application/problem+json').send(JSON.stringify({ type: `https://hvsim.dev/problems/${title.toLowerCase().replace(/ /g, '-')}`, title, status, detail, ...extra }));
}

export function clusterRouter(cluster: ClusterService) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.headers[FORWARDED] !== undefined) return next();
    const route = routeOf(req.method, req.path);
    if (!route) return next();
    cluster.ownerOf(route.kind, route.id).then((owner) => {
      if (!owner || owner.nodeId === cluster.nodeId) return next();
      if (!owner.alive) {
        res.setHeader('Retry-After', '5');
        return problem(res, 503, 'Service Unavailable', `node ${owner.nodeId}, which runs this ${route.kind}'s host, is not answering its heartbeat; another node takes the host over: retry`, { nodeId: owner.nodeId });
      }
      forward(req, res, owner.httpUrl, cluster.nodeId, owner.nodeId);
    }, next);
  };
}

function forward(req: Request, res: Response, baseUrl: string, self: string, to: string): void {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
  headers[FORWARDED] = self;
  const url = new URL(req.originalUrl, baseUrl);
  const up = httpRequest(url, { method: req.method, headers }, (r) => {
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
    res.writeHead(r.statusCode ?? 502, out);
    r.pipe(res);
    r.on('error', () => res.destroy());
  });
  up.on('error', (e) => problem(res, 502, 'Bad Gateway', `node ${to}, which runs this host, did not answer (${e.message}): retry`, { nodeId: to }));
  req.pipe(up);
}
