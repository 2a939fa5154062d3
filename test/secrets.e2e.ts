/**
 * No secret reaches the log: runs the real service (dist/main.js, as `npm start` does) at the
 * default log level with its whole output captured, issues tokens, makes good and bad requests
 * with them (headers, query strings, idempotency keys, Socket.IO handshakes) and scans every byte
 * the process wrote for every secret.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { io } from 'socket.io-client';
import { listeningUrl, spawnCaptured, pollFor } from './support/child.js';
import { answered, refused, sdk } from './support/sdk.js';

const SLOW = 240_000;

test('tokens and idempotency keys never appear in the service log, problem details or events', async () => {
  expect(existsSync('dist/main.js')).toBe(true);
  const admin = `adm-${randomBytes(16).toString('hex')}`;
  const svc = spawnCaptured(process.execPath, ['dist/main.js'], { env: { ...process.env, PORT: '0', HVSIM_DB: 'memory', HVSIM_ADMIN_TOKEN: admin, HVSIM_LOG_LEVEL: 'info' } });
  try {
    const url = await listeningUrl(svc);
    const secrets = [admin];
    const bodies: string[] = [];
    /** An SDK call whose answer (data or problem details) joins the bodies the scan reads. */
    const kept = async <R extends { data?: unknown; error?: unknown; response: Response }>(p: Promise<R>): Promise<R> => {
      const r = await p;
      bodies.push(JSON.stringify(r.error ?? r.data ?? null));
      return r;
    };
    /** Raw HTTP, for what the SDK cannot send on purpose: other authorization schemes, a token in the query, a cookie, malformed JSON. */
    const call = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
      const r = await fetch(`${url}${path}`, { method, headers: { 'content-type': 'application/json', ...headers }, body: body === undefined || typeof body === 'string' ? body : JSON.stringify(body) });
      const text = await r.text();
      bodies.push(text);
      return { status: r.status, text };
    };
    const tenants: string[] = [];
    for (const name of ['alpha', 'beta']) {
      tenants.push((await answered(kept(sdk(url, admin).POST('/v1/tenants', { body: { name: `${name}-${randomBytes(3).toString('hex')}` } })), 201)).token);
    }
    bodies.length = 0; // the creation responses carry the tokens by design
    secrets.push(...tenants);
    const bad = `hvt_${randomBytes(20).toString('hex')}`;
    const key = `idem-${randomBytes(12).toString('hex')}`;
    secrets.push(bad, key);
    const A = sdk(url, tenants[0]);
    await answered(kept(A.GET('/v1/hosts', {})), 200);
    await refused(kept(sdk(url, bad).GET('/v1/hosts', {})), 401);
    expect((await call('GET', '/v1/hosts', { authorization: `Basic ${Buffer.from(`u:${bad}`).toString('base64')}` })).status).toBe(401);
    expect((await call('GET', `/v1/hosts?token=${tenants[1]}&limit=1`, {})).status).toBe(401);
    await refused(kept(sdk(url, tenants[1]).POST('/v1/tenants', { body: { name: 'x' } })), 403);
    const host = { name: 'h', cpus: 2, memoryMiB: 64 };
    const keyed = (k: string) => ({ params: { header: { 'Idempotency-Key': k } } });
    await answered(kept(A.POST('/v1/hosts', { ...keyed(key), body: host })), 201);
    await refused(kept(A.POST('/v1/hosts', { ...keyed(key), body: { ...host, cpus: 3 } })), 422);
    await refused(kept(A.POST('/v1/hosts', { ...keyed(`${key}${'x'.repeat(200)}`), body: host })), 400);
    expect((await call('POST', '/v1/hosts', { authorization: `Bearer ${tenants[0]}`, cookie: `session=${bad}` }, '{not json')).status).toBe(400);
    // Socket.IO handshakes: a good token (then a subscription and its events), a bad one.
    const events: string[] = [];
    for (const token of [tenants[0], bad]) {
      const sock = io(`${url}/events`, { auth: { token }, transports: ['websocket'], reconnection: false });
      sock.onAny((...a) => events.push(JSON.stringify(a)));
      await new Promise<void>((resolve) => { sock.on('connect', () => resolve()); sock.on('connect_error', (e) => { events.push(String(e.message)); resolve(); }); });
      sock.disconnect();
    }
    // Something was logged for these requests (the scan below looks at real log lines).
    await pollFor('request log lines', () => (svc.output().match(/"url":"\/v1\/hosts/g) ?? []).length >= 6, 30_000, svc.output);
    expect(svc.output()).toMatch(/\[redacted\]/);
    svc.child.kill('SIGTERM');
    await pollFor('the service to exit', () => svc.child.exitCode !== null || svc.child.signalCode !== null, 60_000, svc.output);
    const everything = [svc.output(), ...bodies, ...events].join('\n');
    for (const s of secrets) expect({ secret: s, found: everything.includes(s) }).toEqual({ secret: s, found: false });
  } finally {
    if (svc.child.exitCode === null && svc.child.signalCode === null) svc.child.kill('SIGKILL');
  }
}, SLOW);
