import { join } from 'node:path';
import { describeWithTools } from '../testing/jest-tools.js';
import { qemuRun, tempDir } from '../testing/toolchain.js';
import { readFileSync, writeFileSync } from 'node:fs';
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

  test('blockio on /dev/vda prints what it prints on a regular file of the disk\'s size under qemu-riscv32, and leaves the same bytes', () => {
    const file = join(process.cwd(), 'workloads/bin/blockio.elf');
    const img = join(tempDir(), 'disk.img');
    writeFileSync(img, Buffer.alloc(2 << 20));
    const want = qemuRun(file, ['2', img]);
    const got = runProgram(builtinElf('blockio'), { argv: [file, '2'], disks: [{ sizeBytes: 2 << 20 }] });
    expect(want.stdout.toString()).toMatch(/^written 00200000\nread 00200000\nchecksum [0-9a-f]{8}\nmismatches 00000000\n$/);
    expect(got.stdout.toString()).toBe(want.stdout.toString());
    expect(got.status).toBe(0);
    expect(Buffer.from(got.vm.disks[0].slice(0, 2 << 20)).equals(readFileSync(img))).toBe(true);
  }, 120_000);
});
