/**
 * Runs a CommonJS bundle through a V8 code cache, so that a command's start-up does not compile
 * the same JavaScript again on every run. bin/hvsim.js runs the local commands (run, experiment,
 * asm, disasm) from dist/bundle/cli-local.cjs this way: compiling its ~650 kB took ~35 ms of each
 * `hvsim run` (docs/engine.md, "Start-up of hvsim run"). Node 20 has a code cache for scripts
 * (vm.Script's cachedData) but none for ES modules, hence the CommonJS bundle.
 *
 * The cache is one file per bundle (and path of it) in the user's cache directory ($HVSIM_CACHE_DIR, else
 * $XDG_CACHE_HOME/hvsim, else ~/.cache/hvsim): a magic word, a SHA-256 key of the bundle's bytes
 * and the Node/V8 version, a SHA-256 of the payload, then V8's cached data. A file that is missing,
 * truncated, corrupt, from another bundle or another Node is ignored (the bundle is compiled from
 * source, as without a cache) and replaced at exit; V8 checks the data again itself (its version
 * and flags) and may still reject it, which is handled the same way. Nothing is written when the
 * data was accepted, and a cache that cannot be read or written never makes a command fail.
 * HVSIM_NO_CODE_CACHE=1 turns the cache off.
 */
import { isAscii } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { Script } from 'node:vm';

const MAGIC = Buffer.from('hvsimcc1');
const HEADER = MAGIC.length + 32 + 32;

const sha256 = (...parts: Array<Buffer | string>): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** The directory of hvsim's caches, or null when caching is off or there is no home directory. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.HVSIM_NO_CODE_CACHE) return null;
  if (env.HVSIM_CACHE_DIR) return env.HVSIM_CACHE_DIR;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'hvsim');
  let home = '';
  try { home = homedir(); } catch { /* no home directory: no cache */ }
  return home ? join(home, '.cache', 'hvsim') : null;
}

/** What a cache file must have been made for: these bytes of the bundle, run by this Node and V8. */
export function cacheKey(source: Buffer): Buffer {
  return sha256(source, `\0${process.version}\0${process.versions.v8}\0${process.arch}`);
}

/**
 * The cache file of the bundle `file` in `dir`: named after the bundle's path too, so that two
 * installations (two checkouts, two versions) do not keep replacing each other's cache.
 */
export const cacheFileOf = (dir: string, file: string): string =>
  join(dir, `${basename(file)}-${sha256(resolve(file)).toString('hex').slice(0, 16)}.v8-code-cache`);

/** V8's cached data in `cacheFile` if it was made for `key` and is intact, else undefined. */
export function readCodeCache(cacheFile: string, key: Buffer): Buffer | undefined {
  let buf: Buffer;
  try { buf = readFileSync(cacheFile); } catch { return undefined; }
  if (buf.length <= HEADER || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  if (!buf.subarray(MAGIC.length, MAGIC.length + 32).equals(key)) return undefined;
  const data = buf.subarray(HEADER);
  return sha256(data).equals(buf.subarray(MAGIC.length + 32, HEADER)) ? data : undefined;
}

/** Writes `data` for `key` to `cacheFile` (through a temporary file and a rename: readers see all or nothing); errors are ignored. */
export function writeCodeCache(cacheFile: string, key: Buffer, data: Buffer): void {
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(cacheFile), { recursive: true });
    writeFileSync(tmp, Buffer.concat([MAGIC, key, sha256(data), data]));
    renameSync(tmp, cacheFile);
  } catch {
    try { rmSync(tmp, { force: true }); } catch { /* its directory is not one */ }
  }
}

/** How the bundle was compiled: from the cache, or from source (and whether V8 refused a cache). */
export interface CodeCacheUse { cacheFile: string | null; used: boolean; rejected: boolean }

/**
 * Runs the CommonJS bundle `file` as Node would `require` it (with its own require, module,
 * __filename and __dirname), compiled with the code cache of `dir` when there is a valid one.
 * When there was none, V8's data for the bundle is written at process exit, after the command ran,
 * so it holds the functions the command compiled on the way too.
 */
export function runCommonJsBundle(file: string, dir: string | null = cacheDir()): CodeCacheUse {
  const source = readFileSync(file);
  const cacheFile = dir === null ? null : cacheFileOf(dir, file);
  const key = cacheFile === null ? null : cacheKey(source);
  const cachedData = cacheFile === null || key === null ? undefined : readCodeCache(cacheFile, key);
  // Node's own CommonJS wrapper, so the bundle sees what `require` would give it.
  // latin1 when it is ASCII (scripts/bundle.mjs makes it so): the same text, ~10 times faster than decoding UTF-8
  const text = isAscii(source) ? source.toString('latin1') : source.toString('utf8');
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${text}\n})`, { filename: file, cachedData });
  const use = { cacheFile, used: cachedData !== undefined && !script.cachedDataRejected, rejected: script.cachedDataRejected === true };
  if (cacheFile !== null && key !== null && !use.used) {
    process.once('exit', () => { writeCodeCache(cacheFile, key, script.createCachedData()); });
  }
  const module = { exports: {} };
  (script.runInThisContext() as (...a: unknown[]) => void)(module.exports, createRequire(file), module, file, dirname(file));
  return use;
}
