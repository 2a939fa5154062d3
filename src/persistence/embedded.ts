/**
 * The embedded database: PGlite served over the Postgres wire protocol on a loopback port, so
 * the service uses the same `pg` driver and SQL as with a real server. PGlite is single-session:
 * clients must use a pool of size 1. It runs in a worker thread of its own (embedded-worker.ts):
 * PGlite executes each statement synchronously in its thread, and in the main thread a 16 MiB
 * `bytea` write held up every other request for over half a second.
 */
import type { Worker } from 'node:worker_threads';
import { spawnModuleWorker } from '../runtime/spawn-worker.js';
import type { EmbeddedMessage } from './embedded-worker.js';

export interface EmbeddedPostgres {
  url: string;
  /** Stops the server and closes the database (flushing it to disk). */
  stop(): Promise<void>;
}

/** Starts the database thread and resolves once it listens. Raises: when PGlite cannot open the data directory. */
export async function startEmbeddedPostgres(opts: { dataDir: string; memory: boolean }): Promise<EmbeddedPostgres> {
  const worker: Worker = spawnModuleWorker(import.meta.url, 'embedded-worker', { dataDir: opts.dataDir, memory: opts.memory });
  const exited = new Promise<number>((r) => worker.once('exit', r));
  const url = await new Promise<string>((resolve, reject) => {
    worker.on('message', (m: EmbeddedMessage) => {
      if (m.type === 'ready') resolve(m.url);
      else if (m.type === 'failed') reject(new Error(`the embedded database could not start: ${m.message}`));
    });
    worker.once('error', (e) => reject(new Error(`the embedded database could not start: ${e.message}`)));
    void exited.then((code) => reject(new Error(`the embedded database thread ended (status ${code}) before it listened`)));
  });
  return {
    url,
    async stop() {
      const stopped = new Promise<void>((r) => worker.on('message', (m: EmbeddedMessage) => { if (m.type === 'stopped') r(); }));
      worker.postMessage({ type: 'stop' });
      // Wait for the database to close (or for the thread to end some other way).
      await Promise.race([stopped, exited]);
      await exited;
    },
  };
}
