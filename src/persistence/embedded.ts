/**
 * The embedded database: PGlite served over the Postgres wire protocol on a loopback port, so
 * the service uses the same `pg` driver and SQL as with a real server. PGlite is single-session:
 * clients must use a pool of size 1.
 *
 * By default PGlite runs in a worker thread of its own (`thread: false` opens it in the calling
 * thread, which is what that worker does). PGlite executes each statement synchronously in its
 * thread: in the main thread a 16 MiB `bytea` write held up every other request for over half a
 * second. In a thread of its own its boot (0.3-0.5 s of CPU, mostly WebAssembly, even with an
 * existing data dir) also overlaps the loading of NestJS and the API instead of following it. The
 * service talks to it over TCP either way.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { threadId, type Worker } from 'node:worker_threads';
import type { PGlite as PGliteClass } from '@electric-sql/pglite';
import { spawnModuleWorker } from '../runtime/spawn-worker.js';

export interface EmbeddedPostgres {
  url: string;
  /** Stops the server and closes the database (flushing it to disk). */
  stop(): Promise<void>;
  /** In a thread of its own: the CPU time that thread used to open the database (NaN off Linux). */
  bootCpuMs?: number;
}

export interface EmbeddedOptions { dataDir: string; memory: boolean }

/** Starts the embedded database in a worker thread of its own, or with `thread: false` in this thread. */
export function startEmbeddedPostgres(opts: EmbeddedOptions, { thread = true }: { thread?: boolean } = {}): Promise<EmbeddedPostgres> {
  return thread ? startInWorker(opts) : openEmbedded(opts);
}

/** PGlite and its socket server in the calling thread (embedded-worker.ts runs this too). */
export async function openEmbedded(opts: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite-socket')]);
  let dir: string | undefined;
  if (!opts.memory) {
    dir = join(opts.dataDir, 'pgdata');
    mkdirSync(dir, { recursive: true });
  }
  const db = await createCluster(PGlite, dir);
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

/**
 * Where a fresh cluster (what PGlite.create makes with initdb before anything is written to it)
 * is kept for this build of PGlite: ~/.cache/hvsim (or $XDG_CACHE_HOME/hvsim), ~40 MB, named by
 * the size and time of PGlite's files. Undefined when PGlite cannot be found on disk.
 */
export function freshClusterFile(): string | undefined {
  try {
    const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
    const key = createHash('sha256');
    for (const f of [entry, join(dirname(entry), 'pglite.wasm'), join(dirname(entry), 'pglite.data')]) {
      const st = statSync(f);
      key.update(`${f}:${st.size}:${st.mtimeMs}\n`);
    }
    const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
    return join(cache, 'hvsim', `pglite-fresh-cluster-${key.digest('hex').slice(0, 16)}.tar`);
  } catch { return undefined; }
}

/**
 * A PGlite database in memory (`dir` undefined) or in `dir`. A new cluster is a copy of the saved
 * fresh cluster when there is one (loading it costs ~0.5 s of CPU; PGlite's initdb ~2-4 s), else
 * made by initdb and then saved for the next time. Every in-memory start (the tests, HVSIM_DB=
 * memory) and the first start on a data dir make a new cluster. The copy is written to a
 * temporary name and renamed, so concurrent starts never read half a file; if it cannot be read,
 * loaded or written, the start runs initdb as if there were none.
 */
async function createCluster(PGlite: typeof PGliteClass, dir: string | undefined): Promise<PGliteClass> {
  if (dir !== undefined && existsSync(join(dir, 'PG_VERSION'))) return PGlite.create(dir);
  const file = freshClusterFile();
  if (file && existsSync(file)) {
    try {
      return await PGlite.create(dir, { loadDataDir: new Blob([readFileSync(file)]) });
    } catch {
      // Unreadable or not a cluster of this PGlite: make one, in an empty dir (it had no cluster).
      if (dir !== undefined) { rmSync(dir, { recursive: true, force: true }); mkdirSync(dir, { recursive: true }); }
    }
  }
  const db = await PGlite.create(dir);
  if (file) {
    try {
      const dump = await db.dumpDataDir('none');
      mkdirSync(dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}-${threadId}.tmp`;
      writeFileSync(tmp, Buffer.from(await dump.arrayBuffer()));
      renameSync(tmp, file);
    } catch { /* not writable (a read-only home): the next start runs initdb too */ }
  }
  return db;
}

/** Messages of embedded-worker.ts to its parent. */
export type EmbeddedWorkerMessage = { kind: 'open'; url: string; cpuMs: number } | { kind: 'stopped' } | { kind: 'failed'; message: string };

function startInWorker(opts: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const worker: Worker = spawnModuleWorker(import.meta.url, 'embedded-worker', opts);
  let stopped: Promise<void> | undefined;
  return new Promise((resolve, reject) => {
    let open = false;
    worker.on('error', (e) => {
      // Before it opened: start-up fails with the reason. After: the service's queries fail (503)
      // and the reason is on stderr; the service itself keeps running.
      if (!open) reject(e);
      else process.stderr.write(`hvsim: the embedded database thread failed: ${e.message}\n`);
    });
    worker.on('exit', (code) => { if (!open) reject(new Error(`the embedded database thread exited (status ${code}) before it opened`)); });
    worker.on('message', (m: EmbeddedWorkerMessage) => {
      if (m.kind === 'failed' && !open) { reject(new Error(m.message)); return; }
      if (m.kind !== 'open') return;
      open = true;
      resolve({
        url: m.url,
        bootCpuMs: m.cpuMs,
        stop() {
          stopped ??= new Promise<void>((done, fail) => {
            worker.on('message', (r: EmbeddedWorkerMessage) => {
              if (r.kind === 'stopped') done();
              else if (r.kind === 'failed') fail(new Error(r.message));
            });
            worker.once('exit', () => done());
            worker.postMessage('stop');
          }).then(() => worker.terminate().then(() => undefined));
          return stopped;
        },
      });
    });
  });
}
