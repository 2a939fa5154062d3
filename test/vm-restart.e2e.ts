/**
 * Restart recovery: the service is killed (SIGKILL, no clean shutdown) while VMs run; on the next
 * start those VMs are `stopped` with reason `service-restart` and an event, and nothing else is lost.
 * Runs the compiled service (dist/, built by `npm install`) as a child process.
 */
import { spawn, ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assemble } from '../src/isa/assembler.js';
import { loadConfig } from '../src/config/config.js';
import { startService } from '../src/server.js';
import { until } from './support/service.js';
import { answered, must, refused, sdk } from './support/sdk.js';

const freePort = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
});

test('VMs running when the service is killed are stopped with reason service-restart after the next start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hvsim-restart-'));
  const port = await freePort();
  const admin = 'restart-admin-token-0123456789';
  const env: Record<string, string | undefined> = { ...process.env, PORT: String(port), HVSIM_DATA_DIR: dir, HVSIM_ADMIN_TOKEN: admin, HVSIM_LOG_LEVEL: "silent" };
  delete env.DATABASE_URL;
  const child: ChildProcess = spawn(process.execPath, [join(process.cwd(), 'dist/main.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('hvsim listening on')) resolve(); });
      child.once('exit', (code) => reject(new Error(`service exited early with ${code}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    const token = (await answered(sdk(url, admin).POST('/v1/tenants', { body: { name: 'r' } }), 201)).token;
    const T = sdk(url, token);
    const vmPath = (id: string) => ({ params: { path: { id } } });
    const host = await answered(T.POST('/v1/hosts', { body: { name: 'h', cpus: 1, memoryMiB: 64 } }), 201);
    const elf = Buffer.from(assemble('.globl _start\n.text\n_start:\n  j _start\n').elf);
    const img = await answered(T.POST('/v1/images', { body: { name: 'spin', format: 'elf', content: elf.toString('base64') } }), 201);
    const vmBody = (name: string) => ({ body: { name, hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }] } });
    const vm = await answered(T.POST('/v1/vms', vmBody('spin')), 201);
    const idle = await answered(T.POST('/v1/vms', vmBody('idle')), 201);
    await answered(T.POST('/v1/vms/{id}/start', vmPath(vm.id)), 202);
    await until('the VM to run', async () => (await must(T.GET('/v1/vms/{id}', vmPath(vm.id)))).state === 'running');
    // An Operation in flight at the kill: a start answered 202 a moment before.
    const late = await answered(T.POST('/v1/vms', vmBody('late')), 201);
    const lateOp = await answered(T.POST('/v1/vms/{id}/start', vmPath(late.id)), 202);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const svc = await startService(loadConfig({ PORT: '0', HVSIM_DATA_DIR: dir, HVSIM_ADMIN_TOKEN: admin, HVSIM_LOG_LEVEL: 'silent' }));
    const S = sdk(svc.url, token);
    try {
      const got = await answered(S.GET('/v1/vms/{id}', vmPath(vm.id)), 200);
      expect(got).toMatchObject({ state: 'stopped', stateReason: 'service-restart' });
      expect(got.run!.stoppedAt).not.toBeNull();
      expect((await answered(S.GET('/v1/vms/{id}', vmPath(idle.id)), 200)).state).toBe('created');
      const ev = (await answered(S.GET('/v1/events', { params: { query: { subject: `vm:${vm.id}` } } }), 200)).items;
      expect(ev.at(-1)).toMatchObject({ type: 'vm.state', data: { from: 'running', to: 'stopped', reason: 'service-restart' } });
      // Nothing else is lost, and the VM can start again.
      expect((await answered(S.GET('/v1/images/{id}', vmPath(img.id)), 200)).sha256).toBe(img.sha256);
      expect((await answered(S.GET('/v1/hosts/{id}', vmPath(host.id)), 200)).memory.framesByVm).toEqual({});
      // Operations left pending or running by the kill are settled: failed with reason service-restart.
      const op = await answered(S.GET('/v1/operations/{id}', vmPath(lateOp.id)), 200);
      expect(['failed', 'succeeded']).toContain(op.state);
      if (op.state === 'failed') expect(op.error).toMatchObject({ reason: 'service-restart' });
      const ops = (await answered(S.GET('/v1/operations', { params: { query: { pageSize: 100 } } }), 200)).items;
      expect(ops.filter((o) => o.state === 'pending' || o.state === 'running')).toEqual([]);
      expect(['stopped', 'created']).toContain((await answered(S.GET('/v1/vms/{id}', vmPath(late.id)), 200)).state);
      // Cancelling a settled Operation says it has ended, and how.
      const c = await refused(S.POST('/v1/operations/{id}/cancel', vmPath(lateOp.id)), 409);
      expect(c.detail).toContain(`has already ended (${op.state})`);
      await answered(S.POST('/v1/vms/{id}/start', vmPath(vm.id)), 202);
    } finally {
      await svc.close();
    }
  } finally {
    child.kill('SIGKILL');
  }
}, 600_000);
