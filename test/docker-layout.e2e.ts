/**
 * The Docker image is complete: without a docker daemon (CI need not have one), this test reads
 * the runtime stage of docker/Dockerfile, lays out exactly the files it copies in a temporary
 * directory (the build stage's /app is this checkout after `npm run build`; node_modules is linked,
 * not copied), starts the service there and uses everything it reads at run time: the built-in
 * images (workloads/), a VM in a worker thread (dist/runtime), Swagger UI's assets, the version.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listeningUrl, pollFor, spawnCaptured } from './support/child.js';
import { BUILTIN_IMAGES } from '../src/runtime/workloads.js';

const SLOW = 240_000;

/** [source, destination] of every COPY in the Dockerfile's last stage, relative to the repository and to WORKDIR. */
function runtimeCopies(dockerfile: string): Array<[string, string]> {
  const lines = dockerfile.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stage = lines.slice(lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true));
  const out: Array<[string, string]> = [];
  for (const l of stage) {
    const m = /^COPY\s+(?:--from=\S+\s+)?(.+)$/i.exec(l);
    if (!m) continue;
    const parts = m[1].split(/\s+/);
    const dest = parts.pop()!;
    for (const src of parts) {
      const rel = src.replace(/^\/app\//, '').replace(/^\.\//, '');
      out.push([rel, dest.endsWith('/') || parts.length > 1 ? join(dest, rel.split('/').pop()!) : dest]);
    }
  }
  return out;
}

test('the runtime stage of the Dockerfile holds everything the service loads at run time', async () => {
  expect(existsSync('dist/main.js')).toBe(true);
  const copies = runtimeCopies(readFileSync('docker/Dockerfile', 'utf8'));
  expect(copies.map(([s]) => s)).toEqual(expect.arrayContaining(['node_modules', 'dist', 'package.json']));
  const app = mkdtempSync(join(tmpdir(), 'hvsim-image-'));
  for (const [src, dest] of copies) {
    const to = join(app, dest.replace(/^\.\//, ''));
    if (src === 'node_modules') symlinkSync(join(process.cwd(), 'node_modules'), to);
    else { expect(existsSync(src)).toBe(true); cpSync(src, to, { recursive: true }); }
  }
  const admin = 'image-layout-admin-token';
  const svc = spawnCaptured(process.execPath, ['dist/main.js'], { cwd: app, env: { ...process.env, PORT: '0', HVSIM_DB: 'memory', HVSIM_ADMIN_TOKEN: admin, HVSIM_LOG_LEVEL: 'warn' } });
  try {
    const url = await listeningUrl(svc);
    const call = async (method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any }> => {
      const r = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: r.status, body: r.headers.get('content-type')?.includes('json') ? await r.json() : await r.text() };
    };
    const tenant = await call('POST', '/v1/tenants', admin, { name: 'image' });
    expect(tenant.status).toBe(201);
    const token = tenant.body.token as string;
    const images = await call('GET', '/v1/images?builtin=true', token);
    expect(images.status).toBe(200);
    expect(images.body.items.map((i: { name: string }) => i.name).sort()).toEqual(BUILTIN_IMAGES.map((b) => b.name).sort());
    const host = await call('POST', '/v1/hosts', token, { name: 'h', cpus: 1, memoryMiB: 64 });
    const hello = images.body.items.find((i: { name: string }) => i.name === 'hello').id;
    const vm = await call('POST', '/v1/vms', token, { name: 'v', hostId: host.body.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: hello }] });
    expect(vm.status).toBe(201);
    expect((await call('POST', `/v1/vms/${vm.body.id}/start`, token)).status).toBe(202);
    await pollFor('the VM to finish', async () => (await call('GET', `/v1/vms/${vm.body.id}`, token)).body.state === 'stopped', 120_000, svc.output);
    expect((await call('GET', `/v1/vms/${vm.body.id}/console`, token)).body.stdout).toMatch(/Hello/);
    const docs = await fetch(`${url}/docs/swagger-ui.css`);
    expect(docs.status).toBe(200);
  } finally {
    svc.child.kill('SIGTERM');
    await pollFor('the service to exit', () => svc.child.exitCode !== null || svc.child.signalCode !== null, 60_000, svc.output).catch(() => svc.child.kill('SIGKILL'));
    rmSync(app, { recursive: true, force: true });
  }
}, SLOW);
