/**
 * Starts the real service on a loopback port for e2e tests, on every database backend:
 * always the embedded PGlite server (in memory), and real Postgres when TEST_DATABASE_URL is
 * set, each suite in a schema of its own so suites can run in parallel and repeat.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import request from 'supertest';
import { io, Socket } from 'socket.io-client';
import { loadConfig } from '../../src/config/config.js';
import { RunningService, startService } from '../../src/server.js';

export interface Backend { name: string; env: Record<string, string> }

export const BACKENDS: Backend[] = [
  { name: 'embedded', env: { HVSIM_DB: 'memory' } },
  ...(process.env.TEST_DATABASE_URL ? [{ name: 'postgres', env: { DATABASE_URL: process.env.TEST_DATABASE_URL } }] : []),
];

export const ADMIN = `test-admin-${randomBytes(8).toString('hex')}`;

export async function startTestService(b: Backend, extraEnv: Record<string, string> = {}): Promise<RunningService & { dropSchema(): Promise<void> }> {
  const schema = b.name === 'postgres' ? `t_${randomBytes(6).toString('hex')}` : 'public';
  const svc = await startService(loadConfig({ HVSIM_LOG_LEVEL: 'silent', ...b.env, ...extraEnv, PORT: '0', HVSIM_ADMIN_TOKEN: ADMIN, HVSIM_DB_SCHEMA: schema }));
  return {
    ...svc,
    async dropSchema() {
      if (b.name !== 'postgres') return;
      const c = new pg.Client({ connectionString: b.env.DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    },
  };
}

/** Polls `f` every 25 ms until it returns something other than undefined or false. Raises after `ms`. */
export async function until<T>(what: string, f: () => Promise<T | undefined | false> | T | undefined | false, ms = 300_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface TenantSession {
  svc: Awaited<ReturnType<typeof startTestService>>;
  token: string;
  auth: Record<string, string>;
  api(): request.Agent;
  /** A Socket.IO client on /events with the tenant's token (disconnected after the suite). */
  connect(): Promise<Socket>;
  sockets: Socket[];
}

/**
 * How long starting or stopping a service may take in a hook: generous, because the suite runs
 * test files side by side on a machine that may be busy with other work (60 s ran out at a load
 * average of 30 on 2 cores). A start takes ~1-3 s of CPU.
 */
export const SERVICE_HOOK_MS = 300_000;

/** Registers beforeAll/afterAll that start a service on `backend` with one tenant; returns the live session. */
export function useTenantSession(backend: Backend, tenant: string): TenantSession {
  const s = { sockets: [] as Socket[] } as unknown as TenantSession;
  s.api = () => request(s.svc.url) as unknown as request.Agent;
  s.connect = () => new Promise<Socket>((resolve, reject) => {
    const sock = io(`${s.svc.url}/events`, { auth: { token: s.token }, transports: ['websocket'], reconnection: false });
    s.sockets.push(sock);
    sock.on('connect', () => resolve(sock));
    sock.on('connect_error', reject);
  });
  beforeAll(async () => {
    s.svc = await startTestService(backend);
    s.token = (await request(s.svc.url).post('/v1/tenants').set('Authorization', `Bearer ${ADMIN}`).send({ name: tenant }).expect(201)).body.token;
    s.auth = { Authorization: `Bearer ${s.token}` };
  }, SERVICE_HOOK_MS);
  afterAll(async () => {
    for (const sock of s.sockets) sock.disconnect();
    await s.svc?.close();
    await s.svc?.dropSchema();
  }, SERVICE_HOOK_MS);
  return s;
}
