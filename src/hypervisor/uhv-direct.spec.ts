import { builtinElf } from '../runtime/workloads.js';
import { runProgram, RunResult } from '../runtime/run-program.js';
import { DEFAULT_SPEC, Vm } from '../runtime/vm.js';
import { resolveTechniques, TechniqueConfigError, UHV_FIELD_NAMES, UHV_ROUTABLE_EXITS, validateTechniques } from '../techniques/catalogue.js';
import { COSTS } from '../uarch/costs.js';
import { HostMemory } from './host-memory.js';
import { DEVICE_RANGES, ROUTE_KEYS } from './exit-routing.js';
import { EXIT_CODE, FieldFault } from './vm-control.js';
import { FIELD, GRANTABLE_FIELDS, VMCS_FIELDS } from './vmcs-fields.js';
import { BLOCK_OFFSET, BLOCK_STRIDE } from './platform.js';
import { VIRTIO_MAGIC, VIRTIO_MMIO } from './virtio-blk.js';
import { VmFault } from './exits.js';

const LINES = 40;
const consoleRun = (t5: Record<string, unknown> | null): RunResult => runProgram(builtinElf('console'), {
  argv: ['console', String(LINES)],
  ...(t5 ? { techniques: resolveTechniques({ uhvDirectTransitions: t5 }) } : {}),
});
const uhvExits = (r: RunResult) => (r.counters.exits.mmio ?? 0) + (r.counters.exits.hypercall ?? 0);
const exitTransitions = (r: RunResult) => {
  const e = r.counters.uhv.transitionsByEdge;
  return { viaKhv: e['khv->uhv'], direct: e['guest->uhv'] };
};

describe('technique 5: exits straight to the UHV', () => {
  const off = consoleRun(null);
  const on = consoleRun({ enabled: true });

  test('identical output; a UHV exit drops from 4 transitions to 2 and every field access becomes direct', () => {
    expect(on.stdout).toEqual(off.stdout);
    expect(on.status).toBe(0);
    expect(off.status).toBe(0);
    expect(off.stdout.toString().split('\n').length).toBe(LINES + 1);
    expect(on.counters.exits).toEqual(off.counters.exits);
    // Two writes per line plus the power-off: MMIO exits, all UHV exits.
    expect(off.counters.exits.mmio).toBe(2 * LINES + 1);
    const fa = off.counters.uhv.fieldAccesses;
    expect(fa.direct).toBe(0);
    expect(fa.refused).toBe(0);
    expect(on.counters.uhv.fieldAccesses).toEqual({ direct: fa.mediated, mediated: 0, refused: 0 });
    // Off: guest->KHV->UHV->KHV->guest per UHV exit (the KHV-only exits add 2 each) and 2 per mediated access.
    const khvOnly = Object.entries(off.counters.exits).filter(([r]) => r !== 'mmio' && r !== 'hypercall').reduce((n, [, c]) => n + c, 0);
    expect(off.counters.transitions).toBe(4 * uhvExits(off) + 2 * khvOnly + 2 * fa.mediated);
    expect(exitTransitions(off)).toEqual({ viaKhv: uhvExits(off) + fa.mediated, direct: 0 });
    // On: guest->UHV->guest.
    expect(on.counters.transitions).toBe(2 * uhvExits(on) + 2 * khvOnly);
    expect(exitTransitions(on)).toEqual({ viaKhv: 0, direct: uhvExits(on) });
    expect(on.counters.uhv.transitionsByEdge['uhv->guest']).toBe(uhvExits(on));
  });

  test('cycles per MMIO exit fall by the KHV<->UHV round trip and the mediated field accesses', () => {
    const a = off.counters.uhv.exitCycles.mmio, b = on.counters.uhv.exitCycles.mmio;
    // A doorbell store: exit reason, qualification, the stored register, pc advance = 4 accesses.
    expect(a.perExit).toBe(COSTS.vmExit + COSTS.khvUhvRoundTrip + 4 * COSTS.uhvFieldCall);
    expect(b.perExit).toBe(COSTS.vmExit + 4 * COSTS.base);
    expect(off.counters.cycles - on.counters.cycles).toBe(a.cycles - b.cycles + (off.counters.uhv.exitCycles.hypercall?.cycles ?? 0) - (on.counters.uhv.exitCycles.hypercall?.cycles ?? 0));
    expect(on.counters.instructions).toBe(off.counters.instructions);
  });

  test('the maps decide per exit and per field: a console routed through the KHV, registers mediated', () => {
    const mixed = consoleRun({ enabled: true, exitRouting: { 'mmio.console': 'khv' }, fieldAccess: { guestRegs: '' } });
    expect(mixed.stdout).toEqual(off.stdout);
    // Doorbells go through the KHV; the power-off store is still direct.
    expect(exitTransitions(mixed)).toEqual({ viaKhv: 2 * LINES + mixed.counters.uhv.fieldAccesses.mediated, direct: 1 });
    // Each store reads one register, mediated; the other fields stay direct.
    expect(mixed.counters.uhv.fieldAccesses.mediated).toBe(2 * LINES + 1);
    expect(mixed.counters.uhv.fieldAccesses.direct).toBe(3 * (2 * LINES + 1));
  });

  test('a change on a running VM applies at the next exit', () => {
    const host = HostMemory.create(48);
    const vm = new Vm({ ...DEFAULT_SPEC, memoryMiB: 16, processes: [{ name: 'c', elf: builtinElf('console'), argv: ['c', '400'], env: [], stdin: new Uint8Array() }] }, host, 1);
    vm.run(2);
    const before = vm.counters().uhv.transitionsByEdge['guest->uhv'];
    expect(before).toBe(0);
    vm.setTechniques(resolveTechniques({ uhvDirectTransitions: { enabled: true } }));
    expect(vm.runToCompletion()).toBe('stopped');
    expect(vm.counters().uhv.transitionsByEdge['guest->uhv']).toBeGreaterThan(0);
  });
});

describe('technique 5 on the block-I/O workload (the guest driver behind /dev/vda)', () => {
  const blockRun = (t5: Record<string, unknown> | null): RunResult => runProgram(builtinElf('blockio'), {
    argv: ['blockio', '1'], disks: [{ sizeBytes: 1 << 20 }],
    ...(t5 ? { techniques: resolveTechniques({ uhvDirectTransitions: t5 }) } : {}),
  });
  const off = blockRun(null);
  const on = blockRun({ enabled: true });

  test('identical output and disk; 4 transitions per UHV exit become 2; cycles per exit fall by exactly the modelled amount', () => {
    expect(off.stdout.toString()).toMatch(/^written 00100000\nread 00100000\nchecksum [0-9a-f]{8}\nmismatches 00000000\n$/);
    expect(on.stdout).toEqual(off.stdout);
    expect([on.status, off.status]).toEqual([0, 0]);
    expect(Buffer.from(on.vm.disks[0].slice(0, 1 << 20)).equals(Buffer.from(off.vm.disks[0].slice(0, 1 << 20)))).toBe(true);
    expect(on.counters.exits).toEqual(off.counters.exits);
    expect(on.counters.uhv.block).toEqual(off.counters.uhv.block);
    // 16 writes and 16 reads of 64 KiB, two 32 KiB requests each, and one flush.
    expect(off.counters.uhv.block[0]).toMatchObject({ requests: 65, bytesRead: 1 << 20, bytesWritten: 1 << 20, flushes: 1, errors: 0 });
    expect(exitTransitions(off)).toEqual({ viaKhv: uhvExits(off) + off.counters.uhv.fieldAccesses.mediated, direct: 0 });
    expect(exitTransitions(on)).toEqual({ viaKhv: 0, direct: uhvExits(on) });
    // Every MMIO exit of the driver (register loads and stores, the notifies) makes 4 field accesses.
    const a = off.counters.uhv.exitCycles.mmio, b = on.counters.uhv.exitCycles.mmio;
    expect(a.perExit).toBe(COSTS.vmExit + COSTS.khvUhvRoundTrip + 4 * COSTS.uhvFieldCall);
    expect(b.perExit).toBe(COSTS.vmExit + 4 * COSTS.base);
    expect(on.counters.instructions).toBe(off.counters.instructions);
    expect(off.counters.cycles - on.counters.cycles).toBe(a.cycles - b.cycles + off.counters.uhv.exitCycles.hypercall.cycles - on.counters.uhv.exitCycles.hypercall.cycles);
  });
});

describe('technique 5: the KHV keeps the fields that would let the UHV escape', () => {
  test.each(VMCS_FIELDS.filter((f) => f.khvOnly).map((f) => f.name))('a UHV write to %s faults, changes nothing and is reported', (name) => {
    const host = HostMemory.create(48);
    const vm = new Vm({ ...DEFAULT_SPEC, memoryMiB: 16, techniques: resolveTechniques({ uhvDirectTransitions: { enabled: true } }), processes: [{ name: 'h', elf: builtinElf('hello'), argv: ['h'], env: [], stdin: new Uint8Array() }] }, host, 1);
    const faults: FieldFault[] = [];
    vm.onFieldFault((f) => faults.push(f));
    const v = vm.vcpus[0], h = v.hart;
    const snapshot = { hgatp: h.hgatp, hedeleg: h.hedeleg, medeleg: h.medeleg, mideleg: h.mideleg, hideleg: h.hideleg, mie: h.mie, bits: [...vm.khv.control.bits], x: [...h.x] };
    const c = vm.khv.control;
    c.begin(h, v, EXIT_CODE.Mmio);
    expect(c.writeReserved(FIELD[name], 0x1234)).toBe(false);
    c.end();
    expect({ hgatp: h.hgatp, hedeleg: h.hedeleg, medeleg: h.medeleg, mideleg: h.mideleg, hideleg: h.hideleg, mie: h.mie, bits: [...vm.khv.control.bits], x: [...h.x] }).toEqual(snapshot);
    expect(faults).toEqual([{ field: name, write: true, value: 0x1234, pc: h.sepc }]);
    expect(vm.counters().uhv.fieldAccesses.refused).toBe(1);
    expect(vm.runToCompletion()).toBe('stopped');
    vm.stop();
  });

  test('the catalogue grants exactly the fields the KHV does not keep, and routes exactly the device ranges and hypercall', () => {
    expect(GRANTABLE_FIELDS).toEqual([...UHV_FIELD_NAMES]);
    expect(ROUTE_KEYS).toEqual([...UHV_ROUTABLE_EXITS]);
    expect(new Set(DEVICE_RANGES.map((r) => ROUTE_KEYS[r.route])).size).toBe(DEVICE_RANGES.length);
  });

  test.each([
    [{ fieldAccess: { gstageRoot: 'rw' } }, 'techniques.uhvDirectTransitions.fieldAccess.gstageRoot'],
    [{ fieldAccess: { guestRegs: 'x' } }, 'techniques.uhvDirectTransitions.fieldAccess.guestRegs'],
    [{ fieldAccess: 'rw' }, 'techniques.uhvDirectTransitions.fieldAccess'],
    [{ exitRouting: { wfi: 'uhv' } }, 'techniques.uhvDirectTransitions.exitRouting.wfi'],
    [{ exitRouting: { 'mmio.block': 'guest' } }, 'techniques.uhvDirectTransitions.exitRouting.mmio.block'],
  ])('%j is a 400 naming the field', (setting, field) => {
    expect(() => validateTechniques({ uhvDirectTransitions: setting })).toThrow(TechniqueConfigError);
    expect(() => validateTechniques({ uhvDirectTransitions: setting })).toThrow(field);
  });

  test('a map change names only the keys it changes', () => {
    const t = resolveTechniques({ uhvDirectTransitions: { exitRouting: { hypercall: 'khv' } } }, { uhvDirectTransitions: { exitRouting: { 'mmio.power': 'khv' } } });
    expect(t.uhvDirectTransitions.exitRouting).toEqual({ 'mmio.console': 'uhv', 'mmio.power': 'khv', 'mmio.block': 'uhv', hypercall: 'khv' });
  });
});

describe('the UHV block devices behind the access API', () => {
  test('a block register load reaches disk n\'s device through the qualification, the loaded register and the pc advance; no device there is a VM fault', () => {
    const host = HostMemory.create(48);
    const vm = new Vm({ ...DEFAULT_SPEC, memoryMiB: 16, disks: [{ sizeBytes: 4096 }, { sizeBytes: 3 * 512 }], processes: [{ name: 'h', elf: builtinElf('hello'), argv: ['h'], env: [], stdin: new Uint8Array() }] }, host, 1);
    const v = vm.vcpus[0], c = vm.khv.control;
    const load = (offset: number, size: number, reg: number) => {
      c.begin(v.hart, v, EXIT_CODE.Mmio);
      Object.assign(c.syndrome, { offset, size, write: false, reg, signed: false, length: 4 });
      try { vm.khv.device.handleExit(c); } finally { c.end(); }
      return v.hart.x[reg];
    };
    expect(load(BLOCK_OFFSET + VIRTIO_MMIO.MagicValue, 4, 10)).toBe(VIRTIO_MAGIC);
    expect(c.advance).toBe(4);
    // Capacity in sectors: disk 1 has 3, read as one byte of its config space.
    expect(load(BLOCK_OFFSET + BLOCK_STRIDE + VIRTIO_MMIO.Config, 1, 11)).toBe(3);
    expect(load(BLOCK_OFFSET, 4, 0)).toBe(0);
    expect(() => load(BLOCK_OFFSET + 2 * BLOCK_STRIDE, 4, 12)).toThrow(VmFault);
    // A register the device does not have (a half-word load of a 32-bit register) is a VM fault too, naming it.
    expect(() => load(BLOCK_OFFSET + VIRTIO_MMIO.Status, 2, 12)).toThrow(/mmio-unsupported-instruction: virtio-mmio register access of 2 bytes at 0x70/);
    // Off: exit reason, qualification, the register write, the pc advance - all mediated.
    expect(vm.counters().uhv.fieldAccesses).toEqual({ direct: 0, mediated: 4 * 3 + 2 + 2, refused: 0 });
    vm.stop();
  });
});
