import { join } from 'node:path';
import { describeWithTools } from '../testing/jest-tools.js';
import { qemuRun } from '../testing/toolchain.js';
import { HostMemory } from '../hypervisor/host-memory.js';
import { BUILTIN_IMAGES, WORKLOADS, buildBuiltin, builtinElf } from './workloads.js';
import { runProgram } from './run-program.js';
import { DEFAULT_SPEC, Vm } from './vm.js';

describe('built-in workloads', () => {
  test.each(BUILTIN_IMAGES.map((i) => i.name))('the committed workloads/bin/%s.elf is what its source assembles to', (name) => {
    expect(Buffer.from(builtinElf(name)).equals(Buffer.from(buildBuiltin(name)))).toBe(true);
  });

  test('every workload names existing images', () => {
    const names = new Set(BUILTIN_IMAGES.map((i) => i.name));
    for (const w of WORKLOADS) for (const p of w.processes) expect(names.has(p.image)).toBe(true);
  });

  test('the multi-process mix runs every process to exit 0 on 2 vCPUs', () => {
    const mix = WORKLOADS.find((w) => w.name === 'mix')!;
    const host = HostMemory.create(64);
    const vm = new Vm({
      ...DEFAULT_SPEC, vcpus: mix.vcpus, memoryMiB: 32,
      processes: mix.processes.map((p) => ({ name: p.image, elf: builtinElf(p.image), argv: p.argv, env: [], stdin: new Uint8Array() })),
    }, host, 1);
    const out: Buffer[] = [];
    vm.onConsole((_p, b) => out.push(Buffer.from(b)));
    expect(vm.runToCompletion()).toBe('stopped');
    expect(vm.processes().map((p) => p.status)).toEqual([0, 0, 0, 0]);
    expect(Buffer.concat(out).toString()).toContain('Hello from hvsim!\n');
    expect(host.usage().free).toBe(host.frames);
  });
});

describeWithTools(['qemu'])('built-in workloads vs qemu-riscv32', () => {
  test.each(BUILTIN_IMAGES.filter((i) => !i.hvsimOnly).map((i) => i.name))('%s prints the same bytes and exits the same', (name) => {
    const file = join(process.cwd(), 'workloads/bin', `${name}.elf`);
    const want = qemuRun(file);
    const got = runProgram(builtinElf(name), { argv: [file] });
    expect(got.stdout.toString()).toBe(want.stdout.toString());
    expect(got.status).toBe(want.status);
  });
});
