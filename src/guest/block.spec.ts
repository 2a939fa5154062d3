/**
 * The guest's virtio-blk driver behind /dev/vda, through the real path (kernel text, MMIO exits,
 * the UHV's device model over a copy-on-write disk): a C program that writes, seeks, reads back
 * and fsyncs prints what qemu-riscv32 prints for a regular file of the disk's size and leaves the
 * same bytes; what only a block device does is as Linux; several vCPUs share a disk; and the
 * driver's layout fits its slot.
 */
import fc from 'fast-check';
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

describeWithTools(['gcc'])('/dev/vda against a byte array', () => {
  const dir = tempDir();
  const elf = gccBuild([join(SRC, 'blockops.c')], join(dir, 'blockops.elf'));
  const size = 96 * 1024;
  type Op = { op: 'w' | 'r' | 'W' | 'R' | 's'; off: number; len: number };

  /** What Linux's block device file does with the ops on a disk of `size` bytes (the program's output). */
  function model(ops: Op[]): { out: string; disk: Uint8Array } {
    const disk = new Uint8Array(size);
    let pos = 0;
    const lines: string[] = [];
    const hex = (h: number) => '0x' + (h >>> 0).toString(16).padStart(8, '0');
    for (const { op, off, len: want } of ops) {
      const len = Math.min(want, 70000);
      const at = op === 'W' || op === 'R' ? off : pos;
      if (op === 's') {
        if (off > size) lines.push('-22'); else { pos = off; lines.push(String(off)); }
        continue;
      }
      const writing = op === 'w' || op === 'W';
      if (len === 0) { lines.push('0'); continue; }
      if (at >= size) { lines.push(writing ? '-28' : '0'); continue; }
      const n = Math.min(len, size - at);
      if (writing) {
        for (let i = 0; i < n; i++) disk[at + i] = ((off + i) * 7 + len) & 0xff;
        lines.push(String(n));
      } else {
        let h = 2166136261;
        for (let i = 0; i < n; i++) { h ^= disk[at + i]; h = Math.imul(h, 16777619); }
        lines.push(`${n} ${hex(h)}`);
      }
      if (op === 'w' || op === 'r') pos = at + n;
    }
    return { out: lines.map((l) => l + '\n').join(''), disk };
  }

  test('any sequence of reads, writes, positioned reads and writes and seeks, at any offset and length, does what it does to a byte array', () => {
    const op = fc.record({
      op: fc.constantFrom<Op['op']>('w', 'r', 'W', 'R', 's'),
      off: fc.oneof(fc.integer({ min: 0, max: size + 600 }), fc.constantFrom(0, 511, 512, 4095, 32768, size - 1, size)),
      len: fc.oneof(fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 0, max: 1100 })),
    });
    fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 16 }), (ops) => {
      const stdin = new Uint8Array(9 * ops.length);
      const dv = new DataView(stdin.buffer);
      ops.forEach((o, i) => { stdin[9 * i] = o.op.charCodeAt(0); dv.setUint32(9 * i + 1, o.off, true); dv.setUint32(9 * i + 5, o.len, true); });
      const got = runProgram(elf, { stdin, disks: [{ sizeBytes: size }] });
      const want = model(ops);
      expect(got.stdout.toString()).toBe(want.out);
      expect(got.status).toBe(0);
      expect(Buffer.from(got.vm.disks[0].slice(0, size)).equals(Buffer.from(want.disk))).toBe(true);
    }), { seed: 18, numRuns: 25 });
  }, 300_000);
});
