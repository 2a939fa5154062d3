/**
 * Starts a worker thread on a module next to the caller. From compiled code (dist/*.js) that is
 * the .js file. When the caller itself runs as TypeScript source (tests, tsx), the module and
 * everything it imports are bundled once per process into one ES module (esbuild, the compiler
 * tsx itself uses) and every worker loads that file: a worker that registered tsx's loader and
 * compiled the engine's ~70 modules itself cost about 400 ms of CPU, the bundle about 50 ms, which
 * is what lets a test boot 200 VMs on a 2-core machine. Packages stay imports (PGlite finds its
 * WebAssembly next to its own module), so the bundle is written inside node_modules/.cache, where
 * they resolve. Without esbuild it falls back to tsx.
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface EsBuild {
  buildSync(o: Record<string, unknown>): { outputFiles: Array<{ contents: Uint8Array }> };
}

/** Bundled entry points of this process, by source URL. */
const bundles = new Map<string, URL | null>();

/**
 * The bundle of the TypeScript module at `entry`, written to node_modules/.cache/hvsim-workers
 * under a name that is the hash of its contents (so processes share it, and a changed source gets
 * a new file), or null when esbuild is not installed.
 */
export function bundleOf(entry: URL): URL | null {
  if (bundles.has(entry.href)) return bundles.get(entry.href)!;
  let out: URL | null = null;
  let esbuild: EsBuild | null = null;
  let dir = '';
  try {
    const require = createRequire(import.meta.url);
    esbuild = require('esbuild') as EsBuild;
    const main = require.resolve('esbuild');
    dir = join(main.slice(0, main.lastIndexOf('node_modules') + 'node_modules'.length), '.cache', 'hvsim-workers');
    mkdirSync(dir, { recursive: true });
  } catch { esbuild = null; }
  if (esbuild) {
    const code = esbuild.buildSync({
      entryPoints: [fileURLToPath(entry)], bundle: true, packages: 'external', platform: 'node', format: 'esm', target: 'node20',
      write: false, logLevel: 'silent', sourcemap: 'inline',
    }).outputFiles[0].contents;
    const file = join(dir, `${createHash('sha256').update(code).digest('hex').slice(0, 24)}.mjs`);
    if (!existsSync(file)) {
      // Written under a private name, then renamed: another process never loads half a file.
      const part = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
      writeFileSync(part, code);
      renameSync(part, file);
    }
    out = pathToFileURL(file);
  }
  bundles.set(entry.href, out);
  return out;
}

export function spawnModuleWorker(base: string, name: string, workerData: unknown): Worker {
  const ts = base.endsWith('.ts');
  const url = new URL(`./${name}${ts ? '.ts' : '.js'}`, base);
  if (!ts) return new Worker(url, { workerData });
  const bundle = bundleOf(url);
  if (bundle) return new Worker(bundle, { workerData });
  return new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`, {
    eval: true, workerData,
  });
}
