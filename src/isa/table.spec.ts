import fc from 'fast-check';
import { CINSNS, INSNS, maskMatch } from './table.js';
import { decode, expandCompressed, compressedRow } from './decode.js';
import { encode, Operands } from './encode.js';
import { operandsFor } from '../testing/operands.js';
import * as F from './fields.js';

describe('instruction table', () => {
  test('every pattern is 32 bits (16 for compressed) and names are unique', () => {
    for (const r of INSNS) expect(maskMatch(r.pattern).bits).toBe(32);
    for (const r of CINSNS) expect(maskMatch(r.pattern).bits).toBe(16);
    const names = [...INSNS, ...CINSNS].map((r) => r.name);
    expect(new Set(names).size).toBe(names.length);
  });

  test('no two 32-bit patterns overlap', () => {
    const mm = INSNS.map((r) => maskMatch(r.pattern));
    for (let i = 0; i < mm.length; i++) {
      for (let j = i + 1; j < mm.length; j++) {
        const common = mm[i].mask & mm[j].mask;
        const disjoint = ((mm[i].match ^ mm[j].match) & common) !== 0;
        if (!disjoint) throw new Error(`${INSNS[i].name} overlaps ${INSNS[j].name}`);
      }
    }
  });

  test('every halfword matches at most one compressed row (patterns + guards)', () => {
    const mm = CINSNS.map((r) => ({ r, ...maskMatch(r.pattern) }));
    for (let h = 0; h < 65536; h++) {
      const hits = mm.filter(({ r, mask, match }) => (h & mask) === match && (!r.guard || r.guard(h)));
      if (hits.length > 1) throw new Error(`0x${h.toString(16)} matches ${hits.map((x) => x.r.name)}`);
    }
  });

  test('every row round-trips through encode -> decode, fields intact', () => {
    INSNS.forEach((row, id) => {
      const ops = operandsFor(id);
      fc.assert(fc.property(ops, (o: Operands) => {
        const w = encode(id, o);
        expect(decode(w)).toBe(id);
        const f = row.format;
        if (['R', 'I', 'IL', 'Ishift', 'U', 'J', 'JALR', 'CSR', 'CSRI', 'AMO', 'LR', 'HLV'].includes(f)) expect(F.rd(w)).toBe(o.rd);
        if (['R', 'I', 'IL', 'Ishift', 'S', 'B', 'JALR', 'CSR', 'AMO', 'LR', 'SFENCE', 'HLV', 'HSV'].includes(f)) expect(F.rs1(w)).toBe(o.rs1);
        if (['R', 'S', 'B', 'AMO', 'SFENCE', 'HSV'].includes(f)) expect(F.rs2(w)).toBe(o.rs2);
        if (f === 'I' || f === 'IL' || f === 'JALR') expect(F.immI(w)).toBe(o.imm);
        if (f === 'S') expect(F.immS(w)).toBe(o.imm);
        if (f === 'B') expect(F.immB(w)).toBe(o.imm);
        if (f === 'J') expect(F.immJ(w)).toBe(o.imm);
        if (f === 'U') expect(F.immU(w) >>> 12).toBe(o.imm);
        if (f === 'Ishift') expect(F.shamt(w)).toBe(o.imm);
        if (f === 'CSR' || f === 'CSRI') expect(F.csr(w)).toBe(o.csr);
      }), { seed: 42, numRuns: 40 });
    });
  });

  test('decode agrees with a linear scan of the table on random words and on every row with its free bits set or clear', () => {
    const mm = INSNS.map((r) => maskMatch(r.pattern));
    const scan = (w: number) => mm.findIndex(({ mask, match }) => ((w & mask) >>> 0) === match);
    const words = mm.flatMap(({ mask, match }) => [match, (match | ~mask) >>> 0, (match | (~mask & 0x5555_5555)) >>> 0, (match | (~mask & 0xaaaa_aaaa)) >>> 0]);
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (w) => { words.push(w); }), { seed: 7, numRuns: 20_000 });
    for (const w of words) expect(decode(w)).toBe((w & 3) === 3 ? scan(w) : -1);
  });

  test('illegal words decode to -1', () => {
    expect(decode(0)).toBe(-1);
    expect(decode(0xffffffff)).toBe(-1);
    expect(decode(0x00000033 | (1 << 30) | (1 << 12))).toBe(-1); // sll with funct7 0100000
  });

  test('every legal compressed halfword expands to a decodable base instruction', () => {
    let legal = 0;
    for (let h = 0; h < 65536; h++) {
      if ((h & 3) === 3) continue;
      const w = expandCompressed(h);
      if (w === 0) { expect(compressedRow(h)).toBe(-1); continue; }
      legal++;
      expect(decode(w)).toBeGreaterThanOrEqual(0);
    }
    expect(legal).toBeGreaterThan(28000); // the exact set is checked against objdump in disasm.spec.ts
    // Spot checks against the ISA manual.
    expect(expandCompressed(0x4505)).toBe(0x00100513); // c.li a0,1 -> addi a0,zero,1
    expect(expandCompressed(0x8082)).toBe(0x00008067); // c.jr ra -> jalr zero,0(ra)
    expect(expandCompressed(0x1141)).toBe(0xff010113); // c.addi sp,-16
    expect(expandCompressed(0x0000)).toBe(0);          // defined illegal
  });
});
