import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assemble, assembleRaw, AsmError } from './assembler.js';
import { CINSNS, INSNS } from './table.js';
import { Operands } from './encode.js';
import { operandsFor } from '../testing/operands.js';
import { compressedRow, expandCompressed } from './decode.js';
import { ABI_NAMES } from './disasm.js';
import * as F from './fields.js';
import { parseElf32 } from './elf.js';
import { describeWithTools } from '../testing/jest-tools.js';
import { MARCH, qemuRun, tempDir, TOOLS } from '../testing/toolchain.js';
import { samplePrograms } from '../testing/random-programs.js';

const R = (r: number) => ABI_NAMES[r];
const rel = (v: number) => (v >= 0 ? `.+${v}` : `.-${-v}`);
const sfx = (aq: number, rl: number) => (aq ? (rl ? '.aqrl' : '.aq') : rl ? '.rl' : '');
const FENCE = (v: number) => ['i', 'o', 'r', 'w'].filter((_, i) => (v >> (3 - i)) & 1).join('');

/** GNU-as text of a base instruction with the given operands (no aliases). */
function text(id: number, o: Required<Operands>): string {
  const r = INSNS[id];
  const n = r.name;
  switch (r.format) {
    case 'R': return `${n} ${R(o.rd)}, ${R(o.rs1)}, ${R(o.rs2)}`;
    case 'I': case 'Ishift': return `${n} ${R(o.rd)}, ${R(o.rs1)}, ${o.imm}`;
    case 'IL': case 'JALR': return `${n} ${R(o.rd)}, ${o.imm}(${R(o.rs1)})`;
    case 'S': return `${n} ${R(o.rs2)}, ${o.imm}(${R(o.rs1)})`;
    case 'B': return `${n} ${R(o.rs1)}, ${R(o.rs2)}, ${rel(o.imm)}`;
    case 'U': return `${n} ${R(o.rd)}, ${o.imm}`;
    case 'J': return `${n} ${R(o.rd)}, ${rel(o.imm)}`;
    case 'CSR': return `${n} ${R(o.rd)}, ${o.csr}, ${R(o.rs1)}`;
    case 'CSRI': return `${n} ${R(o.rd)}, ${o.csr}, ${o.imm}`;
    case 'AMO': return `${n}${sfx(o.aq, o.rl)} ${R(o.rd)}, ${R(o.rs2)}, (${R(o.rs1)})`;
    case 'LR': return `${n}${sfx(o.aq, o.rl)} ${R(o.rd)}, (${R(o.rs1)})`;
    case 'FENCE': return `${n} ${FENCE(o.pred)}, ${FENCE(o.succ)}`;
    case 'SFENCE': return `${n} ${R(o.rs1)}, ${R(o.rs2)}`;
    case 'HLV': return `${n} ${R(o.rd)}, (${R(o.rs1)})`;
    case 'HSV': return `${n} ${R(o.rs2)}, (${R(o.rs1)})`;
    default: return n;
  }
}

/** GNU-as text of a compressed halfword with its explicit c.* mnemonic, or null for hints. */
function ctext(h: number): string | null {
  const row = compressedRow(h);
  const w = expandCompressed(h);
  if (row < 0) return null;
  const n = CINSNS[row].name;
  const rd = F.rd(w), rs1 = F.rs1(w), rs2 = F.rs2(w), immI = F.immI(w);
  switch (n) {
    case 'c.addi4spn': return `${n} ${R(rd)}, sp, ${immI}`;
    case 'c.lw': case 'c.lwsp': return `${n} ${R(rd)}, ${immI}(${R(rs1)})`;
    case 'c.sw': case 'c.swsp': return `${n} ${R(rs2)}, ${F.immS(w)}(${R(rs1)})`;
    case 'c.nop': return immI === 0 ? n : null;
    case 'c.addi': return immI === 0 ? null : `${n} ${R(rd)}, ${immI}`;
    case 'c.li': return rd === 0 ? null : `${n} ${R(rd)}, ${immI}`;
    case 'c.addi16sp': return `${n} sp, ${immI}`;
    case 'c.lui': return rd === 0 ? null : `${n} ${R(rd)}, ${F.immU(w) >>> 12}`;
    case 'c.srli': case 'c.srai': case 'c.slli': return rd === 0 || F.shamt(w) === 0 ? null : `${n} ${R(rd)}, ${F.shamt(w)}`;
    case 'c.andi': return `${n} ${R(rd)}, ${immI}`;
    case 'c.sub': case 'c.xor': case 'c.or': case 'c.and': case 'c.add': return rd === 0 ? null : `${n} ${R(rd)}, ${R(rs2)}`;
    case 'c.mv': return rd === 0 ? null : `${n} ${R(rd)}, ${R(rs2)}`;
    case 'c.j': case 'c.jal': return `${n} ${rel(F.immJ(w))}`;
    case 'c.beqz': case 'c.bnez': return `${n} ${R(rs1)}, ${rel(F.immB(w))}`;
    case 'c.jr': case 'c.jalr': return `${n} ${R(rs1)}`;
    case 'c.ebreak': return n;
    default: return null;
  }
}

/** GNU as's bytes for .text of `source` (no relaxation). */
function gnuBytes(source: string): Uint8Array {
  const dir = tempDir();
  writeFileSync(join(dir, 'a.s'), source);
  execFileSync(TOOLS.as.bin, [`-march=${MARCH}_h`, '-mno-relax', '-o', join(dir, 'a.o'), join(dir, 'a.s')]);
  execFileSync('riscv64-unknown-elf-objcopy', ['-O', 'binary', '-j', '.text', join(dir, 'a.o'), join(dir, 'a.bin')]);
  return new Uint8Array(readFileSync(join(dir, 'a.bin')));
}

describeWithTools(['as', 'objdump', 'qemu'])('assembler vs GNU as', () => {
  test('random operands for every row assemble to the same bytes', () => {
    const lines: string[] = [];
    INSNS.forEach((row, id) => {
      if (row.ext === 'Xdomain' || row.ext === 'Xhvpm') return; // hvsim's own extensions: GNU as does not know them (protection-domains.spec.ts and xhvpm.spec.ts check them)
      const ops = operandsFor(id, { minFenceSet: 1 });
      for (const o of fc.sample(ops, { seed: 99 + id, numRuns: 25 })) {
        if (row.name === 'lr.w') o.rs2 = 0;
        lines.push(text(id, o));
      }
    });
    expect(lines.length).toBeGreaterThanOrEqual(2000);
    const src = `  .option norvc\n  .text\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
    const ours = assembleRaw(src, { base: 0 }).bytes;
    const theirs = gnuBytes(src);
    const diffs: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      const a = new DataView(ours.buffer).getUint32(4 * i, true), b = new DataView(theirs.buffer, theirs.byteOffset).getUint32(4 * i, true);
      if (a !== b) diffs.push(`${lines[i]}: ours ${a.toString(16)} GNU ${b.toString(16)}`);
    }
    expect(diffs.slice(0, 10)).toEqual([]);
    expect(ours.length).toBe(theirs.length);
  });

  test('every compressed row, with explicit c.* mnemonics, assembles to the same halfwords', () => {
    const byRow = new Map<number, number[]>();
    for (let h = 0; h < 65536; h++) {
      const r = compressedRow(h);
      if (r >= 0 && ctext(h) !== null) (byRow.get(r) ?? byRow.set(r, []).get(r)!).push(h);
    }
    expect(byRow.size).toBe(CINSNS.length);
    const halves = [...byRow.values()].flatMap((hs) => fc.sample(fc.constantFrom(...hs), { seed: 5, numRuns: 20 }));
    const src = `  .option rvc\n  .text\n${halves.map((h) => `  ${ctext(h)}`).join('\n')}\n`;
    const ours = assembleRaw(src, { base: 0 }).bytes;
    const theirs = gnuBytes(src);
    const diffs = halves.filter((h, i) => (ours[2 * i] | (ours[2 * i + 1] << 8)) !== (theirs[2 * i] | (theirs[2 * i + 1] << 8))).map((h) => ctext(h));
    expect(diffs.slice(0, 10)).toEqual([]);
    expect(ours.length).toBe(theirs.length);
  });

  test('ELFs written by the assembler run under qemu-riscv32 like the GNU-linked ones', () => {
    const dir = tempDir();
    samplePrograms(25, 777).forEach((src, i) => {
      const elf = join(dir, `p${i}.elf`);
      writeFileSync(elf, assemble(src).elf);
      chmodSync(elf, 0o755);
      const r = qemuRun(elf);
      // The program dumps its registers: 29 words + a 256-byte buffer, then exits.
      expect(r.stdout.length).toBe(29 * 4 + 256);
      expect(r.status).toBeLessThan(128);
    });
  });
});

describe('assembler', () => {
  test('a section is placed at its largest .align (regression: .bss started unaligned, so aligned labels were not)', () => {
    const r = assemble('.globl _start\n.text\n_start:\n  j _start\n.data\nmsg: .ascii "v"\n.bss\n.align 12\nbuf: .space 4096\n');
    expect(r.symbols.get('buf')! % 4096).toBe(0);
    expect(r.sections.find((x) => x.name === '.bss')!.addr % 4096).toBe(0);
  });

  test('large .space and .bss reservations assemble (regression: spread of a huge array overflowed the stack)', () => {
    const r = assemble('.globl _start\n.text\n_start:\n  j _start\n.data\n  .space 3000000, 7\n.bss\n  .space 4194304\n');
    const data = r.sections.find((s) => s.name === '.data')!;
    expect(data.size).toBe(3_000_000);
    expect(data.bytes[2_999_999]).toBe(7);
    expect(r.sections.find((s) => s.name === '.bss')!.size).toBe(4194304);
  });

  test('pseudo-instructions, local labels, sections and %hi/%lo/%pcrel produce a loadable ELF', () => {
    const r = assemble(`
      .equ N, 3
      .text
      .globl _start
    _start:
      li t0, 0x12345678
      li t1, -1
      la a0, msg
    1: addi t0, t0, -1
      bnez t0, 1b
      lui a1, %hi(msg)
      addi a1, a1, %lo(msg)
    2: auipc a2, %pcrel_hi(msg)
      addi a2, a2, %pcrel_lo(2b)
      call f
      tail f
    f: ret
      .rodata
    msg: .asciz "hi\\n"
      .data
      .balign 8
    tbl: .word msg, N * 4, 1f
    1: .half -1
      .byte 'a', 0x7f
      .bss
    buf: .zero 100
    `, { fileName: 't.s' });
    const img = parseElf32(r.elf);
    expect(img.entry).toBe(r.symbols.get('_start'));
    expect(r.symbols.get('msg')).toBeGreaterThan(r.symbols.get('f')!);
    expect(r.symbols.get('tbl')! % 4096).toBe(0);
    const data = r.sections.find((s) => s.name === '.data')!;
    const dv = new DataView(data.bytes.buffer);
    expect(dv.getUint32(0, true)).toBe(r.symbols.get('msg'));
    expect(dv.getUint32(4, true)).toBe(12);
    expect(dv.getUint32(8, true)).toBe(r.symbols.get('tbl')! + 12);
    expect(r.sections.find((s) => s.name === '.bss')!.size).toBe(100);
    expect(img.segments.find((s) => s.writable)!.memsz).toBeGreaterThan(img.segments.find((s) => s.writable)!.filesz);
  });

  test('reports every bad line with file:line:column', () => {
    let err: AsmError | undefined;
    try {
      assemble('_start:\n  addi a0, a1\n  frob a0\n  addi a0, a0, 5000\n  lw a0, 4(q9)\n  .bogus\n  j nowhere\n', { fileName: 'bad.s' });
    } catch (e) { err = e as AsmError; }
    expect(err).toBeInstanceOf(AsmError);
    const p = err!.problems.map((x) => `${x.line}:${x.column}:${x.message}`);
    expect(p).toEqual([
      expect.stringMatching(/^2:3:addi takes 3 operand/),
      expect.stringMatching(/^3:3:unknown instruction 'frob'/),
      expect.stringMatching(/^4:\d+:.*5000 out of range/),
      expect.stringMatching(/^5:\d+:.*'q9' is not a register/),
      expect.stringMatching(/^6:3:unknown directive \.bogus/),
      expect.stringMatching(/^7:\d+:undefined symbol 'nowhere'/),
    ]);
    expect(err!.message.split('\n')[0]).toMatch(/^bad\.s:2:3: error: /);
  });

  test('compression is off by default and on with .option rvc', () => {
    const plain = assembleRaw('addi a0, a0, 1\nmv a1, a0\n', { base: 0 }).bytes;
    const rvc = assembleRaw('.option rvc\naddi a0, a0, 1\nmv a1, a0\n', { base: 0 }).bytes;
    expect(plain.length).toBe(8);
    expect([...rvc]).toEqual([0x05, 0x05, 0xaa, 0x85]); // c.addi a0,1 ; c.mv a1,a0
  });

  test('a missing _start is an error', () => {
    expect(() => assemble('nop\n')).toThrow(/_start/);
  });

  const problemsOf = (src: string, opts = {}) => {
    try { assemble(src, opts); } catch (e) {
      expect(e).toBeInstanceOf(AsmError);
      return (e as AsmError).problems;
    }
    throw new Error('assembled');
  };

  test('an unterminated string is an error (regression: .ascii "abc emitted nothing)', () => {
    expect(problemsOf('_start: nop\n.data\nx: .ascii "abc\n')).toEqual([expect.objectContaining({ line: 3, message: expect.stringMatching(/unterminated string/) })]);
    expect(problemsOf('_start: nop\n.data\n.asciz "a\\"\n')[0].message).toMatch(/unterminated string/);
    // An escaped backslash before the closing quote ends the string.
    const r = assemble('_start: nop\n.data\n.ascii "a\\\\", "b"\n');
    expect([...r.sections.find((x) => x.name === '.data')!.bytes]).toEqual([97, 92, 98]);
  });

  test('deeply nested or very long expressions are AsmErrors, not RangeErrors (regression: 100,000 parentheses)', () => {
    const deep = '('.repeat(100_000) + '1' + ')'.repeat(100_000);
    expect(problemsOf(`_start: li a0, ${deep}\n`)[0].message).toMatch(/expression is longer than 1024 characters/);
    expect(problemsOf(`_start: li a0, ${'-'.repeat(100_000)}1\n`)[0].message).toMatch(/longer than 1024/);
    expect(problemsOf(`_start: li a0, ${'1+'.repeat(100_000)}1\n`)[0].message).toMatch(/longer than 1024/);
    // Within the bound, nesting still works.
    expect(assemble(`_start: li a0, ${'('.repeat(300)}1${')'.repeat(300)}\n`).entry).toBe(0x10000);
    // A chain of 20,000 .equ definitions each naming the previous one.
    const chain = Array.from({ length: 20_000 }, (_, i) => `.equ s${i + 1}, s${i}+1`).join('\n');
    expect(problemsOf(`.equ s0, 0\n${chain}\n_start: li a0, s20000\n`)[0].message).toMatch(/nest deeper than 1000/);
  });

  test('output is bounded: .space past maxOutputBytes is an error before any byte is produced (regression: 81 bytes gave 64 MiB)', () => {
    const src = '.globl _start\n.text\n_start: j _start\n.data\n.space 67108864\n';
    expect(problemsOf(src, { maxOutputBytes: 16 << 20 })[0].message).toMatch(/image would be 67108868 bytes or more; the limit is 16777216/);
    expect(problemsOf('_start: nop\n.data\n.space 10000000\n.space 10000000\n', { maxOutputBytes: 16 << 20 })).toHaveLength(1);
    // .bss is not stored: only its own bound applies.
    expect(assemble('_start: nop\n.bss\n.space 33554432\n', { maxOutputBytes: 16 << 20 }).sections.find((x) => x.name === '.bss')!.size).toBe(33554432);
  });
});
