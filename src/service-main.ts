/**
 * Runs the service from the environment until SIGINT/SIGTERM (shared by `npm start` and
 * `hvsim serve`), printing a line per start-up phase. A bad configuration value prints one line
 * and exits with status 2.
 *
 * Start-up overlaps its two slow parts: the embedded database boots in a thread of its own
 * (PGlite compiles and runs its WebAssembly there) while NestJS, TypeORM and the API modules load
 * and start on the main thread. This module therefore imports server.js only when it runs
 * (bench/startup.ts measures the phases).
 */
// First: decorated classes need Reflect.metadata when they are defined, and in the bundle the
// chunks that define them may be evaluated before server.ts's own import of it (`npm start` and
// `hvsim serve` both come through here).
import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config.js';
import type { EmbeddedPostgres } from './persistence/embedded.js';
import { threadCpuMs } from './persistence/thread-cpu.js';

export async function runServiceFromEnv(): Promise<void> {
  const t0 = performance.now();
  // Each line: milliseconds since start-up began, and the CPU time the main thread has used since
  // the process started (bench/startup.ts splits start-up by both).
  const say = (line: string, ms = Math.round(performance.now() - t0)) => {
    const cpu = threadCpuMs();
    process.stdout.write(`hvsim: ${line} (${ms} ms${Number.isNaN(cpu) ? '' : `, main thread CPU ${Math.round(cpu)} ms`})\n`);
  };
  let config;
  try { config = loadConfig(); } catch (e) {
    if (e instanceof ConfigError) { process.stderr.write(`hvsim: configuration error: ${e.message}\n`); process.exit(2); }
    throw e;
  }
  let embedded: Promise<EmbeddedPostgres> | undefined;
  if (!config.databaseUrl) {
    say(`opening the embedded database (${config.embedded.memory ? 'in memory' : config.embedded.dataDir})`);
    const { startEmbeddedPostgres } = await import('./persistence/embedded.js');
    embedded = startEmbeddedPostgres(config.embedded, { thread: true });
    embedded.then((db) => say(`embedded database open${db.bootCpuMs === undefined ? '' : ` (its thread used ${Math.round(db.bootCpuMs)} ms of CPU)`}`), () => { /* reported by startService */ });
  }
  say('loading the service (NestJS, TypeORM, API modules)');
  const { startService } = await import('./server.js');
  const svc = await startService(config, (phase, ms) => { if (phase !== 'ready') say(phase, ms); }, { embedded, t0 });
  process.stdout.write(`hvsim listening on ${svc.url} (database: ${config.databaseUrl ? 'postgres' : config.embedded.memory ? 'embedded, in memory' : `embedded, ${config.embedded.dataDir}`}) after ${Math.round(performance.now() - t0)} ms\n`);
  if (svc.generatedToken) process.stdout.write(`admin token (shown once): ${svc.adminToken}\n`);
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`hvsim: ${why}, shutting down\n`);
    svc.close().then(() => process.exit(0), (e) => { process.stderr.write(`hvsim: shutdown failed: ${e}\n`); process.exit(1); });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Started by an npm script: if npm goes away without passing a signal on (killed with SIGKILL,
  // say), stop too rather than keep serving as an orphan nobody holds.
  if (process.env.npm_lifecycle_event) {
    const parent = process.ppid;
    setInterval(() => { if (process.ppid !== parent) stop('npm (the parent process) exited'); }, 1000).unref();
  }
}
