/**
 * A pipeline VM over REST: `processes: [{imageId, stdout: {pipe}}, {imageId, stdin: {pipe}}]`
 * prints what the shell pipeline `producer | consumer` prints under qemu-riscv32; bad wiring is a
 * 400 problem that changes nothing.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Schemas } from '../src/client/index.js';
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { answered, consoleOf, refused, sdk } from './support/sdk.js';
import { pipeConsumer, pipeProducer, PRODUCER_LINE } from '../src/testing/guest-programs.js';
import { tempDir, toolsAvailable } from '../src/testing/toolchain.js';

const LINES = 3000;

describe.each(BACKENDS)('pipelines between a VM\'s processes on $name', (backend) => {
  const session = useTenantSession(backend, 'pipeline');
  /** Raw HTTP only for the malformed process lists the SDK's types forbid. */
  const api = () => session.api();
  /** The typed SDK as the session's tenant. */
  const T = () => sdk(session.svc.url, session.token);
  const upload = async (name: string, elf: Uint8Array) => {
    const r = await T().POST('/v1/images', { body: { name, format: 'elf', content: Buffer.from(elf).toString('base64') } });
    expect([200, 201]).toContain(r.response.status);
    return r.data!.id;
  };

  test('producer | consumer over REST prints what the shell pipeline prints; both exit 0', async () => {
    const host = await answered(T().POST('/v1/hosts', { body: { name: 'hp', cpus: 2, memoryMiB: 128 } }), 201);
    const [prod, cons] = [await upload('producer', pipeProducer(LINES)), await upload('consumer', pipeConsumer)];
    const vm = await answered(T().POST('/v1/vms', { body: {
      name: 'pipeline', hostId: host.id, vcpus: 2, memoryMiB: 32,
      processes: [{ imageId: prod, stdout: { pipe: 'p' } }, { imageId: cons, stdin: { pipe: 'p' } }],
    } }), 201);
    expect(vm.processes[1].stdin).toEqual({ pipe: 'p' });
    const path = { params: { path: { id: vm.id } } };
    await answered(T().POST('/v1/vms/{id}/start', path), 202);
    await until('the pipeline to finish', async () => (await answered(T().GET('/v1/vms/{id}', path), 200)).state === 'stopped', 300_000);
    const got = (await consoleOf(T(), vm.id)).stdout;
    const d = await answered(T().GET('/v1/vms/{id}', path), 200);
    expect(d.run?.processes?.map((p) => p.status)).toEqual([0, 0]);
    if (toolsAvailable('qemu')) {
      const dir = tempDir();
      writeFileSync(join(dir, 'producer'), pipeProducer(LINES), { mode: 0o755 });
      writeFileSync(join(dir, 'consumer'), pipeConsumer, { mode: 0o755 });
      const sh = spawnSync('sh', ['-c', `qemu-riscv32 ${join(dir, 'producer')} | qemu-riscv32 ${join(dir, 'consumer')}`]);
      expect(sh.status).toBe(0);
      expect(got).toBe(sh.stdout.toString());
    }
    expect(got).toBe(`${(LINES * 32).toString(16).padStart(8, '0')}\n${(LINES * [...PRODUCER_LINE].reduce((sum, c) => sum + c.charCodeAt(0), 0)).toString(16).padStart(8, '0')}\n`);
  }, 600_000);

  test('bad pipe wiring is a 400 problem and creates nothing', async () => {
    const host = await answered(T().POST('/v1/hosts', { body: { name: 'hb', cpus: 1, memoryMiB: 64 } }), 201);
    const prod = await upload('producer', pipeProducer(1));
    const before = await answered(T().GET('/v1/vms', {}), 200);
    const vmBody = (processes: Schemas['CreateVmDto']['processes']) => ({ body: { name: 'bad', hostId: host.id, vcpus: 1, memoryMiB: 16, processes } });
    const bad: Array<Schemas['CreateVmDto']['processes']> = [
      [{ imageId: prod, stdout: { pipe: 'p' } }],
      [{ imageId: prod, stdin: { pipe: 'q' } }],
      [{ imageId: prod, stdout: { pipe: 'bad name!' } }, { imageId: prod, stdin: { pipe: 'bad name!' } }],
    ];
    for (const processes of bad) await refused(T().POST('/v1/vms', vmBody(processes)), 400);
    // Malformed process lists (an unknown field, a pipe that is not an object) the SDK's types cannot send.
    const malformed = [
      [{ imageId: prod, stdin: { pipe: 'p', extra: 1 } }],
      [{ imageId: prod, stdout: 'p' }],
    ];
    for (const processes of malformed) {
      const r = await api().post('/v1/vms').set(session.auth).send({ name: 'bad', hostId: host.id, vcpus: 1, memoryMiB: 16, processes }).expect(400);
      expect(r.headers['content-type']).toMatch(/application\/problem\+json/);
    }
    const r = await refused(T().POST('/v1/vms', vmBody(bad[0])), 400);
    expect(r.detail).toMatch(/pipe "p" needs a process writing it \(stdout\) and one reading it \(stdin\)/);
    expect(await answered(T().GET('/v1/vms', {}), 200)).toEqual(before);
  }, 600_000);
});
