import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

// Runs the installed command (dist/, built by npm install's prepare script or npm run build).
test('hvsim serve runs the service until SIGTERM, then exits 0', async () => {
  expect(existsSync('dist/cli/main.js')).toBe(true);
  const child = spawn(process.execPath, ['bin/hvsim.js', 'serve'], { env: { ...process.env, PORT: '0', HVSIM_DB: 'memory', HVSIM_LOG_LEVEL: 'silent' } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 30_000);
    child.stdout.on('data', () => { const m = /listening on (http:\/\/\S+)/.exec(out); if (m) { clearTimeout(t); resolve(m[1]); } });
  });
  const r = await fetch(`${url}/healthz`);
  expect(await r.json()).toEqual({ status: 'ok' });
  const code = await new Promise<number | null>((resolve) => { child.on('exit', resolve); child.kill('SIGTERM'); });
  expect(code).toBe(0);
  expect(out).toMatch(/SIGTERM, shutting down/);
}, 60_000);

test('a bad configuration value is one line and exit status 2', async () => {
  const child = spawn(process.execPath, ['bin/hvsim.js', 'serve'], { env: { ...process.env, PORT: 'x' } });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  expect(code).toBe(2);
  expect(err.trim().split('\n')).toEqual([expect.stringMatching(/PORT must be an integer/)]);
});
