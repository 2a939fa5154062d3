import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheDir, cacheFileOf, cacheKey, readCodeCache, writeCodeCache } from './code-cache.js';

const SLOW = 60_000;
let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvsim-code-cache-')); });
afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

/** A bundle that uses what Node's CommonJS wrapper gives it and prints something computed. */
const BUNDLE = `const { basename } = require('node:path');
function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
module.exports.answer = fib(20);
process.stdout.write(basename(__filename) + ' ' + basename(__dirname) + ' ' + module.exports.answer + ' ' + process.argv.slice(2).join(',') + '\\n');
process.exitCode = 3;
`;

/** Runs `bundle` through runCommonJsBundle in a fresh process; its stdout, status and what the cache did. */
function run(bundle: string, cache: string | null): { out: string; status: number | null; use: { used: boolean; rejected: boolean } } {
  const driver = join(dir, 'driver.ts');
  writeFileSync(driver, `import { runCommonJsBundle } from ${JSON.stringify(join(process.cwd(), 'src/cli/code-cache.ts'))};
const use = runCommonJsBundle(${JSON.stringify(bundle)}, ${JSON.stringify(cache)});
process.stderr.write(JSON.stringify(use));\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', driver, 'a', 'b'], { encoding: 'utf8', timeout: SLOW });
  return { out: r.stdout, status: r.status, use: JSON.parse(r.stderr) };
}

describe('cacheDir', () => {
  it('is $HVSIM_CACHE_DIR, else $XDG_CACHE_HOME/hvsim, else ~/.cache/hvsim; none with HVSIM_NO_CODE_CACHE', () => {
    expect(cacheDir({ HVSIM_CACHE_DIR: '/c', XDG_CACHE_HOME: '/x' })).toBe('/c');
    expect(cacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/hvsim');
    expect(cacheDir({})).toMatch(/[\\/]\.cache[\\/]hvsim$/);
    expect(cacheDir({ HVSIM_NO_CODE_CACHE: '1', HVSIM_CACHE_DIR: '/c' })).toBeNull();
  });
});

describe('cacheFileOf', () => {
  it('names the file after the bundle and its path', () => {
    expect(cacheFileOf('/c', '/a/b.cjs')).toMatch(/^[\\/]c[\\/]b\.cjs-[0-9a-f]{16}\.v8-code-cache$/);
    expect(cacheFileOf('/c', '/a/b.cjs')).toBe(cacheFileOf('/c', '/a/./b.cjs'));
    expect(cacheFileOf('/c', '/a/b.cjs')).not.toBe(cacheFileOf('/c', '/other/b.cjs'));
  });
});

describe('readCodeCache / writeCodeCache', () => {
  const key = cacheKey(Buffer.from('source'));
  it('reads back what was written for the same key, and nothing for another key', () => {
    const file = join(dir, 'sub', 'x.v8-code-cache');
    writeCodeCache(file, key, Buffer.from('data'));
    expect(readCodeCache(file, key)?.toString()).toBe('data');
    expect(readCodeCache(file, cacheKey(Buffer.from('other source')))).toBeUndefined();
  });
  it('ignores a missing, truncated, foreign or corrupt file', () => {
    const file = join(dir, 'x.v8-code-cache');
    expect(readCodeCache(file, key)).toBeUndefined();
    writeCodeCache(file, key, Buffer.from('some cached data'));
    const good = readFileSync(file);
    writeFileSync(file, good.subarray(0, good.length - 3));
    expect(readCodeCache(file, key)).toBeUndefined();
    writeFileSync(file, Buffer.concat([Buffer.from('notmagic'), good.subarray(8)]));
    expect(readCodeCache(file, key)).toBeUndefined();
    const flipped = Buffer.from(good);
    flipped[flipped.length - 1] ^= 1;
    writeFileSync(file, flipped);
    expect(readCodeCache(file, key)).toBeUndefined();
    writeFileSync(file, '');
    expect(readCodeCache(file, key)).toBeUndefined();
  });
  it('does not throw when the file cannot be written', () => {
    writeFileSync(join(dir, 'a-file'), '');
    expect(() => writeCodeCache(join(dir, 'a-file', 'x'), key, Buffer.from('d'))).not.toThrow();
  });
});

describe('runCommonJsBundle', () => {
  it('runs the bundle as require would, writes the cache at exit, then compiles from it', () => {
    const bundle = join(dir, 'b.cjs');
    writeFileSync(bundle, BUNDLE);
    const cache = join(dir, 'cache');
    const expected = `b.cjs ${dir.split(/[\\/]/).pop()} 6765 a,b\n`;
    const first = run(bundle, cache);
    expect(first).toEqual({ out: expected, status: 3, use: expect.objectContaining({ used: false, rejected: false }) });
    expect(readCodeCache(cacheFileOf(cache, bundle), cacheKey(readFileSync(bundle)))).toBeDefined();
    const second = run(bundle, cache);
    expect(second).toEqual({ out: expected, status: 3, use: expect.objectContaining({ used: true, rejected: false }) });
  }, SLOW);

  it('ignores a corrupt cache, a cache of another bundle and data V8 refuses, and replaces them', () => {
    const bundle = join(dir, 'b.cjs');
    writeFileSync(bundle, BUNDLE);
    const cache = join(dir, 'cache');
    const file = cacheFileOf(cache, bundle);
    const expected = run(bundle, cache).out;
    // corrupt: one bit of the payload flipped
    const good = readFileSync(file);
    const flipped = Buffer.from(good);
    flipped[flipped.length >> 1] ^= 0x10;
    writeFileSync(file, flipped);
    expect(run(bundle, cache)).toEqual({ out: expected, status: 3, use: expect.objectContaining({ used: false, rejected: false }) });
    expect(readFileSync(file).equals(flipped)).toBe(false); // replaced at exit
    expect(run(bundle, cache).use.used).toBe(true);
    // data V8 refuses, with a valid header for this bundle
    writeCodeCache(file, cacheKey(readFileSync(bundle)), Buffer.alloc(good.length, 0x5a));
    expect(run(bundle, cache)).toEqual({ out: expected, status: 3, use: expect.objectContaining({ used: false, rejected: true }) });
    expect(run(bundle, cache).use.used).toBe(true);
    // another bundle (one more statement): the old cache is not for it
    writeFileSync(bundle, BUNDLE + 'module.exports.more = 1;\n');
    expect(run(bundle, cache)).toEqual({ out: expected, status: 3, use: expect.objectContaining({ used: false }) });
    expect(run(bundle, cache).use.used).toBe(true);
  }, SLOW);

  it('reads a bundle with characters beyond ASCII as UTF-8', () => {
    const bundle = join(dir, 'u.cjs');
    writeFileSync(bundle, "process.stdout.write('\u00b5s \u2192 ok\\n'); // \u00e9\n");
    expect(run(bundle, null).out).toBe('\u00b5s \u2192 ok\n');
  }, SLOW);

  it('runs the bundle without a cache when there is no cache dir or it cannot be written', () => {
    const bundle = join(dir, 'b.cjs');
    writeFileSync(bundle, BUNDLE);
    writeFileSync(join(dir, 'not-a-dir'), '');
    const expected = run(bundle, null);
    expect(expected).toEqual({ out: expect.stringMatching(/ 6765 a,b\n$/), status: 3, use: { cacheFile: null, used: false, rejected: false } });
    expect(run(bundle, join(dir, 'not-a-dir'))).toEqual({ ...expected, use: expect.objectContaining({ used: false }) });
  }, SLOW);
});
