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

const SLOW = 240_000;

test('tokens and idempotency keys never appear in the service log, problem details or events', async () => {
  expect(existsSync('dist/main.js')).toBe(true);
  const admin = `adm-${randomBytes(16).toString('hex')}`;
  const svc = spawnCaptured(process.execPath, ['dist/main.js'], { env: { ...process.env, PORT: '0', HVSIM_DB: 'memory', HVSIM_ADMIN_TOKEN: admin, HVSIM_LOG_LEVEL: 'info' } });
  try {
    const url = await listeningUrl(svc);
    const secrets = [admin];
    const bodies: string[] = [];
    const call = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
      const r = await fetch(`${url}${path}`, { method, headers: { 'content-type': 'application/json', ...headers }, body: body === undefined || typeof body === 'string' ? body : JSON.stringify(body) });
      const text = await r.text();
      bodies.push(text);
      return { status: r.status, text };
    };
    const tenants: string[] = [];
    for (const name of ['alpha', 'beta']) {
      const r = await call('POST', '/v1/tenants', { authorization: `Bearer ${admin}` }, { name: `${name}-${randomBytes(3).toString('hex')}` });
      expect(r.status).toBe(201);
      tenants.push(JSON.parse(r.text).token as string);
    }
    bodies.length = 0; // the creation responses carry the tokens by design
    secrets.push(...tenants);
    const bad = `hvt_${randomBytes(20).toString('hex')}`;
    const key = `idem-${randomBytes(12).toString('hex')}`;
    secrets.push(bad, key);
    expect((await call('GET', '/v1/hosts', { authorization: `Bearer ${tenants[0]}` })).status).toBe(200);
    expect((await call('GET', '/v1/hosts', { authorization: `Bearer ${bad}` })).status).toBe(401);
    expect((await call('GET', '/v1/hosts', { authorization: `Basic ${Buffer.from(`u:${bad}`).toString('base64')}` })).status).toBe(401);
    expect((await call('GET', `/v1/hosts?token=${tenants[1]}&limit=1`, {})).status).toBe(401);
    expect((await call('POST', '/v1/tenants', { authorization: `Bearer ${tenants[1]}` }, { name: 'x' })).status).toBe(403);
    const host = { name: 'h', cpus: 2, memoryMiB: 64 };
    expect((await call('POST', '/v1/hosts', { authorization: `Bearer ${tenants[0]}`, 'idempotency-key': key }, host)).status).toBe(201);
    expect((await call('POST', '/v1/hosts', { authorization: `Bearer ${tenants[0]}`, 'idempotency-key': key }, { ...host, cpus: 3 })).status).toBe(422);
    expect((await call('POST', '/v1/hosts', { authorization: `Bearer ${tenants[0]}`, 'idempotency-key': `${key}${'x'.repeat(200)}` }, host)).status).toBe(400);
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
