/**
 * The embedded database's thread: PGlite (Postgres compiled to WebAssembly, which runs every
 * query synchronously in the thread that owns it) and its wire-protocol server on a loopback
 * port. Kept off the service's main thread so that a long statement (a 16 MiB image written as
 * `bytea`, a burst of 200 VM starts) never stalls the event loop that answers HTTP and Socket.IO.
 *
 * Protocol with embedded.ts: workerData `{dataDir, memory}`; this thread posts `{type: 'ready',
 * url}` or `{type: 'failed', message}`; on `{type: 'stop'}` it closes the server and the database
 * (flushing it to disk), posts `{type: 'stopped'}` and ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export type EmbeddedMessage = { type: 'ready'; url: string } | { type: 'failed'; message: string } | { type: 'stopped' };

const opts = workerData as { dataDir: string; memory: boolean };
const port = parentPort!;
const post = (m: EmbeddedMessage) => port.postMessage(m);

try {
  let db: PGlite;
  if (opts.memory) db = await PGlite.create();
  else {
    const dir = join(opts.dataDir, 'pgdata');
    mkdirSync(dir, { recursive: true });
    db = await PGlite.create(dir);
  }
  const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 4 });
  await server.start();
  port.on('message', (m: { type: string }) => {
    if (m.type !== 'stop') return;
    void (async () => {
      try { await server.stop(); } finally { await db.close(); }
    })().finally(() => { post({ type: 'stopped' }); port.close(); });
  });
  post({ type: 'ready', url: `postgres://postgres@${server.getServerConn()}/postgres` });
} catch (e) {
  post({ type: 'failed', message: (e as Error)?.message ?? String(e) });
  port.close();
}
