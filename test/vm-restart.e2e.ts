/**
 * Restart recovery: the service is killed (SIGKILL, no clean shutdown) while VMs run; on the next
 * start those VMs are `stopped` with reason `service-restart` and an event, and nothing else is lost.
 * Runs the compiled service (dist/, built by `npm install`) as a child process.
 */
import request from 'supertest';
import { spawn, ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assemble } from '../src/isa/assembler.js';
import { loadConfig } from '../src/config/config.js';
import { startService } from '../src/server.js';

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
      child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) resolve(); });
      child.once('exit', (code) => reject(new Error(`service exited early with ${code}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    const token = (await request(url).post('/v1/tenants').set('Authorization', `Bearer ${admin}`).send({ name: 'r' }).expect(201)).body.token;
    const auth = { Authorization: `Bearer ${token}` };
    const host = (await request(url).post('/v1/hosts').set(auth).send({ name: 'h', cpus: 1, memoryMiB: 64 }).expect(201)).body;
    const elf = Buffer.from(assemble('.globl _start\n.text\n_start:\n  j _start\n').elf);
    const img = (await request(url).post('/v1/images?name=spin').set(auth).set('Content-Type', 'application/octet-stream').send(elf).expect(201)).body;
    const vm = (await request(url).post('/v1/vms').set(auth).send({ name: 'spin', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }] }).expect(201)).body;
    const idle = (await request(url).post('/v1/vms').set(auth).send({ name: 'idle', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }] }).expect(201)).body;
    await request(url).post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    for (let i = 0; i < 200; i++) {
      if ((await request(url).get(`/v1/vms/${vm.id}`).set(auth)).body.state === 'running') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    // An Operation in flight at the kill: a start answered 202 a moment before.
    const late = (await request(url).post('/v1/vms').set(auth).send({ name: 'late', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }] }).expect(201)).body;
    const lateOp = (await request(url).post(`/v1/vms/${late.id}/start`).set(auth).expect(202)).body;
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const svc = await startService(loadConfig({ PORT: '0', HVSIM_DATA_DIR: dir, HVSIM_ADMIN_TOKEN: admin, HVSIM_LOG_LEVEL: 'silent' }));
    try {
      const got = (await request(svc.url).get(`/v1/vms/${vm.id}`).set(auth).expect(200)).body;
      expect(got).toMatchObject({ state: 'stopped', stateReason: 'service-restart' });
      expect(got.run.stoppedAt).not.toBeNull();
      expect((await request(svc.url).get(`/v1/vms/${idle.id}`).set(auth).expect(200)).body.state).toBe('created');
      const ev = (await request(svc.url).get(`/v1/events?subject=vm:${vm.id}`).set(auth).expect(200)).body.items;
      expect(ev.at(-1)).toMatchObject({ type: 'vm.state', data: { from: 'running', to: 'stopped', reason: 'service-restart' } });
      // Nothing else is lost, and the VM can start again.
      expect((await request(svc.url).get(`/v1/images/${img.id}`).set(auth).expect(200)).body.sha256).toBe(img.sha256);
      expect((await request(svc.url).get(`/v1/hosts/${host.id}`).set(auth).expect(200)).body.memory.framesByVm).toEqual({});
      // Operations left pending or running by the kill are settled: failed with reason service-restart.
      const op = (await request(svc.url).get(`/v1/operations/${lateOp.id}`).set(auth).expect(200)).body;
      expect(['failed', 'succeeded']).toContain(op.state);
      if (op.state === 'failed') expect(op.error).toMatchObject({ reason: 'service-restart' });
      const ops = (await request(svc.url).get('/v1/operations?pageSize=100').set(auth).expect(200)).body.items as Array<{ state: string }>;
      expect(ops.filter((o) => o.state === 'pending' || o.state === 'running')).toEqual([]);
      expect(['stopped', 'created']).toContain((await request(svc.url).get(`/v1/vms/${late.id}`).set(auth).expect(200)).body.state);
      // Cancelling a settled Operation says it has ended, and how.
      const c = await request(svc.url).post(`/v1/operations/${lateOp.id}/cancel`).set(auth).expect(409);
      expect(c.body.detail).toContain(`has already ended (${op.state})`);
      await request(svc.url).post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    } finally {
      await svc.close();
    }
  } finally {
    child.kill('SIGKILL');
  }
}, 90_000);
