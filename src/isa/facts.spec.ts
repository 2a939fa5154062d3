import fc from 'fast-check';
import { FACTS, KIND_FACTS } from './facts.js';
import { CIMM, IMM, extractor, immExpr, immRange, place } from './imm.js';
import { INSNS, maskMatch } from './table.js';
import { decode } from './decode.js';
import { encode, operands } from './encode.js';

describe('instruction facts (the contract of facts.ts)', () => {
  test('every row has facts, and they follow its kind', () => {
    expect(FACTS.length).toBe(INSNS.length);
    INSNS.forEach((r, id) => {
      const f = FACTS[id];
      expect(KIND_FACTS[f.kind]).toBeDefined();
      // Every access has a size; only accesses have one; only loads sign-extend.
      expect(f.size !== 0).toBe(f.readsMem || f.writesMem);
      if (f.signed) expect(f.readsMem && !f.writesMem).toBe(true);
      // Every memory access may fault.
      if (f.readsMem || f.writesMem) expect(f.mayTrap).toBe(true);
      // Whatever ends a chain ends its block; control flow ends a block.
      if (f.endsChain) expect(f.endsBlock).toBe(true);
      if (f.transfers) expect(f.endsBlock && !f.mayTrap).toBe(true);
      expect(f.transfers).toBe(['branch', 'jal', 'jalr'].includes(f.kind));
      // A block ends after whatever may change the mode, translation or code: the privileged rows
      // that are not loads or stores, CSR accesses and fence.i.
      if (f.privileged && !f.readsMem && !f.writesMem) expect(f.endsChain).toBe(true);
      // Formats without a destination field never write rd.
      if (['S', 'B', 'FENCE', 'FENCEI', 'NONE', 'SFENCE', 'HSV'].includes(r.format)) expect(f.writesRd).toBe(false);
      // Plain accesses are exactly lb..sw: the I/S formats with an offset.
      expect(f.plain).toBe(r.format === 'IL' || r.format === 'S');
      if (f.startsBlock) expect(f.endsBlock).toBe(true);
    });
  });

  test('the facts of some rows, spelled out', () => {
    const of = (name: string) => FACTS[INSNS.findIndex((r) => r.name === name)];
    expect(of('lb')).toMatchObject({ kind: 'load', size: 1, signed: true, plain: true, mayTrap: true, endsBlock: false });
    expect(of('lhu')).toMatchObject({ kind: 'load', size: 2, signed: false });
    expect(of('sw')).toMatchObject({ kind: 'store', size: 4, writesMem: true, writesRd: false });
    expect(of('sc.w')).toMatchObject({ kind: 'sc', size: 4, writesMem: true, writesRd: true, plain: false });
    expect(of('beq')).toMatchObject({ kind: 'branch', endsBlock: true, endsChain: false, mayTrap: false });
    expect(of('ecall')).toMatchObject({ kind: 'system', endsBlock: true, endsChain: true, mayTrap: true });
    expect(of('csrrs')).toMatchObject({ kind: 'csr', startsBlock: true, endsChain: true });
    expect(of('div')).toMatchObject({ kind: 'div', mayTrap: false, writesRd: true });
    expect(of('hsv.h')).toMatchObject({ kind: 'hsv', size: 2, privileged: true, writesMem: true });
    expect(of('fence')).toMatchObject({ kind: 'fence', endsBlock: false, mayTrap: false });
  });
});

describe('immediates declared once per format (imm.ts)', () => {
  const layouts = { ...IMM, ...Object.fromEntries(Object.entries(CIMM).map(([k, v]) => [`c.${k}`, v])) };
  test.each(Object.keys(layouts))('%s: extract(place(v)) === v over its whole range', (k) => {
    const l = layouts[k as keyof typeof layouts];
    const [lo, hi, step] = immRange(l);
    const x = extractor(l);
    fc.assert(fc.property(fc.integer({ min: lo / step, max: hi / step }), (u) => {
      expect(x(place(l, u * step))).toBe(u * step);
    }), { seed: 1501, numRuns: 500 });
    for (const v of [lo, hi, 0]) expect(x(place(l, v))).toBe(v);
  });

  test('a layout touches only its pieces\' bits, and the expression is the extractor', () => {
    fc.assert(fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (w) => {
      for (const l of Object.values(IMM)) {
        const f = new Function('w', `return ${immExpr(l)};`) as (w: number) => number;
        const v = extractor(l)(w);
        expect(f(w)).toBe(v);
        const bits = l.pieces.reduce((m, p) => m | (((2 ** p.len - 1) << p.pos) >>> 0), 0) >>> 0;
        expect(place(l, v)).toBe((w & bits) >>> 0);
      }
    }), { seed: 1502, numRuns: 2000 });
  });

  test('the B layout is the ISA manual\'s (hand-checked words)', () => {
    // beq x0, x0, -4 = 0xfe000ee3; bne x1, x2, 2048 = 0x00209063 | imm[11] at bit 7
    expect(extractor(IMM.B)(0xfe000ee3 | 0)).toBe(-4);
    expect(extractor(IMM.B)(0x00209063 | 0x80)).toBe(2048);
    expect(extractor(IMM.J)(0x0000006f | (1 << 31) | (0x3ff << 21) | (1 << 20) | (0xff << 12))).toBe(-2);
  });
});

describe('encode(decode(w)) === w', () => {
  test('for random words of every row (FENCE and FENCE.I: with their reserved fields zero)', () => {
    INSNS.forEach((r, id) => {
      const { mask, match } = maskMatch(r.pattern);
      const reserved = r.format === 'FENCE' ? 0xf00f8f80 : r.format === 'FENCEI' ? 0xffff8f80 : 0;
      fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (rand) => {
        const w = (((rand & ~mask) | match) & ~reserved) >>> 0;
        expect(decode(w)).toBe(id);
        expect(encode(id, operands(id, w))).toBe(w);
      }), { seed: 1503 + id, numRuns: 200 });
    });
  });
});
