/**
 * Starts the real service on a loopback port for e2e tests, on every database backend:
 * always the embedded PGlite server (in memory), and real Postgres when TEST_DATABASE_URL is
 * set, each suite in a schema of its own so suites can run in parallel and repeat.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
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
