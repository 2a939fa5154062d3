/**
 * The file layer inside a VM: pipelines between processes (blocking, EOF at the last writer's
 * exit, SIGPIPE when the reader is gone), on 1 and 2 vCPUs, deterministic; the layout of its
 * structures in the kernel region; and the guest-code dispatch through the operations tables.
 */
import { assemble } from '../isa/assembler.js';
import { pipeConsumer as consumer, pipeProducer as producer, PRODUCER_LINE } from '../testing/guest-programs.js';
import { HostMemory } from '../hypervisor/host-memory.js';
import { CONSOLE_PORTS, CONSOLE_RING_BASE, CONSOLE_RING_STRIDE, RAM_BASE } from '../hypervisor/platform.js';
import { hostMiBFor } from '../runtime/run-program.js';
import { DEFAULT_SPEC, ProcessImage, Vm } from '../runtime/vm.js';
import { buildKernelText } from './kernel-text.js';
import { GATE, K, KERNEL_REGION } from './layout.js';
import { SYSCALLS } from './syscalls.js';
import { FD_MAX, FD_SLOTS, FILE_KINDS, FILE_SIZE, MAX_FILES, MAX_PIPES, PIPE_CAPACITY, PIPE_HEADER } from './vfs.js';

const asm = (src: string) => assemble(`.globl _start\n.text\n${src}`).elf;

/** Reads one byte of fd 0 and exits 3 (closing the read end early). */
const quitter = asm(`
_start:
  li a0, 0
  la a1, buf
  li a2, 1
  li a7, 63
  ecall
  li a0, 3
  li a7, 93
  ecall
.bss
buf: .space 4
`);

const image = (name: string, elf: Uint8Array, over: Partial<ProcessImage> = {}): ProcessImage =>
  ({ name, elf, argv: [name], env: [], stdin: new Uint8Array(), ...over });

function run(processes: ProcessImage[], vcpus = 1) {
  const spec = { ...DEFAULT_SPEC, vcpus, memoryMiB: 32, processes };
  const host = HostMemory.create(hostMiBFor(32));
  const vm = new Vm(spec, host, 1);
  const out: Buffer[] = [];
  vm.onConsole((port, b) => { if (port === 0) out.push(Buffer.from(b)); });
  const state = vm.runToCompletion(200_000_000);
  return { state, stdout: Buffer.concat(out).toString(), processes: vm.processes(), counters: vm.counters(), freeAfter: host.usage().free === host.frames };
}

const hex = (v: number) => (v >>> 0).toString(16).padStart(8, '0');

describe('file layer: pipes between processes', () => {
  const lines = 5000; // 160,000 bytes: more than two pipe capacities, so both sides block
  const want = `${hex(lines * 32)}\n${hex(lines * [...PRODUCER_LINE].reduce((s, c) => s + c.charCodeAt(0), 0))}\n`;

  test.each([1, 2])('producer | consumer on %i vCPU(s): every byte arrives, EOF at the writer\'s exit, both exit 0', (vcpus) => {
    const r = run([image('producer', producer(lines), { stdoutPipe: 'p' }), image('consumer', consumer, { stdinPipe: 'p' })], vcpus);
    expect(r.state).toBe('stopped');
    expect(r.stdout).toBe(want);
    expect(r.processes.map((p) => p.status)).toEqual([0, 0]);
    expect(r.counters.syscalls.write).toBe(lines + 2);
    expect(r.freeAfter).toBe(true);
  }, 120_000);

  test('the same pipeline twice gives the same bytes and counters', () => {
    const procs = () => [image('producer', producer(lines), { stdoutPipe: 'p' }), image('consumer', consumer, { stdinPipe: 'p' })];
    const [a, b] = [run(procs(), 2), run(procs(), 2)];
    expect(b.stdout).toBe(a.stdout);
    expect(b.counters).toEqual(a.counters);
  }, 120_000);

  test('a writer whose reader exited dies of SIGPIPE (status 141)', () => {
    const r = run([image('producer', producer(lines), { stdoutPipe: 'p' }), image('quitter', quitter, { stdinPipe: 'p' })]);
    expect(r.state).toBe('stopped');
    expect(r.processes.map((p) => p.status)).toEqual([141, 3]);
  }, 120_000);

  test('a pipe without a writer or a reader is refused at boot', () => {
    expect(() => run([image('producer', producer(1), { stdoutPipe: 'p' }), image('consumer', consumer)])).toThrow(/pipe "p" needs a process writing it/);
    expect(() => run([image('consumer', consumer, { stdinPipe: 'q' })])).toThrow(/pipe "q"/);
  });
});

describe('kill', () => {
  const spinner = asm('_start:\n  addi t0, t0, 1\n  j _start\n');
  /** kill(1, SIGTERM), then exits with -kill(7, 0) (ESRCH: 3). */
  const killer = asm(`
_start:
  li a0, 1
  li a1, 15
  li a7, 129
  ecall
  li a0, 7
  li a1, 0
  li a7, 129
  ecall
  neg a0, a0
  li a7, 93
  ecall
`);
  test.each([1, 2])('one process kills another, runnable or running on another vCPU (%i vCPUs): status 143', (vcpus) => {
    const r = run([image('spinner', spinner), image('killer', killer)], vcpus);
    expect(r.state).toBe('stopped');
    expect(r.processes.map((p) => [p.status, p.signal])).toEqual([[143, 15], [3, undefined]]);
  }, 300_000);
});

describe('file layer: layout and dispatch', () => {
  test('its structures fit the kernel region without overlapping each other or the console rings', () => {
    const areas: Array<[string, number, number]> = [
      ['ops', K.FILE_OPS, K.FILE_OPS + 16 * FILE_KINDS.length],
      ['idle root', K.IDLE_ROOT, K.IDLE_ROOT + 0x1000],
      ['fd tables', K.FD_TABLES, K.FD_TABLES + FD_SLOTS * FD_MAX * 4],
      ['rings', CONSOLE_RING_BASE - RAM_BASE, CONSOLE_RING_BASE - RAM_BASE + CONSOLE_PORTS * CONSOLE_RING_STRIDE],
      ['files', K.FILES, K.FILES + MAX_FILES * FILE_SIZE],
      ['pipes', K.PIPES, K.PIPES + MAX_PIPES * PIPE_HEADER],
      ['pipe buffers', K.PIPE_BUFFERS, K.PIPE_BUFFERS + MAX_PIPES * PIPE_CAPACITY],
      ['block driver', K.BLOCK, K.BLOCK + K.BLOCK_SIZE],
    ];
    areas.sort((a, b) => a[1] - b[1]);
    for (let i = 1; i < areas.length; i++) expect([areas[i - 1][0], areas[i - 1][2] <= areas[i][1]]).toEqual([areas[i - 1][0], true]);
    expect(areas[areas.length - 1][2]).toBeLessThanOrEqual(KERNEL_REGION);
    expect(K.FILE_OPS).toBeGreaterThanOrEqual(K.IDLE_ROOT + 0x1000);
    // The method gates fit the gate page.
    expect(GATE.METHOD + 2 * FILE_KINDS.length).toBeLessThanOrEqual(1024);
  });

  test('read, write, readv and writev enter through the kernel text\'s sys_rw; every entry named by a row exists', () => {
    for (const m of ['none', 'retpoline'] as const) {
      const t = buildKernelText(m);
      for (const row of SYSCALLS) if (row.entry) expect(t.symbols.has(row.entry)).toBe(true);
    }
    expect(SYSCALLS.filter((r) => r.entry === 'sys_rw').map((r) => r.name)).toEqual(['read', 'write', 'readv', 'writev']);
  });

  test('the file method call is a BTB-predicted indirect call without a mitigation and a retpoline with one', () => {
    const procs = () => [image('producer', producer(200), { stdoutPipe: 'p' }), image('consumer', consumer, { stdinPipe: 'p' })];
    const plain = run(procs());
    const spec = { ...DEFAULT_SPEC, spectreV2Mitigation: 'retpoline' as const, memoryMiB: 32, processes: procs() };
    const vm = new Vm(spec, HostMemory.create(hostMiBFor(32)), 1);
    const out: Buffer[] = [];
    vm.onConsole((port, b) => { if (port === 0) out.push(Buffer.from(b)); });
    vm.runToCompletion(50_000_000);
    const retp = vm.counters();
    expect(Buffer.concat(out).toString()).toBe(plain.stdout);
    // Two indirect calls per read/write (the table's and the method's) go through the thunk: 3 more instructions each.
    const rw = ['read', 'write'].reduce((s, n) => s + (plain.counters.syscalls[n] ?? 0), 0);
    const calls = Object.values(plain.counters.syscalls).reduce((s, n) => s + n, 0);
    expect(retp.instructions - plain.counters.instructions).toBeGreaterThanOrEqual(3 * (calls + rw));
    expect(retp.cycles).toBeGreaterThan(plain.counters.cycles);
  }, 120_000);
});
