/**
 * The guest's virtio-blk driver behind /dev/vda, through the real path (kernel text, MMIO exits,
 * the UHV's device model over a copy-on-write disk): a C program that writes, seeks, reads back
 * and fsyncs prints what qemu-riscv32 prints for a regular file of the disk's size and leaves the
 * same bytes; what only a block device does is as Linux; several vCPUs share a disk; and the
 * driver's layout fits its slot.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runProgram } from '../runtime/run-program.js';
const ENGINES = ['interp', 'jit'] as const;
import { describeWithTools } from '../testing/jest-tools.js';
import { gccBuild, qemuRun, tempDir } from '../testing/toolchain.js';
import { BOUNCE_PAGES, DESCS_PER_CPU, QUEUE_SIZE } from './block.js';
import { IO_MAX, MAX_VCPUS, PERCPU } from './layout.js';
import { QUEUE_MAX } from '../hypervisor/virtio-blk.js';

const SRC = join(process.cwd(), 'test/block');
const SIZE = 1 << 20;

describe('virtio-blk driver: layout', () => {
  test('every vCPU has its own descriptors in a queue the device accepts; the IO list fits the per-CPU area', () => {
    expect(DESCS_PER_CPU * MAX_VCPUS).toBeLessThanOrEqual(QUEUE_SIZE);
    expect(QUEUE_SIZE).toBeLessThanOrEqual(QUEUE_MAX);
    expect(DESCS_PER_CPU).toBe(BOUNCE_PAGES + 2);
    expect(PERCPU.IO_LIST + 8 * IO_MAX).toBeLessThanOrEqual(256);
  });
});

describeWithTools(['gcc', 'qemu'])('/dev/vda against a regular file under qemu-riscv32', () => {
  const dir = tempDir();
  const elf = gccBuild([join(SRC, 'blockio.c')], join(dir, 'blockio.elf'));
  const edge = gccBuild([join(SRC, 'blockedge.c')], join(dir, 'blockedge.elf'));
  const file = join(dir, 'disk.img');
  writeFileSync(file, Buffer.alloc(SIZE));
  const want = qemuRun(join(dir, 'blockio.elf'), [file]);
  const written = readFileSync(file);
  const verify = qemuRun(join(dir, 'blockio.elf'), [file, 'verify']);

  test('qemu-riscv32 ran the program', () => {
    expect(want.status).toBe(0);
    expect(want.stdout.toString()).toMatch(/digest 0x/);
  });

  test.each(ENGINES)('writes, seeks, reads back and fsyncs: same bytes printed, same disk content (%s)', (engine) => {
    const got = runProgram(elf, { engine, argv: ['blockio', '/dev/vda'], disks: [{ sizeBytes: SIZE }] });
    expect(got.stdout.toString()).toBe(want.stdout.toString());
    expect(got.stderr.toString()).toBe(want.stderr.toString());
    expect(got.status).toBe(want.status);
    expect(Buffer.from(got.vm.disks[0].slice(0, SIZE)).equals(written)).toBe(true);
    const b = got.counters.uhv.block[0];
    expect(b.errors).toBe(0);
    expect(b.flushes).toBe(2);
    expect(got.vm.kernel.block.stats.setups).toBe(1);
    // Every request is one QueueNotify store: one MMIO exit each.
    expect(got.vm.kernel.block.stats.notifies).toBe(b.requests);
  }, 120_000);

  test('a disk over an image of what qemu left reads back the same (copy-on-write base)', () => {
    const got = runProgram(elf, { argv: ['blockio', '/dev/vda', 'verify'], disks: [{ sizeBytes: SIZE, image: new Uint8Array(written) }] });
    expect(got.stdout.toString()).toBe(verify.stdout.toString());
    expect(got.counters.uhv.block[0].bytesWritten).toBe(0);
  }, 120_000);

  test('two processes on two vCPUs read one disk at once: both see the image (the second spins while the first sets the device up)', () => {
    const got = runProgram(elf, { vcpus: 2, argv: ['blockio', '/dev/vda', 'verify'], disks: [{ sizeBytes: SIZE, image: new Uint8Array(written) }] }, [elf]);
    expect(got.vm.processes().map((p) => p.status)).toEqual([0, 0]);
    // Their writes interleave (they ran at once): the words printed are those of two qemu-riscv32 runs.
    const sorted = (t: string) => t.split(/\s+/).filter((l) => l !== '').sort();
    expect(sorted(got.stdout.toString())).toEqual(sorted(verify.stdout.toString() + verify.stdout.toString()));
    expect(got.vm.kernel.block.stats.setups).toBe(1);
    expect(got.vm.kernel.block.stats.spins).toBeGreaterThan(0);
  }, 120_000);

  test('what only a block device does, as Linux', () => {
    const got = runProgram(edge, { disks: [{ sizeBytes: 65536 }] });
    expect(got.status).toBe(0);
    const out = Object.fromEntries(got.stdout.toString().trim().split('\n').map((l) => l.split(' ')));
    expect(out).toEqual({
      open: '3', fstat: '0', mode: '0x000061b0', rdev: '0x0000fe00', size: '65536', blksize: '4096',
      BLKGETSIZE64: '0', bytes: '65536', BLKGETSIZE: '0', sectors: '128', BLKSSZGET: '0', sector: '512', TCGETS: '-25',
      'seek-past-end': '-22', 'seek-negative': '-22', 'seek-data': '100', 'seek-hole': '65536', 'seek-data-end': '-6', 'seek-end': '65536',
      'write-at-end': '-28', 'pwrite-at-end': '-28', 'pwrite-across-end': '300', 'pread-across-end': '299', first: '1',
      'pread-fault': '-14', 'pwrite-fault': '-14', vdb: '-2', vdz: '-2', pipe: '0', 'pread-pipe': '-29', 'pwrite-pipe': '-29',
      'fsync-pipe': '-22', 'fsync-stdout': '-22', 'pread-zero': '10', b0: '0', 'fsync-bad': '-9', 'rdonly-pwrite': '-9',
    });
    // The last 300 bytes of the disk are the first 300 of the pattern.
    expect([...got.vm.disks[0].slice(65536 - 300, 65536 - 297)]).toEqual([0, 1, 2]);
  }, 120_000);
});
