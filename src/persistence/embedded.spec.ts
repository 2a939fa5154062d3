/**
 * The embedded database: a fresh cluster is saved once and copied by the next starts (in memory
 * and on a new data dir), a damaged copy falls back to initdb, and the thread mode serves the
 * same database over TCP and closes cleanly.
 */
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freshClusterFile, startEmbeddedPostgres } from './embedded.js';

const SLOW = 300_000;
// The cache directory is set through process.env, which under Jest is the test's own copy: a
// worker thread would not see it, so the starts that check the cache run in this thread.
let cache: string;
const saved = process.env.XDG_CACHE_HOME;
beforeAll(() => { cache = mkdtempSync(join(tmpdir(), 'hvsim-cache-')); process.env.XDG_CACHE_HOME = cache; });
afterAll(() => { if (saved === undefined) delete process.env.XDG_CACHE_HOME; else process.env.XDG_CACHE_HOME = saved; rmSync(cache, { recursive: true, force: true }); });

async function roundTrip(url: string, value: string): Promise<unknown[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('CREATE TABLE IF NOT EXISTS t (v text)');
    await c.query('INSERT INTO t VALUES ($1)', [value]);
    return (await c.query('SELECT v FROM t ORDER BY v')).rows.map((r: { v: string }) => r.v);
  } finally { await c.end(); }
}

test('the first in-memory start saves a fresh cluster; later starts (memory, new data dir, a thread) copy it and start empty', async () => {
  const file = freshClusterFile()!;
  expect(file.startsWith(join(cache, 'hvsim'))).toBe(true);
  expect(existsSync(file)).toBe(false);
  const a = await startEmbeddedPostgres({ dataDir: '', memory: true }, { thread: false });
  try { expect(await roundTrip(a.url, 'a')).toEqual(['a']); } finally { await a.stop(); }
  expect(existsSync(file)).toBe(true);

  const b = await startEmbeddedPostgres({ dataDir: '', memory: true }, { thread: false });
  try { expect(await roundTrip(b.url, 'b')).toEqual(['b']); } finally { await b.stop(); } // nothing of a's

  const dataDir = mkdtempSync(join(tmpdir(), 'hvsim-data-'));
  try {
    const c = await startEmbeddedPostgres({ dataDir, memory: false }, { thread: true });
    expect(c.bootCpuMs).toEqual(expect.any(Number));
    try { expect(await roundTrip(c.url, 'c')).toEqual(['c']); } finally { await c.stop(); }
    expect(existsSync(join(dataDir, 'pgdata', 'PG_VERSION'))).toBe(true);
    const d = await startEmbeddedPostgres({ dataDir, memory: false }, { thread: true }); // reopens what c wrote
    try { expect(await roundTrip(d.url, 'd')).toEqual(['c', 'd']); } finally { await d.stop(); }
  } finally { rmSync(dataDir, { recursive: true, force: true }); }
}, SLOW);

test('a damaged saved cluster is replaced by a new initdb (in memory, and on a new data dir)', async () => {
  const file = freshClusterFile()!;
  writeFileSync(file, 'not a tar file');
  const db = await startEmbeddedPostgres({ dataDir: '', memory: true }, { thread: false });
  try { expect(await roundTrip(db.url, 'x')).toEqual(['x']); } finally { await db.stop(); }
  expect(statSync(file).size).toBeGreaterThan(1_000_000);

  writeFileSync(file, 'not a tar file');
  const dataDir = mkdtempSync(join(tmpdir(), 'hvsim-data-'));
  try {
    const d = await startEmbeddedPostgres({ dataDir, memory: false }, { thread: false });
    try { expect(await roundTrip(d.url, 'y')).toEqual(['y']); } finally { await d.stop(); }
  } finally { rmSync(dataDir, { recursive: true, force: true }); }
  expect(statSync(file).size).toBeGreaterThan(1_000_000);
}, SLOW);
