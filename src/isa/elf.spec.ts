import fc from 'fast-check';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ElfError, parseElf32 } from './elf.js';
import { describeWithTools } from '../testing/jest-tools.js';
import { gccBuild, tempDir } from '../testing/toolchain.js';

const HELLO = `
static long sys(long n, long a, long b, long c) {
  register long a7 asm("a7") = n; register long a0 asm("a0") = a;
  register long a1 asm("a1") = b; register long a2 asm("a2") = c;
  asm volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2) : "memory"); return a0; }
int counter = 5;
void _start(void) { sys(64, 1, (long)"hello\\n", 6); sys(93, counter, 0, 0); for(;;); }
`;

function expectElfError(bytes: Uint8Array, message: RegExp, offset?: number) {
  try {
    parseElf32(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(ElfError);
    expect((e as ElfError).message).toMatch(message);
    if (offset !== undefined) expect((e as ElfError).offset).toBe(offset);
    return;
  }
  throw new Error('expected ElfError');
}

describeWithTools(['gcc'])('parseElf32', () => {
  let elf: Uint8Array;
  beforeAll(() => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hello.c'), HELLO);
    elf = gccBuild([join(dir, 'hello.c')], join(dir, 'hello.elf'));
  });

  test('reads entry, segments with permissions and symbols of a gcc-built ELF', () => {
    const img = parseElf32(elf);
    expect(img.symbols.get('_start')).toBe(img.entry);
    expect(img.symbols.has('counter')).toBe(true);
    const text = img.segments.find((s) => s.executable)!;
    expect(text.readable).toBe(true);
    expect(text.writable).toBe(false);
    expect(img.entry).toBeGreaterThanOrEqual(text.vaddr);
    expect(img.segments.some((s) => s.writable)).toBe(true);
  });

  test('names the problem and offset of malformed headers', () => {
    expectElfError(elf.subarray(0, 20), /too short/, 20);
    const bad = (patch: (b: Uint8Array, dv: DataView) => void) => {
      const b = elf.slice();
      patch(b, new DataView(b.buffer));
      return b;
    };
    expectElfError(bad((b) => { b[0] = 0; }), /magic/, 0);
    expectElfError(bad((b) => { b[4] = 2; }), /32-bit/, 4);
    expectElfError(bad((b) => { b[5] = 2; }), /little-endian/, 5);
    expectElfError(bad((_, dv) => dv.setUint16(18, 62, true)), /RISC-V.*62/, 18);
    expectElfError(bad((_, dv) => dv.setUint16(16, 3, true)), /ET_EXEC/, 16);
    expectElfError(bad((_, dv) => dv.setUint32(24, 4, true)), /entry point/, 24);
    expectElfError(bad((_, dv) => dv.setUint32(28, 0xfffff0, true)), /program headers/, 28);
    expectElfError(elf.subarray(0, 200), /past end of file/);
  });

  test('fuzz: truncations and byte mutations raise only ElfError', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: elf.length }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      (cut, muts) => {
        const b = elf.slice(0, cut);
        for (const [i, v] of muts) if (b.length) b[i % b.length] = v;
        try { parseElf32(b); } catch (e) { if (!(e instanceof ElfError)) throw e; }
      }), { seed: 7, numRuns: 3000 });
  });
});
