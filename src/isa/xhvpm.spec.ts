import { assembleRaw } from './assembler.js';
import { decode } from './decode.js';
import { disassembleRange } from './disasm.js';
import { encode } from './encode.js';
import { FACTS } from './facts.js';
import { INSNS } from './table.js';

/** Xhvpm (technique 6's pmret): GNU binutils do not know it, so it is checked here instead. */
describe('Xhvpm: pmret', () => {
  const id = INSNS.findIndex((r) => r.name === 'pmret');

  test('is one row in the custom-0 opcode space', () => {
    expect(id).toBeGreaterThanOrEqual(0);
    expect(INSNS.filter((r) => r.ext === 'Xhvpm').map((r) => r.name)).toEqual(['pmret']);
    expect(encode(id, {})).toBe(0x0000100b);
    expect(decode(0x0000100b)).toBe(id);
    // Other custom-0 words are not pmret.
    expect(decode(0x0000008b)).not.toBe(id);
    expect(decode(0x0010000b)).not.toBe(id); // (dgate, funct3 000, of technique 7)
  });

  test('assembles and disassembles like the other rows', () => {
    const { bytes } = assembleRaw('.text\n  pmret\n  nop\n', { base: 0x1000 });
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x0b, 0x10, 0, 0]);
    expect(disassembleRange(bytes, 0x1000).map((l) => l.text.trim())).toEqual(['pmret', 'nop']);
  });

  test('facts: system kind, ends the block and the chain, may trap, privileged', () => {
    expect(FACTS[id]).toMatchObject({ kind: 'system', endsBlock: true, endsChain: true, mayTrap: true, privileged: true, writesRd: false, readsMem: false, writesMem: false });
  });
});
