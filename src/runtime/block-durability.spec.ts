/**
 * A guest's disk across a pause in its worker: a C program that writes, seeks, reads back and
 * fsyncs /dev/vda, paused by its worker half-way through its run (virtual time, so the same
 * place every time) and resumed, prints what qemu-riscv32 prints for a regular file and ends with
 * the same bytes; the worker reports the disk it leaves (what a stopped VM keeps) before its
 * final state.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeWithTools } from '../testing/jest-tools.js';
import { gccBuild, qemuRun, tempDir } from '../testing/toolchain.js';
import { Disk } from '../hypervisor/disk.js';
import { HostRuntime } from './host-runtime.js';
import { runProgram } from './run-program.js';
import { DEFAULT_SPEC, VmSpec } from './vm.js';

const SIZE = 1 << 20;

describeWithTools(['gcc', 'qemu'])('a disk across pause and resume in the VM\'s worker', () => {
  test('paused in the middle and resumed: qemu-riscv32\'s output, the file it left, and the kept disk is that content', async () => {
    const dir = tempDir();
    const elf = gccBuild([join(process.cwd(), 'test/block/blockio.c')], join(dir, 'blockio.elf'));
    const file = join(dir, 'disk.img');
    writeFileSync(file, Buffer.alloc(SIZE));
    const want = qemuRun(join(dir, 'blockio.elf'), [file]);
    const spec: VmSpec = { ...DEFAULT_SPEC, memoryMiB: 16, disks: [{ sizeBytes: SIZE }], processes: [{ name: 'blockio', elf, argv: ['blockio', '/dev/vda'], env: [], stdin: new Uint8Array() }] };
    const whole = runProgram(elf, { memoryMiB: 16, argv: ['blockio', '/dev/vda'], disks: [{ sizeBytes: SIZE }] });
    const half = Math.floor(whole.counters.virtualTimeNs / 2);

    const host = new HostRuntime(64);
    const r = await host.startVm('blockio', spec, { pauseAtVirtualNs: half });
    for (let i = 0; r.state !== 'paused'; i++) {
      if (i > 6000 || r.state === 'stopped' || r.state === 'crashed') throw new Error(`the VM did not pause at ${half} ns: ${r.state} at ${r.snapshot.counters?.virtualTimeNs} ns`);
      await new Promise((w) => setTimeout(w, 20));
    }
    const mid = await r.ask({ type: 'read-disk', disk: 0, start: 0, end: SIZE });
    const midRequests = (await r.request({ type: 'read-state' })).counters!.uhv.block[0].requests;
    expect(midRequests).toBeGreaterThan(0);
    expect(midRequests).toBeLessThan(whole.counters.uhv.block[0].requests);
    expect(mid.bytes.length).toBe(SIZE);
    await r.resume();
    const final = await r.done;
    expect(final.state).toBe('stopped');
    expect(final.processes.map((p) => p.status)).toEqual([0]);
    expect(r.console.bytes(0).toString()).toBe(want.stdout.toString());
    // What the worker reported at the end is the disk qemu-riscv32 left.
    expect(r.finalDisks).toHaveLength(1);
    const kept = new Disk(SIZE);
    kept.importWritten(r.finalDisks![0]);
    expect(Buffer.from(kept.slice(0, SIZE)).equals(readFileSync(file))).toBe(true);
    await host.shutdown();
  }, 120_000);
});
