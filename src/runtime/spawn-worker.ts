/**
 * Starts a worker thread on a module next to the caller. From compiled code (dist/*.js) that is
 * the .js file; when the caller itself runs as TypeScript source (tests, tsx), the worker
 * registers tsx's loader first and imports the .ts file.
 */
import { Worker } from 'node:worker_threads';

export function spawnModuleWorker(base: string, name: string, workerData: unknown): Worker {
  const ts = base.endsWith('.ts');
  const url = new URL(`./${name}${ts ? '.ts' : '.js'}`, base);
  if (!ts) return new Worker(url, { workerData });
  return new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`, {
    eval: true, workerData,
  });
}
