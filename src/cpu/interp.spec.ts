/**
 * The interpreter's predecode cache against the interpreter that decodes every instruction each
 * time it runs (testing/reference-interpreter.ts): self-modifying code (stores by the program,
 * writes from outside the hart), instructions straddling page ends, compressed and full-size
 * mixes, and traps must give the same state, counters and memory at every stop.
 */
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { Hart, NATIVE_M, PRIV_M, PRIV_U, StopReason } from './hart.js';
import { PhysMem } from '../mmu/phys.js';
import { assembleRaw } from '../isa/assembler.js';
import { encode } from '../isa/encode.js';
import { opId } from '../isa/table.js';
import { runInterpreter, runInterpreterToBlockEnd } from './interp.js';
import { referenceInterpreter, referenceInterpreterToBlockEnd } from '../testing/reference-interpreter.js';
import { Ctr } from '../uarch/costs.js';

const BASE = 0x1000;
const MEM = 1 << 20;

function machine(bytes: Uint8Array): Hart {
  const mem = PhysMem.ofSize(MEM);
  mem.u8.set(bytes, BASE);
  const h = new Hart(mem);
  h.engine = 'interp';
  h.priv = PRIV_M;
  h.pc = BASE;
  h.x[2] = 0x80000;
  h.nativeTraps = NATIVE_M;
  return h;
}

const snapshot = (h: Hart) => ({
  x: [...h.x], pc: h.pc, priv: h.priv, mcause: h.mcause, mepc: h.mepc, mtval: h.mtval,
  counters: [...h.ctr], mem: createHash('sha256').update(h.mem.u8).digest('hex'),
});

type Runner = (h: Hart, max: number) => number;
/** A write from outside the hart (a device's DMA, a restore of RAM) before the `at`-th stop: `bytes` at physical `pa`. */
interface Poke { at: number; pa: number; bytes: Uint8Array }

/** Runs the machine with `run` in slices of `slice` until the ecall that ends the program: every stop and the final state. */
function stops(bytes: Uint8Array, run: Runner, slice: number, pokes: Poke[] = []) {
  const h = machine(bytes);
  const seen: unknown[] = [];
  for (let i = 0; i < 200_000; i++) {
    for (const p of pokes) if (p.at === i) h.mem.u8.set(p.bytes, p.pa);
    const r = run(h, slice);
    seen.push([r, h.pc, ...h.ctr]);
    if (r === StopReason.Trap && h.mcause === 11) return { stops: seen, final: snapshot(h) };
  }
  throw new Error('program did not finish');
}

const RUNNERS: Array<[string, Runner, Runner]> = [
  ['runInterpreter', runInterpreter, referenceInterpreter],
  ['runInterpreterToBlockEnd', runInterpreterToBlockEnd, referenceInterpreterToBlockEnd],
];

/** A trap handler that skips the trapping instruction (2 or 4 bytes), at BASE + 4, and the set-up. */
const PROLOGUE = `
  .option norvc
  j start
trap:
  csrr t0, mepc
  lhu t1, 0(t0)
  andi t1, t1, 3
  addi t0, t0, 2
  li t2, 3
  bne t1, t2, 1f
  addi t0, t0, 2
1: csrw mepc, t0
  mret
start:
  la t0, trap
  csrw mtvec, t0
  lui s1, 0x80
`;

const word32 = (src: string): number => new DataView(assembleRaw(`.option norvc\n${src}`, { base: 0 }).bytes.buffer).getUint32(0, true);
const addi = (rd: number, imm: number) => encode(opId('addi'), { rd, rs1: rd, imm }) | 0;

/** What the self-modifying stores write into a 4-byte code slot: full-size, two compressed, illegal forms. */
const slotWord: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: -2048, max: 2047 }).map((v) => addi(16, v)),
  fc.constantFrom(
    word32('c.addi a6, 3\nc.addi a7, -1'), word32('c.li a6, 9\nc.nop'), word32('c.nop\nc.addi a6, -5'), word32('mul a6, a6, a1'),
    word32('.half 0\nc.nop'), -1, word32('c.nop\n.half 0'),
  ),
);

describe('interpreter with its predecode cache', () => {
  test('a store that rewrites the next instruction, in a loop, runs the new instruction every time (no fence.i)', () => {
    // Each pass stores `addi a0, a0, k` (k = the pass number) over `next`, then executes it.
    const src = `
      li a0, 0
      li s0, 0
      la s1, next
      li s2, 200
    loop:
      addi s0, s0, 1
      slli t0, s0, 20
      li t1, ${addi(10, 0)}
      or t0, t0, t1
      sw t0, 0(s1)
    next:
      addi a0, a0, 0
      bne s0, s2, loop
      ecall`;
    const { bytes } = assembleRaw(src, { base: BASE });
    for (const [name, run, ref] of RUNNERS) {
      for (const slice of [1, 3, 1_000_000]) {
        const got = stops(bytes, run, slice), want = stops(bytes, ref, slice);
        expect({ name, ...got }).toEqual({ name, ...want });
        expect(got.final.x[10]).toBe((200 * 201) / 2);
      }
    }
  });

  test('a write from outside the hart (DMA, a restore of RAM) between runs is seen by the next run', () => {
    const src = `
      li a0, 0
      li s0, 100
    loop:
      addi a0, a0, 1
      addi s0, s0, -1
      bnez s0, loop
      ecall`;
    const { bytes, symbols } = assembleRaw(src, { base: BASE });
    const at = symbols.get('loop')!;
    const patch = new Uint8Array(new Int32Array([addi(10, 100)]).buffer);
    for (const [name, run, ref] of RUNNERS) {
      const pokes = [{ at: 3, pa: at, bytes: patch }];
      const got = stops(bytes, run, 20, pokes), want = stops(bytes, ref, 20, pokes);
      expect({ name, ...got }).toEqual({ name, ...want });
      // Before the patch: three runs of 20 instructions (19 passes and the next pass's add), or of one block (a pass) each.
      expect(got.final.x[10]).toBe(run === runInterpreter ? 20 + 80 * 100 : 3 + 97 * 100);
    }
  });

  test('a U-mode program under Sv32 paging (TLB misses, aliases conflicting in the fetch and data TLBs, a straddle, flushes) counts and stops as the decode-every-time interpreter does', () => {
    const src = (k: number) => `
      .option rvc
      li s0, 30
      lui s1, 0x480
      lui s2, 0x880
      la s3, far
      lui t0, 0x400
      add s3, s3, t0
    loop:
      li t0, 0
    inner:
      slli t1, t0, 12
      add t2, s1, t1
      lw a1, 0(t2)
      add a1, a1, t0
      add t3, s2, t1
      sw a1, 4(t3)
      lb a2, 5(t2)
      add a0, a0, a2
      addi t0, t0, 1
      li t4, ${k}
      bne t0, t4, inner
      jalr s3
      li a7, 0
      ecall
      addi s0, s0, -1
      bnez s0, loop
      li a7, 1
      ecall
      .option norvc
      .balign 4096
      .space 0xffe
    far:
      addi a0, a0, 7
      c.addi a0, 1
      ret`;
    for (const k of [3, 9]) {
      const { bytes } = assembleRaw(`_start:\n${src(k)}`, { base: 0x400000 });
      const run = (interp: Runner, slice: number) => {
        const mem = PhysMem.ofSize(MEM * 2);
        const root = 0x10000;
        // VA 0x400000.. and its alias 0x800000.. (the same TLB slots) both map frames 0x100000 + i * 4096, user RWX.
        for (const [vpn1, l0] of [[1, 0x11000], [2, 0x12000]]) {
          mem.write32(root + 4 * vpn1, ((l0 >> 12) << 10) | 1);
          for (let i = 0; i < 256; i++) mem.write32(l0 + 4 * i, (((0x100000 + i * 4096) >> 12) << 10) | 0xdf);
        }
        mem.u8.set(bytes, 0x100000);
        const h = new Hart(mem);
        h.satp = 0x80000000 | (root >> 12);
        h.nativeTraps = NATIVE_M;
        h.priv = PRIV_U;
        h.pc = 0x400000;
        const seen: unknown[] = [];
        for (let i = 0; i < 100_000; i++) {
          const r = interp(h, slice);
          seen.push([r, h.pc, ...h.ctr]);
          if (r !== StopReason.Trap) continue;
          expect(h.mcause).toBe(8);
          if (h.x[17] === 1) return { seen, final: snapshot(h) };
          h.mmu.flushAll();
          h.priv = PRIV_U;
          h.pc = (h.mepc + 4) | 0;
        }
        throw new Error('program did not finish');
      };
      for (const [name, interp, ref] of RUNNERS) {
        for (const slice of [1, 5, 1_000_000]) {
          const got = run(interp, slice), want = run(ref, slice);
          expect({ name, ...got }).toEqual({ name, ...want });
          expect(got.final.counters[Ctr.TlbMisses]).toBeGreaterThan(30 * k);
        }
      }
    }
  });

  test('an S-mode write to satp switches the code under the next instruction of the same virtual page', () => {
    const rootA = 0x10000, rootB = 0x12000, satpB = 0x80000000 | (rootB >> 12);
    const prog = (k: number) => assembleRaw(`li a0, 0\nli t0, ${satpB | 0}\ncsrw satp, t0\naddi a0, a0, ${k}\necall`, { base: 0x400000 }).bytes;
    const run = (interp: Runner) => {
      const mem = PhysMem.ofSize(MEM);
      // VA 0x400000 is frame 0x20000 under root A and frame 0x21000 under root B.
      for (const [root, l0, frame] of [[rootA, 0x11000, 0x20000], [rootB, 0x13000, 0x21000]]) {
        mem.write32(root + 4, ((l0 >> 12) << 10) | 1);
        mem.write32(l0, ((frame >> 12) << 10) | 0xcf);
      }
      mem.u8.set(prog(1), 0x20000);
      mem.u8.set(prog(100), 0x21000);
      const h = new Hart(mem);
      h.satp = 0x80000000 | (rootA >> 12);
      h.nativeTraps = NATIVE_M;
      h.priv = 1;
      h.pc = 0x400000;
      let r = 0;
      for (let i = 0; i < 10 && r !== StopReason.Trap; i++) r = interp(h, 1000);
      return { r, mcause: h.mcause, final: snapshot(h) };
    };
    for (const [name, interp, ref] of RUNNERS) {
      const got = run(interp);
      expect({ name, ...got }).toEqual({ name, ...run(ref) });
      expect([got.r, got.mcause, got.final.x[10]]).toEqual([StopReason.Trap, 9, 100]);
    }
  });

  test('interrupts raised by a device store mid-run, by CSR writes enabling them and between runs, and wfi, stop as the decode-every-time interpreter does', () => {
    const src = `
      li t0, 128
      csrw mie, t0
      li s0, 200
      lui s1, 0x40000
    loop:
      addi a0, a0, 1
      csrsi mstatus, 8
      sw a0, 0(s1)
      csrci mstatus, 8
      andi t1, a0, 15
      bnez t1, 1f
      csrsi mstatus, 8
      wfi
      csrci mstatus, 8
    1:
      addi s0, s0, -1
      bnez s0, loop
      ecall`;
    const { bytes } = assembleRaw(src, { base: BASE });
    const run = (interp: Runner, slice: number) => {
      const h = machine(bytes);
      // A device that raises the machine timer interrupt when a multiple of 7 is written to it.
      h.mem.addRegion(0x40000000, 4096, { read: () => 0, write: (_off: number, _size: number, v: number) => { if (v % 7 === 0) { h.mip |= 128; h.irqDirty = true; } } });
      const seen: unknown[] = [];
      for (let i = 0; i < 100_000; i++) {
        const r = interp(h, slice);
        seen.push([r, h.pc, ...h.ctr]);
        if (r === StopReason.Wfi || (i % 5 === 4 && r === StopReason.Budget)) { h.mip |= 128; h.irqDirty = true; }
        if (r !== StopReason.Trap) continue;
        if (h.mcause === 11) return { seen, final: snapshot(h) };
        expect(h.mcause >>> 0).toBe(0x80000007);
        h.mip &= ~128;
        h.pc = h.mret();
      }
      throw new Error('program did not finish');
    };
    for (const [name, interp, ref] of RUNNERS) {
      for (const slice of [1, 3, 50, 1_000_000]) {
        const got = run(interp, slice);
        expect({ name, ...got }).toEqual({ name, ...run(ref, slice) });
        expect(got.final.counters[Ctr.Interrupts]).toBeGreaterThan(25);
      }
    }
  });

  /**
   * Random programs: a loop over items (ALU work in both sizes, loads and stores, CSR reads,
   * illegal instructions, ebreak and load faults skipped by the handler, self-modifying stores
   * into code slots before or right before them, jumps over padding to a 4-byte instruction
   * straddling a page end), with writes into the slots from outside the hart between some stops.
   */
  test('random programs with self-modifying code, page-end straddles and traps agree with the decode-every-time interpreter stop by stop', () => {
    const work: Array<[string, number]> = [
      ['addi a1, a1, 3', 4], ['c.addi a1, 5', 2], ['xor a2, a2, a1', 4], ['c.xor a2, a1', 2], ['slli a3, a1, 2', 4], ['c.slli a3, 3', 2],
      ['add a4, a4, a2', 4], ['c.add a4, a3', 2], ['mul a2, a2, a1', 4], ['divu a5, a4, a1', 4], ['sw a1, 8(s1)', 4], ['lw a5, 8(s1)', 4],
      ['c.sw a4, 12(s1)', 2], ['c.lw a3, 12(s1)', 2], ['lb a5, 3(s1)', 4], ['csrr t1, instret', 4], ['csrr t1, cycle', 4], ['c.li a5, -3', 2],
      ['c.mv a3, a2', 2], ['auipc a5, 0', 4], ['add a1, a1, t1', 4], ['add a1, a1, a6', 4], ['xor a2, a2, a7', 4],
      ['lr.w a5, (s1)', 4], ['sc.w a5, a1, (s1)', 4], ['amoadd.w a5, a1, (s1)', 4], ['sh a2, 6(s1)', 4], ['lhu a3, 6(s1)', 4], ['lh a3, 5(s1)', 4],
    ];
    const traps: Array<[string, number]> = [['.half 0', 2], ['.word 0xffffffff', 4], ['ebreak', 4], ['c.ebreak', 2], ['lui t4, 0x40000\nlw a5, 0(t4)', 8]];
    const item = fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...work).map(([s, n]) => ({ kind: 'work' as const, s, n })) },
      { weight: 1, arbitrary: fc.constantFrom(...traps).map(([s, n]) => ({ kind: 'work' as const, s, n })) },
      { weight: 2, arbitrary: fc.constant({ kind: 'site' as const }) },
      { weight: 2, arbitrary: fc.tuple(fc.nat(), slotWord, fc.boolean()).map(([site, value, next]) => ({ kind: 'smc' as const, site, value, next })) },
      { weight: 1, arbitrary: fc.constant({ kind: 'pad' as const }) },
    );
    const program = fc.tuple(fc.array(item, { minLength: 4, maxLength: 40 }), fc.integer({ min: 2, max: 12 }), fc.integer({ min: 0, max: 40 })).map(([items, iterations, lead]) => {
      // Layout: sizes are explicit (norvc, c. mnemonics), so page offsets are known while writing.
      const pro = assembleRaw(`${PROLOGUE}\n`, { base: BASE }).bytes.length;
      const lines: string[] = [PROLOGUE, `li s0, ${iterations}`, `.space ${2 * lead}`, 'top:'];
      let at = BASE + pro + 4 + 2 * lead, sites = 0, pads = 0, straddles = 0;
      const siteCount = items.filter((i) => i.kind === 'site').length + items.filter((i) => i.kind === 'smc' && i.next).length;
      const emit = (s: string, n: number) => { lines.push(s); at += n; };
      for (const it of items) {
        if (it.kind === 'work') emit(it.s, it.n);
        else if (it.kind === 'site') emit(`site${sites++}: addi a6, a6, 1`, 4);
        else if (it.kind === 'pad') {
          if (pads++ >= 3) continue;
          emit('j 1f', 4);
          const k = (0xffe - (at & 0xfff) + 0x1000) & 0xfff;
          emit(`.space ${k}\n1:`, k);
          emit('addi a1, a1, 7', 4);
          straddles++;
        } else if (siteCount > 0) {
          const target = it.next ? sites : it.site % siteCount;
          const v = it.value | 0, hi = (v + 0x800) >>> 12, lo = ((v << 20) >> 20);
          emit(`la t2, site${target}\nlui t3, ${hi & 0xfffff}\naddi t3, t3, ${lo}\nsh t3, 0(t2)\nsrli t3, t3, 16\nsh t3, 2(t2)`, 28);
          if (it.next) emit(`site${sites++}: addi a6, a6, 1`, 4);
        }
      }
      lines.push('addi s0, s0, -1', 'beqz s0, 2f', 'j top', '2: ecall');
      return { src: lines.join('\n'), sites, straddles };
    });
    const totals = { smc: 0, straddles: 0, traps: 0 };
    fc.assert(fc.property(program, fc.constantFrom(1, 7, 100, 1_000_000), fc.constantFrom(0, 1), fc.array(fc.tuple(fc.nat(20), fc.nat(), slotWord), { maxLength: 3 }), ({ src, sites, straddles }, slice, which, rawPokes) => {
      const { bytes, symbols } = assembleRaw(src, { base: BASE });
      const pokes: Poke[] = sites === 0 ? [] : rawPokes.map(([at, site, v]) => ({ at, pa: symbols.get(`site${site % sites}`)!, bytes: new Uint8Array(new Int32Array([v]).buffer) }));
      const [, run, ref] = RUNNERS[which];
      const got = stops(bytes, run, slice, pokes), want = stops(bytes, ref, slice, pokes);
      expect(got.stops).toEqual(want.stops);
      expect(got.final).toEqual(want.final);
      totals.smc += sites;
      totals.straddles += straddles;
      totals.traps += got.final.counters[Ctr.Traps];
    }), { seed: 1616, numRuns: 150 });
    // The generated programs do modify their code, straddle page ends and trap.
    expect(totals.smc).toBeGreaterThan(100);
    expect(totals.straddles).toBeGreaterThan(50);
    expect(totals.traps).toBeGreaterThan(150);
  }, 300_000);
});
