/**
 * Serves the web dashboard (web/dist, built by `npm run build` with Vite) at /. Files only: the
 * API routes are not shadowed, as the build holds just index.html and assets/. When the
 * dashboard was not built, / answers a problem saying how to build it.
 */
import express from 'express';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** web/dist beside src/ or dist/ (this file is src/api/dashboard.ts or dist/api/dashboard.js). */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../web/dist/', import.meta.url));

export function dashboard(): express.RequestHandler {
  if (existsSync(`${DASHBOARD_DIR}index.html`)) {
    const files = express.static(DASHBOARD_DIR, { index: 'index.html', maxAge: '1h', setHeaders: (res, path) => { if (path.endsWith('.html')) res.setHeader('Cache-Control', 'no-cache'); } });
    return (req, res, next) => (req.path === '/' || req.path.startsWith('/assets/') ? files(req, res, next) : next());
  }
  return (req, res, next) => {
    if (req.method !== 'GET' || req.path !== '/') return next();
    res.status(404).type('application/problem+json').send(JSON.stringify({
      type: 'https://hvsim.dev/problems/not-found', title: 'Not Found', status: 404, detail: 'the dashboard is not built: run `npm run build`',
    }));
  };
}
