/**
 * Starting and stopping the service the ways a user and a supervisor do: `hvsim serve`,
 * `npm start` (SIGTERM to the npm process stops the service and frees the port), and a bad
 * configuration. Every wait polls for its condition with a generous limit (a busy machine may
 * take tens of seconds to start the service); no test asserts how long anything took.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, listeningUrl, pollFor, portOpen, spawnCaptured } from './support/child.js';

const SLOW = 240_000;

/** Pids of the descendants of `pid` (from /proc). */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (p: number) => { for (const [c, pp] of parent) if (pp === p) { out.push(c); walk(c); } };
  walk(pid);
  return out;
}

// Runs the installed command (dist/, built by npm install's prepare script or npm run build).
test('hvsim serve runs the service until SIGTERM, then exits 0', async () => {
  expect(existsSync('dist/cli/main.js')).toBe(true);
  const s = spawnCaptured(process.execPath, ['bin/hvsim.js', 'serve'], { env: { ...process.env, PORT: '0', HVSIM_DB: 'memory', HVSIM_LOG_LEVEL: 'silent' } });
  try {
    const url = await listeningUrl(s);
    const r = await fetch(`${url}/healthz`);
    expect(await r.json()).toEqual({ status: 'ok' });
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    expect(s.output()).toMatch(/SIGTERM, shutting down/);
  } finally { s.child.kill('SIGKILL'); }
}, SLOW);

test('npm start prints its start-up phases; SIGTERM to the npm process stops the service: port closed, no process left', async () => {
  const data = mkdtempSync(join(tmpdir(), 'hvsim-start-'));
  const npm = spawnCaptured('npm', ['start'], { env: { ...process.env, PORT: '0', HVSIM_DATA_DIR: data, HVSIM_LOG_LEVEL: 'warn' } });
  let tree: number[] = [];
  try {
    const url = new URL(await listeningUrl(npm));
    await pollFor('/healthz', async () => (await fetch(`${url}healthz`).catch(() => null))?.status === 200, 120_000, npm.output);
    expect(npm.output()).toMatch(/hvsim: opening the embedded database .*\(\d+ ms[^)]*\)\n(.*\n)*hvsim: starting the application .*\(\d+ ms[^)]*\)/);
    tree = descendants(npm.child.pid!);
    expect(tree.length).toBeGreaterThan(0);
    npm.child.kill('SIGTERM');
    await pollFor('the port to close', async () => !(await portOpen(url.hostname, Number(url.port))), 120_000, npm.output);
    await pollFor('every process of npm start to exit', () => !alive(npm.child.pid!) && tree.every((p) => !alive(p)), 120_000,
      () => `${tree.filter(alive).join(', ')} still alive; ${npm.output()}`);
    expect(npm.output()).toMatch(/SIGTERM, shutting down/);
  } finally {
    for (const p of [npm.child.pid!, ...tree]) if (alive(p)) process.kill(p, 'SIGKILL');
    rmSync(data, { recursive: true, force: true });
  }
}, SLOW);

test('a bad configuration value is one line and exit status 2', async () => {
  const s = spawnCaptured(process.execPath, ['bin/hvsim.js', 'serve'], { env: { ...process.env, PORT: 'x' } });
  expect(await s.exited).toBe(2);
  expect(s.output().trim().split('\n')).toEqual([expect.stringMatching(/PORT must be an integer/)]);
}, SLOW);
