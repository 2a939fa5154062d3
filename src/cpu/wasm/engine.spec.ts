/**
 * The WebAssembly engine against the reference interpreter, stop by stop: generated
 * loops of ALU, M, load/store (misaligned, page-crossing, TLB-missing), forward branches,
 * compressed instructions, CSR reads (which the wasm code leaves to the interpreter) and calls
 * into another page, run at odd budgets with pages compiled after 1, 5 or 256 arrivals. Every
 * stop (reason, pc, instret, cycles), the registers, all counters and memory must agree.
 */
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { Engine, Hart, NATIVE_M, PRIV_M, StopReason } from '../hart.js';
import { PhysMem } from '../../mmu/phys.js';
import { assembleRaw } from '../../isa/assembler.js';
import { compileStats, createWasmDram, shareWasmCode, tuning } from './engine.js';
import { sleb, uleb } from './writer.js';

const BASE = 0x1000;
const RAM = 1 << 20;

function machine(src: string, engine: Engine): Hart {
  // Both engines on the same kind of memory (RAM plus the scratch area), so that they see the same.
  const mem = new PhysMem(createWasmDram(RAM));
  mem.u8.set(assembleRaw(src, { base: BASE }).bytes, BASE);
  const h = new Hart(mem);
  h.engine = engine;
  h.priv = PRIV_M;
  h.pc = BASE;
  h.nativeTraps = NATIVE_M;
  return h;
}

function stops(src: string, engine: Engine, slice: number) {
  const h = machine(src, engine);
  const seen: number[][] = [];
  for (let i = 0; i < 200_000; i++) {
    const r = h.run(slice);
    seen.push([r, h.pc, h.ctr[0], h.ctr[1]]);
    if (r === StopReason.Trap) break;
  }
  return { seen, x: [...h.x], ctr: [...h.ctr], mcause: h.mcause, mem: createHash('sha256').update(h.mem.u8.subarray(0, RAM)).digest('hex') };
}

const R = ['t0', 't1', 't2', 's0', 's1', 'a0', 'a1', 'a2', 'a3', 'a4', 'a5'];
const reg = fc.constantFrom(...R);
const creg = fc.constantFrom('s0', 's1', 'a0', 'a1', 'a2', 'a3', 'a4', 'a5');
const ALU_R = ['add', 'sub', 'sll', 'slt', 'sltu', 'xor', 'srl', 'sra', 'or', 'and', 'mul', 'mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu'];
const ALU_I = ['addi', 'slti', 'sltiu', 'xori', 'ori', 'andi'];
const LOADS = ['lb', 'lbu', 'lh', 'lhu', 'lw'];
const STORES = ['sb', 'sh', 'sw'];

/** One body line; `k` numbers the forward labels. */
const line = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...ALU_R), reg, reg, reg).map(([op, d, a, b]) => `${op} ${d}, ${a}, ${b}`) },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...ALU_I), reg, reg, fc.integer({ min: -2048, max: 2047 })).map(([op, d, a, i]) => `${op} ${d}, ${a}, ${i}`) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('slli', 'srli', 'srai'), reg, reg, fc.integer({ min: 0, max: 31 })).map(([op, d, a, i]) => `${op} ${d}, ${a}, ${i}`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('lui', 'auipc'), reg, fc.integer({ min: 0, max: 0xfffff })).map(([op, d, i]) => `${op} ${d}, ${i}`) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('c.add', 'c.mv', 'c.and', 'c.or'), creg, creg).map(([op, d, a]) => `${op} ${d}, ${a}`) },
  // s2 points 8 bytes below a page end (misaligned and page-crossing accesses); s3 into a page touched once.
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...LOADS), reg, fc.constantFrom('s2', 's3'), fc.integer({ min: -9, max: 12 })).map(([op, d, b, o]) => `${op} ${d}, ${o}(${b})`) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...STORES), reg, fc.constantFrom('s2', 's3'), fc.integer({ min: -9, max: 12 })).map(([op, s, b, o]) => `${op} ${s}, ${o}(${b})`) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('beq', 'bne', 'blt', 'bge', 'bltu', 'bgeu'), reg, reg).map(([op, a, b]) => `${op} ${a}, ${b}, FWD`) },
  // Division's edge cases: overflow and division by zero.
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('div', 'divu', 'rem', 'remu'), fc.constantFrom(-1, 0)).map(([op, d]) => `li t0, -2147483648\nli t1, ${d}\n${op} a0, t0, t1`) },
  { weight: 1, arbitrary: fc.constantFrom('csrr t2, minstret', 'csrr t2, mcycle', 'call far', 'jal ra, near', 'fence') },
);

const program = fc.tuple(fc.array(line, { minLength: 3, maxLength: 30 }), fc.array(fc.oneof(fc.integer(), fc.constantFrom(0, 1, -1, -2147483648, 2147483647)), { minLength: R.length, maxLength: R.length }), fc.integer({ min: 5, max: 400 }))
  .map(([body, init, iters]) => {
    let k = 0;
    const lines = body.map((l) => (l.endsWith('FWD') ? `${l.slice(0, -3)}L${k}\nL${k++}:` : l));
    return [
      ...R.map((r, i) => `li ${r}, ${init[i]}`),
      'li s2, 0x40ff8', 'li s3, 0x80100', `li s4, ${iters}`,
      'loop:', ...lines, 'addi s4, s4, -1', 'bnez s4, loop', 'ecall',
      'near: xor a5, a5, t0', 'ret',
      '.space 4096',
      'far: addi a4, a4, 7', 'mul a3, a3, a4', 'ret',
    ].join('\n');
  });

describe('wasm engine against the interpreter', () => {
  afterEach(() => { tuning.translateAt = 256; });

  it('agrees stop by stop on generated loops at odd budgets and compile thresholds', () => {
    let total = 0;
    fc.assert(fc.property(program, fc.constantFrom(7, 61, 1_000_000), fc.constantFrom(1, 5, 256), (src, slice, at) => {
      tuning.translateAt = at;
      const a = stops(src, 'interp', slice), b = stops(src, 'wasm', slice);
      total += b.ctr[0];
      expect(b).toEqual(a);
      expect(a.mcause).toBe(11);
    }), { seed: 16, numRuns: 80 });
    // The wasm code ran most of it (a quarter at least: at a threshold of 256, short loops never compile).
    expect(compileStats.modules).toBeGreaterThan(50);
    expect(compileStats.runInsns).toBeGreaterThan(0.25 * total);
    // Calls into the far page and back stayed in wasm: the dispatcher ran more page functions than it was called.
    expect(compileStats.pageCalls).toBeGreaterThan(compileStats.calls);
  });

  it('runs harts 0-15 (a scratch area each, as a 16-vCPU VM needs) and refuses a 17th', () => {
    const src = 'li a0, 1000\nloop: addi a0, a0, -1\nbnez a0, loop\necall';
    const mem = new PhysMem(createWasmDram(RAM));
    mem.u8.set(assembleRaw(src, { base: BASE }).bytes, BASE);
    const want = stops(src, 'interp', 1_000_000);
    for (let id = 0; id <= 16; id++) {
      const h = new Hart(mem, id);
      Object.assign(h, { engine: 'wasm', priv: PRIV_M, pc: BASE, nativeTraps: NATIVE_M });
      if (id === 16) { expect(() => h.run(1000)).toThrow(/too many harts/); continue; }
      expect(h.run(1_000_000)).toBe(StopReason.Trap);
      expect([h.pc, h.ctr[0], h.ctr[1], h.x[10]]).toEqual([want.seen[0][1], want.ctr[0], want.ctr[1], 0]);
    }
  });

  it('a store by one hart into code another hart compiled drops it (harts sharing a code watch, as a VM\'s vCPUs)', () => {
    tuning.translateAt = 5;
    // Hart 0 calls f (its own page) until f returns 2; hart 1 stores a0 at a1, a1 + a3, ..., a2 times.
    const src = [
      'li t1, 2', 'h0: call f', 'bne a0, t1, h0', 'ecall',
      'h1: sw a0, 0(a1)', 'add a1, a1, a3', 'addi a2, a2, -1', 'bnez a2, h1', 'ecall',
      '.balign 4096', 'f: addi a0, zero, 1', 'ret',
    ].join('\n');
    const { bytes, symbols } = assembleRaw(src, { base: BASE });
    const mem = new PhysMem(createWasmDram(RAM));
    mem.u8.set(bytes, BASE);
    const [h0, h1] = [0, 1].map((id) => Object.assign(new Hart(mem, id), { engine: 'wasm', priv: PRIV_M, nativeTraps: NATIVE_M }));
    shareWasmCode([h0, h1]);
    const f = symbols.get('f')!;
    // Hart 1 compiles its loop, storing into f's page while that holds no compiled code.
    Object.assign(h1, { pc: symbols.get('h1')! });
    h1.x[10] = 7; h1.x[11] = f + 0x800; h1.x[12] = 100; h1.x[13] = 0;
    expect(h1.run(100_000)).toBe(StopReason.Trap);
    // Hart 0 compiles f's page and keeps calling the f that returns 1.
    h0.pc = BASE;
    expect(h0.run(20_000)).toBe(StopReason.Budget);
    const entered = compileStats.calls;
    // Hart 1's loop (entered in wasm) now writes `addi a0, zero, 2` over f's first instruction
    // (its first iteration, after the trap, runs in the interpreter and stores far from any code).
    Object.assign(h1, { pc: symbols.get('h1')! });
    h1.x[10] = assembleRaw('addi a0, zero, 2', { base: 0 }).bytes.reduce((w, b, i) => w | (b << (8 * i)), 0);
    h1.x[11] = 0x80000; h1.x[12] = 2; h1.x[13] = f - 0x80000;
    expect(h1.run(100_000)).toBe(StopReason.Trap);
    expect(compileStats.calls).toBeGreaterThan(entered);
    expect(h0.run(20_000)).toBe(StopReason.Trap);
    expect(h0.x[10]).toBe(2);
  });

  it('refuses RAM that is not a WebAssembly.Memory', () => {
    const h = new Hart(PhysMem.ofSize(RAM));
    h.engine = 'wasm';
    expect(() => h.run(10)).toThrow(/WebAssembly.Memory/);
  });

  it('encodes LEB128 as the spec examples', () => {
    const u: number[] = [], s: number[] = [];
    uleb(u, 624485); sleb(s, -123456);
    expect(u).toEqual([0xe5, 0x8e, 0x26]);
    expect(s).toEqual([0xc0, 0xbb, 0x78]);
    const t: number[] = [];
    sleb(t, 63); sleb(t, 64); sleb(t, -64); sleb(t, -65);
    expect(t).toEqual([0x3f, 0xc0, 0x00, 0x40, 0xbf, 0x7f]);
  });
});
