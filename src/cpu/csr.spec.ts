import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CSR_BY_ADDR, CSR_ROWS } from './csr.js';
import { CSR_NAMES } from '../isa/csr-names.js';
import { Hart, PRIV_M } from './hart.js';
import { PhysMem } from '../mmu/phys.js';

describe('CSR table', () => {
  test('addresses are unique, names are the standard ones, and the lookup table agrees', () => {
    expect(new Set(CSR_ROWS.map((r) => r.addr)).size).toBe(CSR_ROWS.length);
    for (const r of CSR_ROWS) {
      expect(CSR_NAMES.get(r.addr)).toBe(r.name);
      expect(CSR_BY_ADDR[r.addr]).toBe(r);
    }
  });

  test('writable rows clear to zero, except the bits the spec hardwires to one', () => {
    const h = new Hart(PhysMem.ofSize(1 << 16));
    h.priv = PRIV_M;
    const HARDWIRED: Record<number, number> = { 0x301: -1 /* misa is read-only */, 0x303: 0x444 /* VS interrupts */ };
    for (const r of CSR_ROWS) {
      if ((r.addr >> 10) === 3) continue; // read-only by address
      r.write(h, -1);
      r.write(h, 0);
      const v = r.read(h);
      if (HARDWIRED[r.addr] === undefined) expect([r.name, v]).toEqual([r.name, 0]);
      else if (HARDWIRED[r.addr] !== -1) expect(v).toBe(HARDWIRED[r.addr]);
    }
  });

  test('docs/isa.md lists every implemented CSR with its support level', () => {
    const doc = readFileSync(join(process.cwd(), 'docs/isa.md'), 'utf8');
    for (const r of CSR_ROWS) expect(doc).toContain(`| ${r.name} | ${r.support} |`);
  });
});
