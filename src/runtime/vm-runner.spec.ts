/**
 * VMs in real worker threads, driven through the typed protocol.
 */
import { assemble } from '../isa/assembler.js';
import { HostRuntime } from './host-runtime.js';
import { VmActionError, VmRunner } from './vm-runner.js';
import { DEFAULT_SPEC, VmSpec } from './vm.js';
import type { VmSnapshot } from './protocol.js';
import type { EventEmitter } from 'node:events';
import { jest } from '@jest/globals';
import { runProgram } from './run-program.js';
import { ConsoleBuffer } from './console-buffer.js';

const asm = (src: string) => assemble(`.globl _start\n.text\n${src}`).elf;

/** Prints `tag` `n` times with busy work in between, then exits with `code`. */
const printer = (tag: string, n: number, busy: number, code: number) => asm(`
_start:
  li s2, ${n}
1:
  li t0, ${busy}
2:
  addi t0, t0, -1
  bnez t0, 2b
  li a0, 1
  la a1, msg
  li a2, ${tag.length + 1}
  li a7, 64
  ecall
  addi s2, s2, -1
  bnez s2, 1b
  li a0, ${code}
  li a7, 93
  ecall
.data
msg: .ascii "${tag}\\n"
`);
const forever = asm('_start:\n  addi t0, t0, 1\n  j _start\n');

const spec = (elf: Uint8Array, over: Partial<VmSpec> = {}): VmSpec => ({
  ...DEFAULT_SPEC, memoryMiB: 8, ...over,
  processes: [{ name: 'main', elf, argv: ['main'], env: [], stdin: new Uint8Array() }],
});

const collect = (r: VmRunner) => () => r.console.bytes(0).toString();

describe('VM workers', () => {
  let host: HostRuntime;
  beforeEach(() => { host = new HostRuntime(128); });
  afterEach(() => host.shutdown());

  test('a VM runs in a worker to completion: console, state, process status, counters; its frames go back', async () => {
    const r = await host.startVm('vm-a', spec(printer('hello', 3, 1000, 5)));
    const out = collect(r);
    const final = await r.done;
    expect(final.state).toBe('stopped');
    expect(final.reason).toBe('poweroff');
    expect(out()).toBe('hello\nhello\nhello\n');
    expect(final.processes).toEqual([{ pid: 1, name: 'main', state: 'exited', exitCode: 5, status: 5 }]);
    expect(final.counters!.syscalls).toEqual({ exit: 1, write: 3 });
    expect(r.counters().instructions).toBe(final.counters!.instructions);
    expect(host.usage()).toMatchObject({ free: host.memory.frames, byVm: {} });
  }, 300_000);

  test('ten VMs on one host at once do not interfere, and the memory accounting returns to zero', async () => {
    const runners = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      host.startVm(`vm-${i}`, spec(printer(`vm${i}`, 4, 20_000 * (i + 1), i)))));
    expect(Object.keys(host.usage().byVm).length).toBeGreaterThan(0);
    const outs = runners.map(collect);
    const finals = await Promise.all(runners.map((r) => r.done));
    finals.forEach((f, i) => {
      expect(f.state).toBe('stopped');
      expect(outs[i]()).toBe(`vm${i}\n`.repeat(4));
      expect(f.processes[0].status).toBe(i);
    });
    expect(host.usage()).toMatchObject({ free: host.memory.frames, byVm: {} });
  }, 300_000);

  test('pause and resume keep the guest exact: same console bytes and counters as an uninterrupted run', async () => {
    const elf = printer('tick', 20, 100_000, 0);
    const want = runProgram(elf, { memoryMiB: 8 });
    const r = await host.startVm('p', spec(elf), { sliceQuanta: 1 });
    const out = collect(r);
    for (let i = 0; i < 5 && r.state === 'running'; i++) {
      await r.pause().catch(() => undefined);
      await new Promise((res) => setTimeout(res, 5));
      await r.resume().catch(() => undefined);
    }
    const final = await r.done;
    expect(out()).toBe(want.stdout.toString());
    expect(final.counters).toEqual(want.counters);
  }, 300_000);

  test('a looping guest: pause holds it still, stop ends it within a second; bad actions change nothing', async () => {
    const r = await host.startVm('loop', spec(forever));
    await new Promise((res) => setTimeout(res, 100));
    const paused = await r.pause();
    expect(paused.state).toBe('paused');
    const a = r.counters().instructions;
    await new Promise((res) => setTimeout(res, 100));
    expect(r.counters().instructions).toBe(a);
    expect(a).toBeGreaterThan(0);
    await expect(r.pause()).rejects.toThrow(/pause is not allowed while the VM is paused/);
    await expect(r.request({ type: 'inject-memory-error', frame: -1 })).rejects.toMatchObject({ kind: 'invalid' });
    await expect(r.pause()).rejects.toMatchObject({ kind: 'not-allowed' });
    expect((await r.resume()).state).toBe('running');
    const final = await r.stop();
    expect(final).toMatchObject({ state: 'stopped', reason: 'stopped' });
    await expect(r.resume()).rejects.toBeInstanceOf(VmActionError);
    expect(host.usage().free).toBe(host.memory.frames);
  }, 300_000);

  test('a worker that dies marks only its VM crashed; the host takes its frames back and other VMs go on', async () => {
    const victim = await host.startVm('victim', spec(forever));
    const other = await host.startVm('other', spec(printer('fine', 5, 200_000, 0)));
    const out = collect(other);
    await new Promise((res) => setTimeout(res, 50));
    const dead = await victim.kill();
    expect(dead.state).toBe('crashed');
    expect(dead.reason).toMatch(/^worker-exited/);
    expect((await other.done).state).toBe('stopped');
    expect(out()).toBe('fine\n'.repeat(5));
    expect(host.usage().free).toBe(host.memory.frames);
  }, 300_000);

  test("the run's notifications that arrive in one go with the start's answer reach listeners attached in onStarted, 'final' included", async () => {
    // Node reads the queued messages of a worker that has already ended in one synchronous run
    // (a short guest on a busy main thread): the start's answer, the console, 'final'. Code that
    // awaits startVm runs only after all of them, so a listener attached then misses the VM's end
    // (a VM stayed `running` with a stopped worker in the 200-VM stress on a loaded machine).
    // That run is replayed here on a real worker before it answers: its own answer comes later.
    const seen: string[] = [];
    const started = host.startVm('burst', spec(forever), {
      onStarted: (r) => {
        r.on('console', (out: Uint8Array) => seen.push(`console ${Buffer.from(out).toString()}`));
        r.once('final', (s: VmSnapshot) => seen.push(`final ${s.state} ${s.reason}`));
      },
    });
    const runner = host.running().at(-1)!;
    const worker = (runner as unknown as { worker: EventEmitter }).worker;
    const snap = (state: string, reason: string | null) => ({ state, reason, vcpus: [], processes: [], counters: null });
    worker.emit('message', { type: 'reply', id: 1, ok: true, action: 'start', snapshot: snap('running', null), data: null });
    worker.emit('message', { type: 'console', stdout: new TextEncoder().encode('hi\n'), stderr: new Uint8Array() });
    worker.emit('message', { type: 'final', snapshot: snap('stopped', 'poweroff') });
    try {
      const r = await started;
      expect(r).toBe(runner);
      const late = jest.fn();
      r.once('final', late);
      expect(await r.done).toMatchObject({ state: 'stopped', reason: 'poweroff' });
      expect(seen).toEqual(['console hi\n', 'final stopped poweroff']);
      expect(late).not.toHaveBeenCalled();
    } finally {
      await runner.kill(); // the real worker, still running its guest
    }
  }, 300_000);

  test('a VM that cannot boot fails its start with the reason and holds nothing', async () => {
    const small = new HostRuntime(1);
    const bigBss = asm('_start:\n  j _start\n.bss\n  .space 4194304\n');
    await expect(small.startVm('big', spec(bigBss, { memoryMiB: 64 }))).rejects.toThrow(/out-of-host-memory/);
    expect(small.usage().free).toBe(small.memory.frames);
  }, 300_000);
});

describe('the worker door', () => {
  let host: HostRuntime;
  beforeEach(() => { host = new HostRuntime(64); });
  afterEach(() => host.shutdown());

  test('replies are typed per request: memory-map and resolve-frame answer with their data', async () => {
    const r = await host.startVm('typed', spec(forever));
    const pages = await r.ask({ type: 'memory-map' });
    expect(pages.length).toBeGreaterThan(0);
    const frame = await r.ask({ type: 'resolve-frame', target: { gpa: pages[0].gpa } });
    expect(frame * 4096).toBe(pages[0].hpa);
    await r.stop();
  }, 300_000);

  test('a worker that does not answer in time gives a timeout error', async () => {
    // A slice of 50 million quanta keeps the worker from reading messages for a long time.
    const r = await host.startVm('slow', spec(forever), { sliceQuanta: 50_000_000 });
    await new Promise((res) => setTimeout(res, 300)); // inside its first slice by now
    const e = await r.request({ type: 'read-state' }, 20).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(VmActionError);
    expect((e as VmActionError).kind).toBe('timeout');
    await r.kill();
  }, 300_000);

  test('console output arrives in coalesced batches with every byte in order (a chatty guest)', async () => {
    const r = await host.startVm('chatty', spec(printer('0123456789'.repeat(5) + 'abcdefghi', 5000, 1, 0)));
    let batches = 0;
    r.on('console', () => { batches++; });
    const final = await r.done;
    expect(final.reason).toBe('poweroff');
    const line = '0123456789'.repeat(5) + 'abcdefghi\n';
    expect(r.console.total[0]).toBe(5000 * line.length);
    expect(r.console.bytes(0).toString()).toBe(line.repeat(5000));
    expect(batches).toBeLessThan(5000);
  }, 300_000);
});

describe('console buffer', () => {
  test('keeps the newest bytes per port up to its capacity and flags truncation', () => {
    const c = new ConsoleBuffer(10);
    c.push(0, Buffer.from('hello '));
    c.push(1, Buffer.from('err'));
    expect(c.truncated).toEqual([false, false]);
    c.push(0, Buffer.from('world!!'));
    expect(c.bytes(0).toString()).toBe('lo world!!');
    expect(c.truncated).toEqual([true, false]);
    expect(c.total).toEqual([13, 3]);
    expect(c.bytes(1).toString()).toBe('err');
  });
});
