import request from 'supertest';
import net from 'node:net';
import { loadConfig } from '../src/config/config.js';
import { startService } from '../src/server.js';
import { startEmbeddedPostgres } from '../src/persistence/embedded.js';

/** A TCP proxy to the database that the test can cut. */
async function proxy(target: URL) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client); sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on('error', close); upstream.on('error', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `postgres://${target.username || 'postgres'}@127.0.0.1:${port}${target.pathname}`,
    cut: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

test('a database outage gives 503 problem+json (and readyz 503), not a hang', async () => {
  const db = process.env.TEST_DATABASE_URL ? null : await startEmbeddedPostgres({ dataDir: '', memory: true });
  const p = await proxy(new URL(process.env.TEST_DATABASE_URL ?? db!.url));
  const schema = `t_outage_${process.pid}`;
  const svc = await startService(loadConfig({ DATABASE_URL: p.url, PORT: '0', HVSIM_ADMIN_TOKEN: 'outage-admin-token-123', HVSIM_LOG_LEVEL: 'silent', HVSIM_DB_SCHEMA: process.env.TEST_DATABASE_URL ? schema : 'public' }));
  try {
    const t = await request(svc.url).post('/v1/tenants').set('Authorization', 'Bearer outage-admin-token-123').send({ name: 'x' }).expect(201);
    await request(svc.url).get('/readyz').expect(200);
    await p.cut();
    const r = await request(svc.url).get('/v1/hosts').set('Authorization', `Bearer ${t.body.token}`);
    expect([r.status, r.body.title]).toEqual([503, 'Service Unavailable']);
    expect(r.headers['content-type']).toMatch(/problem\+json/);
    await request(svc.url).get('/readyz').expect(503);
    // Not a hang: both requests answered (bounded by the connection timeout); the test's own timeout catches a hang.
  } finally {
    await svc.close().catch(() => undefined);
    await db?.stop();
    if (process.env.TEST_DATABASE_URL) {
      const pg = (await import('pg')).default;
      const c = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
      await c.connect(); await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`); await c.end();
    }
  }
}, 60_000);
