/**
 * A pipeline VM over REST: `processes: [{imageId, stdout: {pipe}}, {imageId, stdin: {pipe}}]`
 * prints what the shell pipeline `producer | consumer` prints under qemu-riscv32; bad wiring is a
 * 400 problem that changes nothing.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { pipeConsumer, pipeProducer, PRODUCER_LINE } from '../src/testing/guest-programs.js';
import { tempDir, toolsAvailable } from '../src/testing/toolchain.js';

const LINES = 3000;

describe.each(BACKENDS)('pipelines between a VM\'s processes on $name', (backend) => {
  const session = useTenantSession(backend, 'pipeline');
  const api = () => session.api();
  const upload = async (name: string, elf: Uint8Array) =>
    (await api().post(`/v1/images?name=${name}`).set(session.auth).set('Content-Type', 'application/octet-stream').send(Buffer.from(elf))
      .expect((r) => expect([200, 201]).toContain(r.status))).body.id as string;

  test('producer | consumer over REST prints what the shell pipeline prints; both exit 0', async () => {
    const host = (await api().post('/v1/hosts').set(session.auth).send({ name: 'hp', cpus: 2, memoryMiB: 128 }).expect(201)).body;
    const [prod, cons] = [await upload('producer', pipeProducer(LINES)), await upload('consumer', pipeConsumer)];
    const vm = (await api().post('/v1/vms').set(session.auth).send({
      name: 'pipeline', hostId: host.id, vcpus: 2, memoryMiB: 32,
      processes: [{ imageId: prod, stdout: { pipe: 'p' } }, { imageId: cons, stdin: { pipe: 'p' } }],
    }).expect(201)).body;
    expect(vm.processes[1].stdin).toEqual({ pipe: 'p' });
    await api().post(`/v1/vms/${vm.id}/start`).set(session.auth).expect(202);
    await until('the pipeline to finish', async () => (await api().get(`/v1/vms/${vm.id}`).set(session.auth).expect(200)).body.state === 'stopped', 60_000);
    const got = (await api().get(`/v1/vms/${vm.id}/console`).set(session.auth).expect(200)).body.stdout as string;
    const d = (await api().get(`/v1/vms/${vm.id}`).set(session.auth).expect(200)).body;
    expect(d.run.processes.map((p: { status: number }) => p.status)).toEqual([0, 0]);
    if (toolsAvailable('qemu')) {
      const dir = tempDir();
      writeFileSync(join(dir, 'producer'), pipeProducer(LINES), { mode: 0o755 });
      writeFileSync(join(dir, 'consumer'), pipeConsumer, { mode: 0o755 });
      const sh = spawnSync('sh', ['-c', `qemu-riscv32 ${join(dir, 'producer')} | qemu-riscv32 ${join(dir, 'consumer')}`]);
      expect(sh.status).toBe(0);
      expect(got).toBe(sh.stdout.toString());
    }
    expect(got).toBe(`${(LINES * 32).toString(16).padStart(8, '0')}\n${(LINES * [...PRODUCER_LINE].reduce((sum, c) => sum + c.charCodeAt(0), 0)).toString(16).padStart(8, '0')}\n`);
  }, 120_000);

  test('bad pipe wiring is a 400 problem and creates nothing', async () => {
    const host = (await api().post('/v1/hosts').set(session.auth).send({ name: 'hb', cpus: 1, memoryMiB: 64 }).expect(201)).body;
    const prod = await upload('producer', pipeProducer(1));
    const before = (await api().get('/v1/vms').set(session.auth).expect(200)).body;
    const bad = [
      [{ imageId: prod, stdout: { pipe: 'p' } }],
      [{ imageId: prod, stdin: { pipe: 'q' } }],
      [{ imageId: prod, stdout: { pipe: 'bad name!' } }, { imageId: prod, stdin: { pipe: 'bad name!' } }],
      [{ imageId: prod, stdin: { pipe: 'p', extra: 1 } }],
      [{ imageId: prod, stdout: 'p' }],
    ];
    for (const processes of bad) {
      const r = await api().post('/v1/vms').set(session.auth).send({ name: 'bad', hostId: host.id, vcpus: 1, memoryMiB: 16, processes }).expect(400);
      expect(r.headers['content-type']).toMatch(/application\/problem\+json/);
    }
    const r = await api().post('/v1/vms').set(session.auth).send({ name: 'bad', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: bad[0] }).expect(400);
    expect(r.body.detail).toMatch(/pipe "p" needs a process writing it \(stdout\) and one reading it \(stdin\)/);
    expect((await api().get('/v1/vms').set(session.auth).expect(200)).body).toEqual(before);
  }, 60_000);
});
