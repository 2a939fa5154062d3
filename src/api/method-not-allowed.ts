/**
 * 405 Method Not Allowed for a path the service routes with other methods (Express alone would
 * answer 404), as problem+json with an `Allow` header; OPTIONS answers 204 with `Allow`. The
 * routes come from the OpenAPI document, which Nest generates from the controllers, so the two
 * cannot disagree.
 */
import type { NextFunction, Request, Response } from 'express';
import type { OpenAPIObject } from '@nestjs/swagger';
import { HTTP_METHODS } from '../openapi.js';

interface Route { pattern: RegExp; allow: string[] }

/** `/v1/vms/{id}/start` -> /^\/v1\/vms\/[^/]+\/start\/?$/ */
const pathPattern = (template: string) =>
  new RegExp(`^${template.split(/\{[^}]+\}/).map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('[^/]+')}/?$`);

export function routesOf(doc: OpenAPIObject): Route[] {
  return Object.entries(doc.paths).map(([path, item]) => {
    const methods = HTTP_METHODS.filter((m) => item[m]).map((m) => m.toUpperCase());
    if (methods.includes('GET') && !methods.includes('HEAD')) methods.push('HEAD');
    return { pattern: pathPattern(path), allow: methods };
  });
}

/** Express middleware; `document` is called once, on the first request (the routes exist by then). */
export function methodNotAllowed(document: () => OpenAPIObject) {
  let routes: Route[] | null = null;
  return (req: Request, res: Response, next: NextFunction) => {
    routes ??= routesOf(document());
    const path = req.path;
    const allowed = new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.allow));
    if (allowed.size === 0 || allowed.has(req.method)) return next();
    const allow = [...allowed, 'OPTIONS'].join(', ');
    res.setHeader('Allow', allow);
    if (req.method === 'OPTIONS') return void res.status(204).end();
    res.status(405).type('application/problem+json').send(JSON.stringify({
      type: 'https://hvsim.dev/problems/method-not-allowed', title: 'Method Not Allowed', status: 405,
      detail: `${req.method} is not supported on ${path}; allowed: ${allow}`, allow: allow.split(', '),
    }));
  };
}
