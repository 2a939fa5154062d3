/**
 * The embedded database: PGlite served over the Postgres wire protocol on a loopback port, so
 * the service uses the same `pg` driver and SQL as with a real server. PGlite is single-session:
 * clients must use a pool of size 1.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface EmbeddedPostgres {
  url: string;
  /** Stops the server and closes the database (flushing it to disk). */
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(opts: { dataDir: string; memory: boolean }): Promise<EmbeddedPostgres> {
  let db: PGlite;
  if (opts.memory) db = await PGlite.create();
  else {
    const dir = join(opts.dataDir, 'pgdata');
    mkdirSync(dir, { recursive: true });
    db = await PGlite.create(dir);
  }
  const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 4 });
  await server.start();
  return {
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
