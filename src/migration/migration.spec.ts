/**
 * Live migration between two hosts in one thread, over a real loopback TCP connection: the VM
 * keeps running during pre-copy, continues on the destination with identical memory and state,
 * and ends with the same console output as an undisturbed run; poisoned pages travel as error
 * metadata (technique on) or panic the host (off); a broken stream leaves the source running.
 */
import { HostMemory } from '../hypervisor/host-memory.js';
import { PAGE_SIZE } from '../mmu/phys.js';
import { builtinElf } from '../runtime/workloads.js';
import { DEFAULT_SPEC, GadgetReach, Vm, VmSpec } from '../runtime/vm.js';
import { buildKernelText } from '../guest/kernel-text.js';
import { resolveTechniques } from '../techniques/catalogue.js';
import { btiAttacker, getpidsThenPrint, syscallMix } from '../testing/guest-programs.js';
import { connect } from 'node:net';
import { join } from 'node:path';
import { gccBuild, tempDir, toolsAvailable } from '../testing/toolchain.js';
import { MigrationDestination, DestinationFault } from './destination.js';
import { encodeRecord, MAGIC, PayloadWriter, PROTOCOL_VERSION } from './wire.js';
import { MigrationFailed, MigrationHostPanic, MigrationOutcome, MigrationParams, MigrationSource, MigrationStats } from './source.js';

const memtouch = (argv: string[]) => ({ name: 'memtouch', elf: builtinElf('memtouch'), argv: ['memtouch', ...argv], env: [], stdin: new Uint8Array() });
/** p1 keeps dirtying 2 MiB; p2 and p3 touch 1 MiB once, sleep 100 ms, then touch it twice more. */
const SPEC: VmSpec = { ...DEFAULT_SPEC, memoryMiB: 32, processes: [memtouch(['2', '200']), memtouch(['1', '3', '100']), memtouch(['1', '3', '100'])] };
const PARAMS: MigrationParams = { migrationId: 'test', maxDowntimeMs: 1, bandwidthMiBps: 2048, maxRounds: 10, timeoutS: 60, technique: true };
/** Console lines in order per port, sorted: migration costs virtual time (dirty-log exits), so how lines of different processes interleave may change, nothing else. */
const lines = (chunks: string[]) => chunks.join('').split('\n').sort();
const MMAP_BASE = 0x4000_0000;

function consoleOf(vm: Vm): string[] {
  const out: string[] = [];
  vm.onConsole((port, b) => out.push(`${port}:${Buffer.from(b).toString()}`));
  return out;
}

/** Runs `vm` with a migration to a fresh destination; returns the destination VM and the outcome, or the error. */
async function migrate(vm: Vm, dstHost: HostMemory, params: Partial<MigrationParams> = {}, failAt: DestinationFault | null = null,
  beforeSwitch?: (src: Vm) => void, eachSlice?: (src: Vm, slice: number) => void) {
  const dst = new MigrationDestination(vm.spec, () => Vm.incoming(vm.spec, dstHost, 7), failAt);
  const port = await dst.listen();
  const progress: MigrationStats[] = [];
  const src = new MigrationSource(vm, { ...PARAMS, ...params }, { progress: (s) => progress.push(s), latentError: () => undefined });
  let outcome: MigrationOutcome | null = null;
  try {
    await src.open(port);
    for (let slice = 0; ; slice++) {
      expect(vm.run(10)).toBe('running');
      eachSlice?.(vm, slice);
      const r = await src.afterSlice();
      if (r !== 'running') { outcome = r; break; }
    }
  } catch (e) {
    src.abort();
    // Settles once the destination has noticed and released what it took.
    const dstSettled = dst.done.then(() => null, (f: Error) => f);
    return { error: e as Error, progress, dst: null, outcome: null, src, dstSettled };
  }
  beforeSwitch?.(vm);
  return { error: null, progress, dst: await dst.done, outcome, src };
}

describe('live migration (pre-copy over TCP)', () => {
  let reference: { console: string[]; statuses: number[] };
  beforeAll(() => {
    const vm = new Vm(SPEC, HostMemory.create(64), 1);
    const console = consoleOf(vm);
    vm.runToCompletion();
    reference = { console, statuses: vm.processes().map((p) => p.status!) };
  });

  test('the VM continues on the destination: same memory, same state, same console as an undisturbed run', async () => {
    const a = HostMemory.create(64), b = HostMemory.create(64);
    const vm = new Vm(SPEC, a, 1);
    const console = consoleOf(vm);
    vm.run(30);
    let sourcePages = new Map<number, Buffer>();
    let sourceRegs: number[][] = [];
    const m = await migrate(vm, b, {}, null, (src) => {
      sourcePages = new Map([...src.khv.gstage.backed()].map(({ gpa, frame }) => [gpa, Buffer.from(src.khv.mem.u8.subarray(frame * PAGE_SIZE, (frame + 1) * PAGE_SIZE))]));
      sourceRegs = src.vcpus.map((v) => [...v.hart.x, v.hart.pc, v.hart.ctr[0]]);
    });
    expect(m.error).toBeNull();
    const dst = m.dst!;
    // Every page byte-identical, and nothing more or less backed.
    const dstPages = new Map([...dst.khv.gstage.backed()].map(({ gpa, frame }) => [gpa, Buffer.from(dst.khv.mem.u8.subarray(frame * PAGE_SIZE, (frame + 1) * PAGE_SIZE))]));
    expect([...dstPages.keys()]).toEqual([...sourcePages.keys()]);
    for (const [gpa, bytes] of sourcePages) expect(dstPages.get(gpa)!.equals(bytes)).toBe(true);
    expect(dst.vcpus.map((v) => [...v.hart.x, v.hart.pc, v.hart.ctr[0]])).toEqual(sourceRegs);
    expect(m.outcome!.destinationDigest).toBe(m.outcome!.sourceDigest);
    // Several rounds: p1 keeps dirtying, caught by write protection.
    expect(m.outcome!.round).toBeGreaterThan(1);
    expect(m.outcome!.dirtyLogExits).toBeGreaterThan(0);
    expect(m.progress.map((p) => p.round)).toEqual(m.progress.map((_p, i) => i + 1));
    for (const p of m.progress) expect([p.expectedDowntimeMs, p.expectedDowntimeWallMs].every((x) => Number.isFinite(x) && x >= 0)).toBe(true);
    // The last round's dirty set is what stop-and-copy sent: its expected virtual downtime is the actual one.
    expect(m.outcome!.downtimeVirtualMs).toBeGreaterThanOrEqual(m.progress[m.progress.length - 1].expectedDowntimeMs);
    vm.stop('migrated');
    expect(a.usage().byOwner[1]).toBeUndefined();
    dst.onConsole((port, bytes) => console.push(`${port}:${Buffer.from(bytes).toString()}`));
    expect(dst.runToCompletion()).toBe('stopped');
    expect(lines(console)).toEqual(lines(reference.console));
    expect(dst.processes().map((p) => p.status)).toEqual(reference.statuses);
  });

  test('disks and technique 5 cross: chunks written before and during pre-copy arrive over the image base; the UHV counters carry on', async () => {
    const a = HostMemory.create(64), b = HostMemory.create(64);
    const image = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff);
    const spec: VmSpec = { ...SPEC, disks: [{ sizeBytes: 1 << 20 }, { sizeBytes: 5120, image }], techniques: resolveTechniques({ uhvDirectTransitions: { enabled: true } }) };
    const vm = new Vm(spec, a, 1);
    const console = consoleOf(vm);
    vm.disks[0].write(3 * 4096 + 5, Uint8Array.of(1, 2, 3));
    vm.run(30);
    let disks: Buffer[] = [];
    let uhv = vm.counters().uhv;
    const m = await migrate(vm, b, {}, null, (src) => {
      disks = src.disks.map((d) => Buffer.from(d.slice(0, d.sizeBytes)));
      uhv = src.counters().uhv;
    }, (src, slice) => { if (slice < 3) src.disks[slice % 2].write(4096 * slice + 100, Uint8Array.of(9, slice)); });
    expect(m.error).toBeNull();
    const dst = m.dst!;
    expect(m.outcome!.diskChunksSent).toBeGreaterThanOrEqual(3);
    dst.disks.forEach((d, i) => expect(Buffer.from(d.slice(0, d.sizeBytes)).equals(disks[i])).toBe(true));
    expect(disks[1].subarray(0, 100).equals(Buffer.from(image.subarray(0, 100)))).toBe(true);
    expect(dst.counters().uhv).toEqual(uhv);
    expect(uhv.transitionsByEdge['guest->uhv']).toBeGreaterThan(0);
    vm.stop('migrated');
    dst.onConsole((port, bytes) => console.push(`${port}:${Buffer.from(bytes).toString()}`));
    expect(dst.runToCompletion()).toBe('stopped');
    expect(lines(console)).toEqual(lines(reference.console));
  });

  (toolsAvailable('gcc') ? test : test.skip)('a guest writing, seeking, reading back and fsyncing /dev/vda migrated in the middle ends as an undisturbed run: same output, same disk', async () => {
    const dir = tempDir();
    const elf = gccBuild([join(process.cwd(), 'test/block/blockio.c')], join(dir, 'blockio.elf'));
    const spec: VmSpec = {
      ...DEFAULT_SPEC, memoryMiB: 32, disks: [{ sizeBytes: 1 << 20 }],
      processes: [{ name: 'blockio', elf, argv: ['blockio', '/dev/vda'], env: [], stdin: new Uint8Array() }],
    };
    const ref = new Vm(spec, HostMemory.create(64), 1);
    const refConsole = consoleOf(ref);
    ref.runToCompletion();
    const refBlock = ref.counters().uhv.block[0];
    const a = HostMemory.create(64), b = HostMemory.create(64);
    const vm = new Vm(spec, a, 1);
    const console = consoleOf(vm);
    vm.run(2);
    let atSwitch = vm.counters().uhv.block[0];
    // Pre-copy rounds run while the guest keeps writing the disk (its chunks are dirty-logged like RAM).
    const m = await migrate(vm, b, { maxDowntimeMs: 0.01, maxRounds: 4 }, null, (src) => { atSwitch = src.counters().uhv.block[0]; });
    expect(m.error).toBeNull();
    expect(atSwitch.requests).toBeGreaterThan(0);
    expect(atSwitch.requests).toBeLessThan(refBlock.requests);
    expect(m.outcome!.diskChunksSent).toBeGreaterThan(0);
    vm.stop('migrated');
    const dst = m.dst!;
    dst.onConsole((port, bytes) => console.push(`${port}:${Buffer.from(bytes).toString()}`));
    expect(dst.runToCompletion()).toBe('stopped');
    expect(dst.processes()[0].status).toBe(0);
    expect(console.join('')).toBe(refConsole.join(''));
    expect(Buffer.from(dst.disks[0].slice(0, 1 << 20)).equals(Buffer.from(ref.disks[0].slice(0, 1 << 20)))).toBe(true);
    expect(dst.counters().uhv.block[0]).toEqual(refBlock);
  }, 120_000);

  test('technique 2 crosses mid-learning: frequency tables, trampolines and counters carry on; the output is that of an undisturbed run', async () => {
    const mix = (kind: 'writeZero' | 'readZero') => syscallMix(1500, [[kind, 3], ['getpid', 1], ['writeErr', 1]]);
    const spec: VmSpec = {
      ...DEFAULT_SPEC, memoryMiB: 32, spectreV2Mitigation: 'retpoline',
      techniques: resolveTechniques({ instanceCallInlining: { enabled: true, updateIntervalUs: 100 } }),
      processes: [{ name: 'w', elf: mix('writeZero'), argv: ['w'], env: [], stdin: new Uint8Array() }, { name: 'r', elf: mix('readZero'), argv: ['r'], env: [], stdin: new Uint8Array() }],
    };
    const undisturbed = new Vm(spec, HostMemory.create(64), 1);
    const want = consoleOf(undisturbed);
    undisturbed.runToCompletion();
    const vm = new Vm(spec, HostMemory.create(64), 1);
    const console = consoleOf(vm);
    while (Object.values(vm.counters().instanceCallInlining.perProcess).filter((q) => q.targets.length > 0).length < 2) expect(vm.run(1)).toBe('running');
    let before = vm.counters().instanceCallInlining;
    const m = await migrate(vm, HostMemory.create(64), {}, null, (src) => { before = src.counters().instanceCallInlining; });
    expect(m.error).toBeNull();
    const dst = m.dst!;
    // Mid-learning: both processes had learned targets and were still counting.
    expect(Object.keys(before.perProcess)).toEqual(['1', '2']);
    for (const pid of ['1', '2']) expect(before.perProcess[pid].targets.length).toBeGreaterThan(0);
    expect(dst.counters().instanceCallInlining).toEqual(before);
    vm.stop('migrated');
    dst.onConsole((port, bytes) => console.push(`${port}:${Buffer.from(bytes).toString()}`));
    expect(dst.runToCompletion()).toBe('stopped');
    // Per port: the two processes' stdout lines, and their 1-byte stderr writes (a migration costs virtual time, so how the two interleave may change, nothing else).
    const ports = (chunks: string[]) => [0, 1].map((port) => chunks.filter((c) => c.startsWith(`${port}:`)).map((c) => c.slice(2)).join('')).map((t, port) => (port === 0 ? t.split('\n').sort() : [...t].sort()).join('|'));
    expect(ports(console)).toEqual(ports(want));
    expect(dst.processes().map((p) => p.status)).toEqual([0, 0]);
    // The learned trampolines went on working: no call fell back to an outline trampoline on the destination, and the hits kept counting.
    const after = dst.counters().instanceCallInlining;
    expect(after.fallbacks).toBe(before.fallbacks);
    for (const pid of ['1', '2']) expect(after.perProcess[pid].hits).toBeGreaterThan(before.perProcess[pid].hits);
    expect(after.regenerations).toBeGreaterThanOrEqual(before.regenerations);
  }, 120_000);

  test('branch target injection\'s counters cross: the gadget reach and the BTB-predicted kernel calls carry on, the reach is not reported again', async () => {
    const text = buildKernelText('none');
    const image = (name: string, elf: Uint8Array) => ({ name, elf, argv: [name], env: [], stdin: new Uint8Array() });
    const spec: VmSpec = {
      ...DEFAULT_SPEC, memoryMiB: 16,
      processes: [image('attacker', btiAttacker(text.symbols.get('call_site')!, text.symbols.get('gadget')!).elf), image('victim', getpidsThenPrint(20000, 'victim ok\n', 0))],
    };
    const vm = new Vm(spec, HostMemory.create(64), 1);
    const reports: GadgetReach[] = [];
    vm.onGadgetReach((e) => reports.push(e));
    while (vm.counters().speculativeGadgetReaches === 0) expect(vm.run(1)).toBe('running');
    expect(reports).toHaveLength(1);
    let before = vm.counters();
    const m = await migrate(vm, HostMemory.create(64), {}, null, (src) => { before = src.counters(); });
    expect(m.error).toBeNull();
    const dst = m.dst!;
    vm.stop('migrated');
    expect(dst.counters().speculativeGadgetReaches).toBe(1);
    expect(dst.counters().btbPredictedKernelCalls).toBe(before.btbPredictedKernelCalls);
    expect(before.btbPredictedKernelCalls).toBeGreaterThan(0);
    const again: GadgetReach[] = [];
    dst.onGadgetReach((e) => again.push(e));
    expect(dst.runToCompletion()).toBe('stopped');
    expect(dst.processes().map((p) => p.status)).toEqual([139, 0]);
    expect(again).toEqual([]);
    expect(dst.counters().btbPredictedKernelCalls).toBeGreaterThan(before.btbPredictedKernelCalls);
  }, 120_000);

  test('technique on: a known and a latent poisoned page travel as error metadata; their processes die with SIGBUS on the destination', async () => {
    const a = HostMemory.create(64), b = HostMemory.create(64);
    const vm = new Vm(SPEC, a, 1);
    const console = consoleOf(vm);
    vm.run(120); // p2 and p3 have touched their memory once and sleep
    vm.injectMemoryError(vm.frameOf({ pid: 2, va: MMAP_BASE + 5 * PAGE_SIZE }), false);
    vm.injectMemoryError(vm.frameOf({ pid: 3, va: MMAP_BASE + 9 * PAGE_SIZE }), true);
    const m = await migrate(vm, b);
    expect(m.error).toBeNull();
    expect(m.outcome!.errorPages).toBe(2);
    expect(vm.processes().map((p) => p.state)).toEqual(['running', 'sleeping', 'sleeping']);
    vm.stop('migrated');
    const dst = m.dst!;
    const failures: Array<{ pid: number | null }> = [];
    dst.kernel.onMemoryFailure = (e) => failures.push(e);
    dst.onConsole((port, bytes) => console.push(`${port}:${Buffer.from(bytes).toString()}`));
    expect(dst.runToCompletion()).toBe('stopped');
    expect(failures.map((f) => f.pid).sort()).toEqual([2, 3]);
    const st = dst.processes();
    expect(st.map((p) => p.status)).toEqual([0, 135, 135]);
    expect(st[1].faultAddress).toBe(MMAP_BASE + 5 * PAGE_SIZE);
    expect(st[2].faultAddress).toBe(MMAP_BASE + 9 * PAGE_SIZE);
    // p1's output is the undisturbed run's; p2 and p3 printed only their first pass.
    const mine = lines(console), ref = lines(reference.console);
    expect(ref.length - mine.length).toBe(4);
    for (const l of mine) expect(ref).toContain(l);
  });

  test('technique off: reading a latent poisoned page during the copy panics the host', async () => {
    const vm = new Vm(SPEC, HostMemory.create(64), 1);
    vm.run(120);
    vm.injectMemoryError(vm.frameOf({ pid: 3, va: MMAP_BASE }), true);
    const m = await migrate(vm, HostMemory.create(64), { technique: false });
    expect(m.error).toBeInstanceOf(MigrationHostPanic);
  });

  test.each([
    ['a dropped connection', { dropConnectionAfterPages: 100 }, null],
    ['a destination that fails on accept', {}, 'target-ready'],
    ['a destination that fails mid-stream', {}, 'running'],
  ] as const)('%s fails the migration cleanly; the source VM runs on to the same end and the destination keeps nothing', async (_n, params, failAt) => {
    const a = HostMemory.create(64), b = HostMemory.create(64);
    const vm = new Vm(SPEC, a, 1);
    const console = consoleOf(vm);
    vm.run(30);
    const m = await migrate(vm, b, params, failAt as DestinationFault | null);
    expect(m.error).toBeInstanceOf(MigrationFailed);
    expect(vm.khv.gstage.dirty).toBeNull();
    expect(await m.dstSettled).toBeInstanceOf(Error);
    expect(b.usage().byOwner[7]).toBeUndefined();
    expect(vm.runToCompletion()).toBe('stopped');
    expect(lines(console)).toEqual(lines(reference.console));
  });

  test('a corrupted record after a valid start fails the destination cleanly and frees what it took', async () => {
    const host = HostMemory.create(64);
    const dst = new MigrationDestination(SPEC, () => Vm.incoming(SPEC, host, 7));
    const port = await dst.listen();
    const hello = new PayloadWriter().bytes(Buffer.from(MAGIC)).u16(PROTOCOL_VERSION).u32(PAGE_SIZE).u32(32 << 20).u16(1).u16(1).str('x').done();
    const page = encodeRecord('RAM_PAGE', Buffer.concat([Buffer.from([3, 0, 0, 0]), Buffer.alloc(PAGE_SIZE, 0xab)]));
    const bad = Buffer.from(encodeRecord('RAM_PAGE', Buffer.concat([Buffer.from([4, 0, 0, 0]), Buffer.alloc(PAGE_SIZE, 0xcd)])));
    bad[100] ^= 0x10;
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.write(Buffer.concat([encodeRecord('HELLO', hello), page, bad]));
    await expect(dst.done).rejects.toThrow(/checksum/);
    expect(host.usage().byOwner[7]).toBeUndefined();
    s.destroy();
  });

  test('the destination rejects a stream for a different VM shape', async () => {
    const vm = new Vm(SPEC, HostMemory.create(64), 1);
    vm.run(5);
    const dst = new MigrationDestination({ ...SPEC, memoryMiB: 16 }, () => Vm.incoming({ ...SPEC, memoryMiB: 16 }, HostMemory.create(64), 7));
    const src = new MigrationSource(vm, PARAMS, { progress: () => undefined, latentError: () => undefined });
    await src.open(await dst.listen());
    await expect(dst.done).rejects.toThrow(/32 MiB/);
    src.abort();
  });
});
