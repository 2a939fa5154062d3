/**
 * The block translator against the reference interpreter: self-modifying code, page-table
 * changes mid-run, and switching engines mid-run must all leave identical architectural state
 * and counters.
 */
import fc from 'fast-check';
import { Engine, Hart, NATIVE_M, PRIV_M, PRIV_U, StopReason } from './hart.js';
import { PhysMem } from '../mmu/phys.js';
import { assembleRaw } from '../isa/assembler.js';
import { encode } from '../isa/encode.js';
import { opId } from '../isa/table.js';
import { createHash } from 'node:crypto';
import { DEFAULT_BLOCK_CAP, Jit, TRANSLATE_AT } from './jit.js';

const BASE = 0x1000;

/** Full architectural state and counters, for comparison. */
function snapshot(h: Hart) {
  return {
    x: [...h.x], pc: h.pc, priv: h.priv, mcause: h.mcause, mepc: h.mepc,
    counters: [...h.ctr], mem: createHash('sha256').update(h.mem.u8).digest('hex'),
  };
}

/**
 * A machine running `src` from BASE in M-mode; with `regionAt`, its jit makes regions of pages
 * after that many runs of a block; it translates a block the `translateAt`-th time it reaches it
 * (by default the first: most tests here are about the translated tiers).
 */
function machine(src: string, engine: Engine, regionAt?: number, translateAt = 1, regionInsns = 0) {
  const mem = PhysMem.ofSize(1 << 20);
  const { bytes } = assembleRaw(src, { base: BASE });
  mem.u8.set(bytes, BASE);
  const h = new Hart(mem);
  h.engine = engine;
  h.priv = PRIV_M;
  h.pc = BASE;
  h.x[2] = 0x80000;
  h.nativeTraps = NATIVE_M;
  h.jit = new Jit(h, DEFAULT_BLOCK_CAP, regionAt, translateAt, regionAt === undefined ? undefined : regionInsns);
  return h;
}

/** Runs to the final ecall in slices of `slice` instructions, switching engines if asked. */
function runToEcall(h: Hart, slice: number, alternate = false) {
  for (let i = 0; i < 100000; i++) {
    if (alternate) h.engine = i % 2 ? 'interp' : 'jit';
    const r = h.run(slice);
    if (r === StopReason.Trap) return;
  }
  throw new Error('program did not finish');
}

/** Runs `src` to its trap in slices of `slice` under each engine: every stop (reason, pc, instret, cycles) and the final state. */
function stopsPerEngine(src: string, slice: number, regionAt?: number, translateAt?: number) {
  return (['interp', 'jit'] as const).map((engine) => {
    const h = machine(src, engine, regionAt, translateAt);
    const stops: unknown[] = [];
    for (let i = 0; i < 100_000; i++) {
      const r = h.run(slice);
      stops.push([r, h.pc, h.ctr[0], h.ctr[1]]);
      if (r === StopReason.Trap) break;
    }
    const st = engine === 'jit' ? h.jit!.stats : null;
    return { final: snapshot(h), stops, chained: st?.chained ?? 0, traces: st?.traces ?? 0, regions: st?.regions ?? 0, translations: st?.translations ?? 0, cold: st?.cold ?? 0, demoted: st?.demoted ?? 0 };
  });
}

/** Start of the programs that walk a0 up through RAM until a load leaves it (about 700 steps of 16 bytes). */
const WALK = `li a0, 0x${(0x100000 - 0x2bc0).toString(16)}`;

/** Runs `src` under both engines at each budget: every stop and the final state agree, and it ends in the fault `mcause` (a load access fault by default). Returns the jit's side. */
function expectSameToFault(src: string, slices: number[], regionAt?: number, mcause = 5) {
  return slices.map((slice) => {
    const [a, b] = stopsPerEngine(src, slice, regionAt);
    expect(b.stops).toEqual(a.stops);
    expect(b.final).toEqual(a.final);
    expect(a.final.mcause).toBe(mcause);
    return { slice, ...b };
  });
}

const addiWord = (imm: number) => encode(opId('addi'), { rd: 10, rs1: 10, imm });

/**
 * A program that rewrites the immediate of `slot: addi a0, a0, 0` before each call (a store
 * into code, then fence.i, then executes it), interleaved with random ALU work.
 */
const smcProgram = fc.tuple(
  fc.array(fc.integer({ min: -2048, max: 2047 }), { minLength: 2, maxLength: 12 }),
  fc.array(fc.constantFrom('add a1, a1, a0', 'xor a2, a2, a1', 'slli a3, a1, 3', 'sub a4, a3, a2', 'mul a5, a4, a1'), { minLength: 1, maxLength: 6 }),
  fc.boolean(),
).map(([imms, work, fence]) => `
  .text
_start:
  li a0, 1
  li a1, 7
  la s0, slot
${imms.map((v) => `
  li t0, ${addiWord(v) | 0}
  sw t0, 0(s0)
  ${fence ? 'fence.i' : ''}
  call slot
  ${work.join('\n  ')}`).join('\n')}
  ecall
slot:
  addi a0, a0, 0
  ret
`);

/**
 * Programs of chunks, each a run of ALU work, memory accesses, CSR instructions and fences, in
 * compressed and full-size forms, ending with a biased (or alternating) conditional branch to a
 * chunk and a jump or a fall-through to the next. Sizes are explicit (norvc, `c.` mnemonics), so
 * the layout is known here: some chunks are padded to start with a 4-byte instruction straddling
 * a page end, so branches and jumps target it. Each chunk counts down s0 and ends the program
 * with ecall at zero.
 */
const pageEndProgram = (() => {
  const work: [string, number][] = [
    ['addi a1, a1, 3', 4], ['c.addi a1, 5', 2], ['xor a2, a2, a1', 4], ['c.xor a2, a1', 2], ['slli a3, a1, 2', 4],
    ['c.slli a3, 3', 2], ['add a4, a4, a2', 4], ['c.add a4, a3', 2], ['mul a2, a2, a1', 4], ['sw a1, 8(s1)', 4],
    ['lw a5, 8(s1)', 4], ['c.sw a4, 12(s1)', 2], ['c.lw a3, 12(s1)', 2], ['csrr t1, instret', 4], ['csrr t1, cycle', 4],
    ['csrw mscratch, a2', 4], ['csrr a2, mscratch', 4], ['fence', 4], ['add a1, a1, t1', 4],
  ];
  const chunk = fc.record({
    body: fc.array(fc.constantFrom(...work), { maxLength: 10 }),
    compressedHead: fc.boolean(),
    mask: fc.constantFrom(0, 1, 2, 63, 255),
    sense: fc.constantFrom('beqz', 'bnez', 'c.beqz', 'c.bnez'),
    target: fc.nat(),
    jumpTo: fc.option(fc.nat(), { freq: 2 }),
    straddle: fc.boolean(),
  });
  return fc.tuple(fc.array(chunk, { minLength: 2, maxLength: 12 }), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 300, max: 1500 }))
    .map(([chunks, lead, visits]) => {
      const n = chunks.length;
      const lines: string[] = [`li s0, ${visits}`, 'lui s1, 0x80', 'j c0', `.space ${2 * lead}`];
      let at = BASE + 12 + 2 * lead, straddling = 0;
      // Chunk starts first (padding after a jump may move a chunk to straddle the next page end), then the code.
      const size = (c: (typeof chunks)[0]) => (c.compressedHead ? 2 : 4) + 4 + 4 + c.body.reduce((k, [, z]) => k + z, 0) + 4 + (c.sense.startsWith('c.') ? 2 : 4) + (c.jumpTo === null ? 0 : 4);
      const starts: number[] = [], pads: number[] = [];
      chunks.forEach((c, i) => {
        const pad = i > 0 && chunks[i - 1].jumpTo !== null && c.straddle && !c.compressedHead ? (4094 - (at & 0xfff) + 4096) % 4096 : 0;
        if (pad) straddling++;
        pads.push(pad);
        starts.push(at += pad);
        at += size(c);
      });
      chunks.forEach((c, i) => {
        if (pads[i]) lines.push(`.space ${pads[i]}`);
        const site = starts[i] + size(c) - (c.jumpTo === null ? 0 : 4) - (c.sense.startsWith('c.') ? 2 : 4);
        // A target out of the branch's reach becomes the chunk's own start (a loop on it).
        const reach = c.sense.startsWith('c.') ? 250 : 4000;
        const t = Math.abs(starts[c.target % n] - site) < reach ? c.target % n : i;
        lines.push(`c${i}:`, c.compressedHead ? 'c.addi s0, -1' : 'addi s0, s0, -1', `bnez s0, k${i}`, 'ecall', `k${i}:`,
          ...c.body.map(([w]) => w), `andi a5, s0, ${c.mask}`, `${c.sense} a5, c${t}`);
        if (c.jumpTo !== null) lines.push(`j c${c.jumpTo % n}`);
        else if (i === n - 1) lines.push('j c0');
      });
      return { src: `.option norvc\n${lines.join('\n')}\n`, straddling };
    });
})();

describe('jit vs interpreter', () => {
  test('self-modifying programs leave identical state and counters (and see the new code)', () => {
    fc.assert(fc.property(smcProgram, fc.boolean(), (src, regions) => {
      const a = machine(src, 'interp');
      // With regions after two runs, the patching store leaves the region that holds it.
      const b = machine(src, 'jit', regions ? 2 : undefined);
      runToEcall(a, 1000);
      runToEcall(b, 1000);
      expect(snapshot(b)).toEqual(snapshot(a));
      expect(b.jit!.stats.invalidations).toBeGreaterThan(0);
      // The slot's last immediate is what a0 accumulated last: the patched code did run.
      expect(a.mcause).toBe(11);
    }), { seed: 31, numRuns: 60 });
  });

  test('tight loops (a block branching to itself) stop at exact budgets and trap precisely mid-iteration', () => {
    // The loop walks a pointer up through RAM, summing words with a multiply and a taken branch per
    // iteration, until its load leaves RAM (an access fault on the 700th iteration or so).
    const src = `
      ${WALK}
      li a1, 0
      li a2, 3
    1:
      lw t0, 0(a0)
      mul t0, t0, a2
      add a1, a1, t0
      addi a0, a0, 16
      bnez a2, 1b
      ecall
    `;
    expectSameToFault(src, [1, 7, 64, 333, 1_000_000]);
    // The loop inside a region (with the setup block before it), leaving it on each TLB miss (at
    // the largest budget the loop never ends normally, so it never counts a run and stays alone).
    for (const b of expectSameToFault(src, [1, 7, 64, 333, 1_000_000], 1)) if (b.slice === 64 || b.slice === 333) expect(b.regions).toBeGreaterThan(0);
  });

  test('chained blocks (successors run without the dispatcher) stop at exact budgets and trap precisely', () => {
    // A loop over several blocks of one page (a two-way branch, a call and a return) that walks up
    // through RAM until its load leaves it (an access fault after about 700 iterations).
    const src = `
      ${WALK}
      li a1, 0
      li a2, 3
    1:
      lw t0, 0(a0)
      add t0, t0, a0
      andi t1, t0, 16
      beqz t1, 2f
      add a1, a1, t0
      j 3f
    2:
      sub a1, a1, t0
    3:
      jal ra, 4f
      sw a1, 4(a0)
      addi a0, a0, 16
      bnez a2, 1b
      ecall
    4:
      mul t2, a1, a2
      xor a1, a1, t2
      ret
    `;
    for (const b of expectSameToFault(src, [1, 5, 64, 333, 1_000_000])) if (b.slice >= 64) expect(b.chained).toBeGreaterThan(0);
    // The same blocks as one region: budgets end inside it, traps leave it precisely.
    for (const b of expectSameToFault(src, [1, 5, 64, 333, 1_000_000], 8)) if (b.slice >= 64) expect(b.regions).toBeGreaterThan(0);
  });

  test('traces (hot paths through biased branches, rare side exits) stop at exact budgets and trap precisely', () => {
    // A loop whose first branch is almost never taken and whose second almost always is (a jump
    // over a rare path): its hot path becomes one trace, left by one side exit every 64th
    // iteration and by the other every 128th, until the load leaves RAM.
    const src = `
      ${WALK}
      li a1, 0
      li a2, 0
    1:
      lw t0, 0(a0)
      add a1, a1, t0
      addi a2, a2, 1
      andi t1, a2, 63
      beqz t1, 2f
      xori a1, a1, 5
      addi t2, a2, -5
      andi t2, t2, 127
      bnez t2, 3f
      sub a1, a1, a2
    3:
      addi a0, a0, 16
      j 1b
    2:
      slli a1, a1, 1
      j 3b
    `;
    for (const b of expectSameToFault(src, [1, 7, 100, 1_000_000])) if (b.slice >= 100) expect(b.traces).toBeGreaterThan(0);
    // Traces inside a region (built after they are): side exits go on to the region's other blocks.
    for (const b of expectSameToFault(src, [1, 7, 100, 1_000_000], 48)) {
      if (b.slice >= 100) expect(b.traces).toBeGreaterThan(0);
      if (b.slice >= 1_000_000) expect(b.regions).toBeGreaterThan(0);
    }
  });

  test('a hot branch whose taken target cannot join its trace (a 4-byte instruction straddling the page end) is still taken', () => {
    // Found on an n-body program: the trace (through the never taken first branch) followed the
    // biased second branch towards its target, could not add the target (it crosses the page
    // end), and ended with the branch spliced as followed, so a taken branch fell through to the
    // compressed instruction after it.
    const src = `
      .option norvc
      li a0, 0
      li t0, 300
    loop:
      addi a0, a0, 1
      andi t1, t0, 1024
      bnez t1, rare
      addi t0, t0, -1
      bnez t0, far
      c.addi a0, 7
    rare:
      ecall
      .space 4060
    far:
      addi a0, a0, 3
      j loop
    `;
    expect(assembleRaw(src, { base: BASE }).symbols.get('far')).toBe(0x1ffe);
    for (const regionAt of [undefined, 40]) {
      const [a, b] = stopsPerEngine(src, 1_000_000, regionAt);
      expect(a.final.x[10]).toBe(4 * 300 + 7 - 3);
      expect(b.traces).toBeGreaterThan(0);
      expect(b.stops).toEqual(a.stops);
      expect(b.final).toEqual(a.final);
    }
  });

  test('programs with branches and jumps to targets across page ends, CSR instructions and fences, hot enough for traces and regions, stop where the interpreter stops', () => {
    const runs = { traces: 0, regions: 0, straddling: 0 };
    fc.assert(fc.property(pageEndProgram, fc.constantFrom(undefined, 4, 24, 200), fc.constantFrom(29, 1000, 1_000_000), fc.constantFrom(1, 5, TRANSLATE_AT), ({ src, straddling }, regionAt, slice, translateAt) => {
      const [a, b] = stopsPerEngine(src, slice, regionAt, translateAt);
      expect(b.stops).toEqual(a.stops);
      expect(b.final).toEqual(a.final);
      expect(a.final.mcause).toBe(11);
      runs.traces += b.traces;
      runs.regions += b.regions;
      runs.straddling += straddling;
    }), { seed: 16, numRuns: 120 });
    // The generated programs do reach the hot tiers, with targets straddling page ends.
    expect(runs.traces).toBeGreaterThan(50);
    expect(runs.regions).toBeGreaterThan(50);
    expect(runs.straddling).toBeGreaterThan(50);
  }, 120_000);

  test('cold code runs in the interpreter until a block start has been reached TRANSLATE_AT times, with the same stops', () => {
    // A loop of three blocks run `k` times: below the threshold nothing is translated.
    const src = (k: number) => `
      li a0, 0
      li t0, ${k}
    1: addi a0, a0, 3
      andi t1, a0, 4
      beqz t1, 2f
      xori a0, a0, 5
    2: csrr t2, instret
      add a0, a0, t2
      addi t0, t0, -1
      bnez t0, 1b
      ecall`;
    for (const slice of [1, 3, 17, 1_000_000]) {
      const [a, b] = stopsPerEngine(src(TRANSLATE_AT - 2), slice, undefined, TRANSLATE_AT);
      expect(b.stops).toEqual(a.stops);
      expect(b.final).toEqual(a.final);
      expect(b.translations).toBe(0);
      if (slice > 1) expect(b.cold).toBeGreaterThan(0);
      const [c, d] = stopsPerEngine(src(TRANSLATE_AT * 4), slice, undefined, TRANSLATE_AT);
      expect(d.stops).toEqual(c.stops);
      expect(d.final).toEqual(c.final);
      if (slice > 17) expect(d.translations).toBeGreaterThan(0);
    }
  });

  test('calls and returns across pages chain without the dispatcher and stop where the interpreter stops', () => {
    // A loop in one page calling functions in two other pages (one calls on into the third).
    const src = `
      ${WALK}
      li a1, 0
    1:
      lw t0, 0(a0)
      call far1
      add a1, a1, t0
      addi a0, a0, 16
      j 1b
      .space 4096
    far1:
      addi sp, sp, -16
      sw ra, 12(sp)
      xor a1, a1, t0
      call far2
      lw ra, 12(sp)
      addi sp, sp, 16
      ret
      .space 4096
    far2:
      slli t1, a1, 1
      add a1, a1, t1
      ret
    `;
    const runs = expectSameToFault(src, [1, 7, 64, 333, 1_000_000]);
    for (const b of runs) if (b.slice >= 64) expect(b.chained).toBeGreaterThan(2000);
    // The same with regions: a region's exit chains into the other pages too.
    expectSameToFault(src, [7, 333, 1_000_000], 8);
  });

  test('stores into data sharing a page with translated code leave its blocks; a store into a translated line still invalidates them', () => {
    const src = (patch: boolean) => `
      la s0, data
      li t0, 500
    1: lw t1, 0(s0)
      addi t1, t1, 3
      sw t1, 0(s0)
      addi t0, t0, -1
      bnez t0, 1b
      ${patch ? `la s1, slot
      lw t2, 0(s1)
      sw t2, 0(s1)` : ''}
    slot:
      addi a0, t1, 1
      ecall
      .balign 64
    data:
      .word 7
    `;
    for (const patch of [false, true]) {
      const [a, b] = stopsPerEngine(src(patch), 1_000_000);
      expect(b.final).toEqual(a.final);
      expect(a.final.x[10]).toBe(7 + 3 * 500 + 1);
      const h = machine(src(patch), 'jit');
      runToEcall(h, 1_000_000);
      expect(h.jit!.stats.invalidations > 0).toBe(patch);
    }
  });

  test('a page becomes a region once its blocks retired regionInsns instructions, or at once when its code was in a region before', () => {
    // A loop of three blocks (about 7 instructions an iteration, 21,000 in all), with constants no other test uses.
    const src = `
      li t0, 3001
    1: addi a0, a0, 7
      xor a1, a1, a0
      andi t1, a0, 24
      beqz t1, 2f
      addi a1, a1, 13
    2: addi t0, t0, -1
      bnez t0, 1b
      ecall
    `;
    const interp = machine(src, 'interp');
    runToEcall(interp, 1_000_000);
    // Never reached: blocks only.
    const never = machine(src, 'jit', 8, 1, 1e9);
    runToEcall(never, 1_000_000);
    expect(never.jit!.stats.regions).toBe(0);
    expect(snapshot(never)).toEqual(snapshot(interp));
    // Reached after about 5,000 instructions in the page: no region before, one after.
    const late = machine(src, 'jit', 8, 1, 5000);
    late.run(4000);
    expect(late.jit!.stats.regions).toBe(0);
    runToEcall(late, 1_000_000);
    expect(late.jit!.stats.regions).toBeGreaterThan(0);
    expect(snapshot(late)).toEqual(snapshot(interp));
    // The same code in a fresh translator: its blocks were in a region, so 8 runs suffice.
    const seeded = machine(src, 'jit', 8, 1, 1e9);
    runToEcall(seeded, 1_000_000);
    expect(seeded.jit!.stats.regions).toBeGreaterThan(0);
    expect(snapshot(seeded)).toEqual(snapshot(interp));
  });

  test('the translator counts what each tier costs', () => {
    const h = machine(`
      li t0, 500
    1: addi a0, a0, 5
      andi t1, a0, 8
      beqz t1, 2f
      xori a1, a1, 3
    2: addi t0, t0, -1
      bnez t0, 1b
      ecall
    `, 'jit', 40);
    runToEcall(h, 1_000_000);
    const s = h.jit!.stats;
    expect(s.translations).toBeGreaterThan(0);
    expect(s.traces + s.regions).toBeGreaterThan(0);
    // Every block, trace and region was made from a source and called at least once.
    expect(s.parsed + s.reused).toBe(s.translations + s.traces + s.regions);
    expect(s.firstCalls).toBe(s.translations + s.traces + s.regions);
    expect(s.translateMs).toBeGreaterThan(0);
    expect(s.compileMs).toBeGreaterThan(0);
    expect(s.firstCallMs).toBeGreaterThan(0);
    if (s.parsed > 0) expect(s.sourceBytes).toBeGreaterThan(200 * s.parsed);
  });

  test('a region entered for a few instructions at a time goes back to blocks, with the same stops', () => {
    // A short function in its own page, called 6,000 times from a loop in another page: its
    // region retires a handful of instructions per entry and is dropped after REGION_PROBE entries.
    const src = `
      li t0, 6000
    1: call far
      addi t0, t0, -1
      bnez t0, 1b
      ecall
      .space 4096
    far:
      addi a0, a0, 3
      andi t1, a0, 8
      beqz t1, 2f
      xori a0, a0, 1
    2: ret
    `;
    for (const slice of [333, 1_000_000]) {
      const [a, b] = stopsPerEngine(src, slice, 8);
      expect(b.stops).toEqual(a.stops);
      expect(b.final).toEqual(a.final);
      expect(b.regions).toBeGreaterThan(0);
      expect(b.demoted).toBeGreaterThan(0);
    }
  });

  test('regions leave before a slow path mid-block and trap precisely in a call into the hart', () => {
    // A loop whose load comes mid-block and misses the TLB on every new page (the region leaves
    // before it, with the instructions before it retired), and whose atomic add goes through the
    // hart and faults inside the region once the walk leaves RAM.
    const src = `
      ${WALK}
      li a1, 0
      li a2, 3
    1:
      add a1, a1, a2
      xor a1, a1, a0
      amoadd.w t2, a2, (a0)
      lw t0, 4(a0)
      add a1, a1, t0
      andi t1, a1, 1
      beqz t1, 2f
      addi a1, a1, 3
    2:
      addi a0, a0, 16
      bnez a2, 1b
      ecall
    `;
    // A store/AMO access fault (7).
    for (const b of expectSameToFault(src, [1, 7, 64, 333, 1_000_000], 4, 7)) if (b.slice >= 64) expect(b.regions).toBeGreaterThan(0);
  });

  test('odd budgets and switching engines mid-run give the same state at every stop', () => {
    fc.assert(fc.property(smcProgram, fc.integer({ min: 1, max: 37 }), (src, slice) => {
      const a = machine(src, 'interp');
      const b = machine(src, 'jit');
      for (let i = 0; i < 100000; i++) {
        b.engine = i % 3 === 0 ? 'interp' : 'jit';
        const ra = a.run(slice), rb = b.run(slice);
        expect(rb).toBe(ra);
        expect(snapshot(b)).toEqual(snapshot(a));
        if (ra === StopReason.Trap) return;
      }
      throw new Error('did not finish');
    }), { seed: 32, numRuns: 25 });
  });

  test('remapping a code page under a U-mode program (a page-table change) runs the new code', () => {
    const run = (engine: Engine) => {
      const mem = PhysMem.ofSize(1 << 20);
      const h = new Hart(mem);
      h.engine = engine;
      const root = 0x10000, l0 = 0x11000, codeA = 0x20000, codeB = 0x21000;
      // VA 0x400000 (vpn1 = 1, vpn0 = 0) -> frame, user R-X with A/D set.
      mem.write32(root + 4, ((l0 >> 12) << 10) | 1);
      const map = (frame: number) => { mem.write32(l0, ((frame >> 12) << 10) | 0x1 | 0x2 | 0x8 | 0x10 | 0x40 | 0x80); };
      const prog = (k: number) => assembleRaw(`
        li a0, 0
        li t0, 50
      1: addi a0, a0, ${k}
        addi t0, t0, -1
        bnez t0, 1b
        ecall
      `, { base: 0x400000 }).bytes;
      mem.u8.set(prog(1), codeA);
      mem.u8.set(prog(3), codeB);
      map(codeA);
      h.satp = 0x80000000 | (root >> 12);
      h.nativeTraps = NATIVE_M;
      h.priv = PRIV_U; h.pc = 0x400000;
      const results: number[] = [];
      for (const frame of [codeA, codeB, codeA]) {
        map(frame);
        h.mmu.flushAll(); // what sfence.vma does
        h.priv = PRIV_U; h.pc = 0x400000;
        while (h.run(13) !== StopReason.Trap) { /* run to the ecall */ }
        results.push(h.x[10]);
      }
      return { results, state: snapshot(h) };
    };
    const a = run('interp');
    const b = run('jit');
    expect(a.results).toEqual([50, 150, 50]);
    expect(b).toEqual(a);
  });

  test('loads sharing one TLB check: a slow path in between, a group spanning two pages and a misaligned base act as in the interpreter', () => {
    // Data pages A (0x500000) and B (0x600000) share a TLB slot; the page after A is unmapped.
    const run = (engine: Engine, program: string) => {
      const mem = PhysMem.ofSize(1 << 20);
      const h = new Hart(mem);
      h.engine = engine;
      const root = 0x10000, l0 = 0x11000, code = 0x20000, dataA = 0x21000, dataB = 0x22000;
      mem.write32(root + 4, ((l0 >> 12) << 10) | 1);
      const map = (vpn0: number, frame: number, perms: number) => mem.write32(l0 + 4 * vpn0, ((frame >> 12) << 10) | perms | 0x1 | 0x10 | 0x40 | 0x80);
      map(0x000, code, 0x2 | 0x8);
      map(0x100, dataA, 0x2 | 0x4);
      map(0x200, dataB, 0x2 | 0x4);
      mem.write32(dataA, 5); mem.write32(dataA + 4, 7); mem.write32(dataB, 11);
      mem.u8.set(assembleRaw(program, { base: 0x400000 }).bytes, code);
      h.satp = 0x80000000 | (root >> 12);
      h.nativeTraps = NATIVE_M;
      h.priv = PRIV_U; h.pc = 0x400000;
      while (h.run(1000) !== StopReason.Trap) { /* run to the ecall */ }
      return snapshot(h);
    };
    // In each iteration the load from B evicts A, so the second load from A (grouped with the
    // first: same base register) misses again.
    const evicting = `
      li s0, 0x500000
      li s1, 0x600000
      li t3, 50
    1:
      lw t0, 0(s0)
      lw t1, 0(s1)
      lw t2, 4(s0)
      add a0, a0, t0
      add a0, a0, t1
      add a0, a0, t2
      addi t3, t3, -1
      bnez t3, 1b
      ecall`;
    const a = run('interp', evicting);
    expect(a.x[10]).toBe(50 * 23);
    expect(run('jit', evicting)).toEqual(a);
    // With A's entry in the TLB, the group's second load lies in the unmapped page after A: a load
    // page fault there.
    const spanning = `
      li s0, 0x500c00
      lw t2, 8(s0)
      j 1f
    1:
      lw t0, 0(s0)
      lw t1, 0x400(s0)
      ecall`;
    const b = run('interp', spanning);
    expect(b.mcause).toBe(13);
    expect(run('jit', spanning)).toEqual(b);
    // A misaligned base: the group's loads read unaligned words, as the interpreter does.
    const misaligned = `
      li s0, 0x500000
      lw t2, 0(s0)
      addi s0, s0, 2
      j 1f
    1:
      lw t0, 0(s0)
      lw t1, 4(s0)
      add a0, t0, t1
      ecall`;
    const c = run('interp', misaligned);
    expect(c.x[10]).toBe((7 << 16) + 0);
    expect(run('jit', misaligned)).toEqual(c);
  });

  test('the block cache is bounded: evictions keep results identical', () => {
    const src = `
      li a0, 0
      li t0, 20
    1: addi a0, a0, 3
      andi t1, a0, 4
      beqz t1, 2f
      xori a0, a0, 5
    2: slli t2, a0, 1
      bltu t2, t0, 3f
      srli a0, a0, 1
    3: addi t0, t0, -1
      bnez t0, 1b
      ecall`;
    const a = machine(src, 'interp');
    const b = machine(src, 'jit');
    b.jit = new Jit(b, 3, undefined, 1);
    runToEcall(a, 1000);
    runToEcall(b, 1000);
    expect(snapshot(b)).toEqual(snapshot(a));
    expect(b.jit.stats.evictions).toBeGreaterThan(0);
    expect(b.jit.blocks.size).toBeLessThanOrEqual(3);
  });
});
