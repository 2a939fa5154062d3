/**
 * Assembler for GNU-as syntax RV32 programs, driven by the instruction table (base and
 * compressed rows) through the table-driven encoder.
 *
 * Two passes: pass 1 fixes every statement's size and offset (so sizes may not depend on labels:
 * `li` needs a constant, and automatic compression only applies to instructions whose operands
 * are registers and constants), pass 2 evaluates operands and emits bytes.
 *
 * Errors never stop at the first problem: every bad line is reported with file:line:column.
 */
import { CINSNS, INSNS, opId } from './table.js';
import { compressedRow, expandCompressed } from './decode.js';
import { encode, EncodeError, Operands } from './encode.js';
import { CSR_ADDRESSES } from './csr-names.js';
import { ABI_NAMES } from './disasm.js';
import { evaluate, EvalEnv, Expr, ExprError, hi20, isPcrelHi, lo12, parseExpr, UnresolvedError } from './expr.js';
import { writeElf32 } from './elf-writer.js';

/** Defined by the linker when a program does not define it, as GNU ld does (C start code sets gp from it). */
const GLOBAL_POINTER = '__global_pointer$';

export interface AsmProblem { file: string; line: number; column: number; message: string }

export class AsmError extends Error {
  constructor(readonly problems: AsmProblem[]) {
    super(problems.map((p) => `${p.file}:${p.line}:${p.column}: error: ${p.message}`).join('\n'));
    this.name = 'AsmError';
  }
}

export interface AsmOptions {
  fileName?: string;
  /** Address of .text (default 0x10000); other sections follow it. */
  base?: number;
  /**
   * Largest image this may produce: the bytes of .text, .rodata and .data (not .bss, which is not
   * stored). Checked before any section is filled, so a 1-line `.space` cannot make it allocate
   * more. Default 64 MiB.
   */
  maxOutputBytes?: number;
}

/** Longest operand expression, and deepest chain of `.equ` symbols: they bound the recursion of parsing and evaluating. */
const MAX_EXPR_CHARS = 1024;
const MAX_SYMBOL_DEPTH = 1000;
const DEFAULT_MAX_OUTPUT = 64 << 20;

export interface AsmSection { name: string; addr: number; bytes: Uint8Array; size: number }

export interface AsmResult {
  /** A static ELF32 executable (entry `_start`). Empty for assembleRaw. */
  elf: Uint8Array;
  entry: number;
  symbols: Map<string, number>;
  sections: AsmSection[];
}

type SectionName = '.text' | '.rodata' | '.data' | '.bss';
const SECTION_ORDER: SectionName[] = ['.text', '.rodata', '.data', '.bss'];

interface Ctx {
  pc: number;
  env: EvalEnv;
  out: (bytes: number[]) => void;
}

interface Stmt {
  line: number;
  col: number;
  section: SectionName;
  offset: number;
  size: number;
  emit(c: Ctx): void;
  /** A reservation (.space) of `size` copies of this byte, written in place rather than emitted. */
  fill?: number;
}

class LineError extends Error {
  constructor(message: string, readonly column: number) { super(message); }
}

const REG_NAMES = new Map<string, number>();
ABI_NAMES.forEach((n, i) => { REG_NAMES.set(n, i); REG_NAMES.set(`x${i}`, i); });
REG_NAMES.set('fp', 8);


/** Reverse of the compressed expansion, per compressed row: expansion word -> halfword. */
let reverseC: Array<Map<number, number>> | null = null;
function compressedFor(row: number, word: number): number | undefined {
  if (!reverseC) {
    reverseC = CINSNS.map(() => new Map<number, number>());
    for (let h = 0; h < 65536; h++) {
      const r = compressedRow(h);
      if (r >= 0 && !reverseC[r].has(expandCompressed(h))) reverseC[r].set(expandCompressed(h), h);
    }
  }
  return reverseC[row].get(word >>> 0);
}

/** Rows eligible for automatic compression (no hints, no control flow with label operands). */
const AUTO_C = new Set(['c.addi4spn', 'c.lw', 'c.sw', 'c.nop', 'c.addi', 'c.li', 'c.addi16sp', 'c.lui',
  'c.srli', 'c.srai', 'c.andi', 'c.sub', 'c.xor', 'c.or', 'c.and', 'c.slli', 'c.lwsp', 'c.jr', 'c.mv',
  'c.ebreak', 'c.jalr', 'c.add', 'c.swsp']);
function autoCompress(word: number): number | undefined {
  // `mv rd, rs` (addi rd, rs, 0) compresses to c.mv, whose expansion is add rd, x0, rs.
  if ((word & 0xfff0707f) === 0x13 && ((word >>> 7) & 31) !== 0 && ((word >>> 15) & 31) !== 0) {
    word = encode(opId('add'), { rd: (word >>> 7) & 31, rs1: 0, rs2: (word >>> 15) & 31 });
  }
  for (let r = 0; r < CINSNS.length; r++) {
    if (!AUTO_C.has(CINSNS[r].name)) continue;
    const h = compressedFor(r, word);
    if (h === undefined) continue;
    const rd = (h >> 7) & 31;
    const name = CINSNS[r].name;
    // Skip HINT encodings (rd = x0 forms and zero immediates), as GNU as does.
    if (rd === 0 && ['c.li', 'c.lui', 'c.mv', 'c.add', 'c.slli'].includes(name)) continue;
    if (name === 'c.nop' && h !== 1) continue;
    if (name === 'c.addi' && ((h >> 2) & 31) === 0 && ((h >> 12) & 1) === 0) continue;
    if ((name === 'c.slli' || name === 'c.srli' || name === 'c.srai') && ((h >> 2) & 31) === 0) continue;
    return h;
  }
  return undefined;
}

/** Splits operands on top-level commas. Returns [text, column] pairs. */
function splitOperands(s: string, col0: number): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  if (s.trim() === '') return out;
  let depth = 0, start = 0, inStr = false, quote = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = s[i];
    if (inStr && c === '\\') { i++; continue; }
    if (c === '"') { inStr = !inStr; quote = i; }
    if (inStr && i < s.length) continue;
    if (inStr) throw new LineError('unterminated string literal', col0 + quote);
    if (c === '(') depth++;
    if (c === ')') depth--;
    if ((c === ',' && depth === 0) || i === s.length) {
      const raw = s.slice(start, i);
      const lead = raw.length - raw.trimStart().length;
      out.push([raw.trim(), col0 + start + lead]);
      start = i + 1;
    }
  }
  return out;
}

function stripComment(line: string): string {
  let inStr = false, inChr = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\') { i++; continue; }
    if (c === '"' && !inChr) inStr = !inStr;
    else if (c === "'" && !inStr) inChr = !inChr;
    else if (!inStr && !inChr && (c === '#' || (c === '/' && line[i + 1] === '/'))) return line.slice(0, i);
  }
  return line;
}

function parseString(s: string, col: number): number[] {
  const m = /^"((?:\\.|[^"\\])*)"$/.exec(s.trim());
  if (!m) throw new LineError('expected a string literal', col);
  const out: number[] = [];
  const body = m[1];
  for (let i = 0; i < body.length; i++) {
    let c = body[i];
    if (c !== '\\') { for (const b of new TextEncoder().encode(c)) out.push(b); continue; }
    c = body[++i];
    const esc: Record<string, number> = { n: 10, t: 9, r: 13, '\\': 92, '"': 34, "'": 39, a: 7, b: 8, f: 12, v: 11 };
    if (c in esc) out.push(esc[c]);
    else if (/[0-7]/.test(c)) { let o = c; while (o.length < 3 && /[0-7]/.test(body[i + 1] ?? '')) o += body[++i]; out.push(parseInt(o, 8) & 0xff); }
    else if (c === 'x') { let h = ''; while (/[0-9a-fA-F]/.test(body[i + 1] ?? '')) h += body[++i]; out.push(parseInt(h, 16) & 0xff); }
    else out.push(c.charCodeAt(0));
  }
  return out;
}

const le = (v: number, n: number) => Array.from({ length: n }, (_, i) => (v >>> (8 * i)) & 0xff);

class Assembler {
  private stmts: Stmt[] = [];
  private problems: AsmProblem[] = [];
  private offsets: Record<SectionName, number> = { '.text': 0, '.rodata': 0, '.data': 0, '.bss': 0 };
  /** Largest alignment requested in each section (its start address is aligned to it, as ld does). */
  private aligns: Record<SectionName, number> = { '.text': 4, '.rodata': 4, '.data': 4, '.bss': 4 };
  private section: SectionName = '.text';
  private rvc = false;
  private optionStack: boolean[] = [];
  /** Labels: section + offset. */
  private labels = new Map<string, { section: SectionName; offset: number; line: number }>();
  private equs = new Map<string, Expr>();
  private globals = new Set<string>();
  /** Numeric local labels: for each number, (statement index, section, offset). */
  private locals = new Map<number, Array<{ idx: number; section: SectionName; offset: number }>>();
  private bases: Record<SectionName, number> = { '.text': 0, '.rodata': 0, '.data': 0, '.bss': 0 };
  /** %pcrel_hi targets by the address of their auipc. */
  private pcrelHi = new Map<number, number>();

  /** Set once the stored sections grow past maxOutput (pass 2 is then skipped). */
  private tooLarge = false;
  constructor(private readonly file: string, private readonly maxOutput: number) {}

  private problem(line: number, column: number, message: string) {
    // Statements with a %pcrel_hi half are evaluated in both passes: report each problem once.
    if (this.problems.some((p) => p.line === line && p.column === column && p.message === message)) return;
    this.problems.push({ file: this.file, line, column, message });
  }

  run(source: string, base: number, flat: boolean): AsmResult {
    source.split('\n').forEach((text, i) => {
      try { this.statement(stripComment(text), i + 1); } catch (e) {
        if (e instanceof LineError || e instanceof ExprError) this.problem(i + 1, e.column, e.message);
        else throw e;
      }
    });
    if (this.tooLarge) throw new AsmError(this.problems.sort((a, b) => a.line - b.line || a.column - b.column));
    // Layout: .text at base, then .rodata, .data (page-aligned unless flat), .bss.
    let addr = base;
    for (const s of SECTION_ORDER) {
      if (!flat && s === '.data') addr = (addr + 0xfff) & ~0xfff;
      const a = this.aligns[s];
      addr = (addr + a - 1) & ~(a - 1);
      this.bases[s] = addr;
      addr += this.offsets[s];
    }
    const buffers: Record<SectionName, Uint8Array> = {
      '.text': new Uint8Array(this.offsets['.text']), '.rodata': new Uint8Array(this.offsets['.rodata']),
      '.data': new Uint8Array(this.offsets['.data']), '.bss': new Uint8Array(0),
    };
    // Pass 2 needs %pcrel_hi targets before %pcrel_lo uses them: evaluate them first.
    this.stmts.forEach((st, idx) => this.emitStmt(st, idx, buffers, true));
    this.stmts.forEach((st, idx) => this.emitStmt(st, idx, buffers, false));
    if (this.problems.length) throw new AsmError(this.problems.sort((a, b) => a.line - b.line || a.column - b.column));
    const symbols = new Map<string, number>();
    for (const [name, l] of this.labels) symbols.set(name, (this.bases[l.section] + l.offset) >>> 0);
    for (const [name] of this.equs) {
      try { symbols.set(name, this.symbolValue(name, new Set()) >>> 0); } catch { /* unresolvable .equ: reported on use */ }
    }
    const sections = SECTION_ORDER.map((name) => ({ name, addr: this.bases[name], bytes: buffers[name], size: this.offsets[name] }));
    if (flat) return { elf: new Uint8Array(0), entry: base, symbols, sections };
    const entry = symbols.get('_start');
    if (entry === undefined) throw new AsmError([{ file: this.file, line: 1, column: 1, message: "no '_start' symbol: the entry point must be defined" }]);
    const elf = writeElf32(entry, sections.filter((s) => s.size > 0).map((s) => ({
      name: s.name, addr: s.addr, bytes: s.bytes, size: s.size,
      flags: s.name === '.text' ? 'rx' as const : s.name === '.rodata' ? 'r' as const : 'rw' as const, nobits: s.name === '.bss',
    })), [...this.labels].map(([name, l]) => ({ name, value: this.bases[l.section] + l.offset, section: l.section, global: this.globals.has(name) })));
    return { elf, entry, symbols, sections };
  }

  private emitStmt(st: Stmt, idx: number, buffers: Record<SectionName, Uint8Array>, pcrelOnly: boolean) {
    if (st.fill !== undefined) {
      if (pcrelOnly) return;
      if (st.section !== '.bss') buffers[st.section].fill(st.fill, st.offset, st.offset + st.size);
      else if (st.fill !== 0) this.problem(st.line, st.col, 'non-zero data in .bss');
      return;
    }
    const pc = (this.bases[st.section] + st.offset) | 0;
    const bytes: number[] = [];
    const env: EvalEnv = {
      dot: pc,
      symbol: (n) => (this.labels.has(n) || this.equs.has(n) || n === GLOBAL_POINTER ? this.symbolValue(n, new Set()) : undefined),
      local: (n, dir) => {
        const defs = this.locals.get(n) ?? [];
        const d = dir === 'b' ? [...defs].reverse().find((x) => x.idx <= idx) : defs.find((x) => x.idx > idx);
        return d === undefined ? undefined : this.bases[d.section] + d.offset;
      },
      pcrelHiTarget: (a) => this.pcrelHi.get(a >>> 0),
    };
    const ctx: Ctx = { pc, env, out: (b) => { for (const x of b) bytes.push(x); } };
    try {
      if (pcrelOnly) { (st as Stmt & { pcrel?: (c: Ctx) => void }).pcrel?.(ctx); return; }
      st.emit(ctx);
    } catch (e) {
      if (e instanceof LineError) this.problem(st.line, e.column, e.message);
      else if (e instanceof UnresolvedError || e instanceof EncodeError) this.problem(st.line, st.col, e.message);
      else throw e;
      return;
    }
    if (st.section === '.bss') {
      if (bytes.some((b) => b !== 0)) this.problem(st.line, st.col, 'non-zero data in .bss');
      return;
    }
    if (bytes.length !== st.size) throw new Error(`internal: statement at line ${st.line} emitted ${bytes.length} bytes, sized ${st.size}`);
    buffers[st.section].set(bytes, st.offset);
  }

  private symbolValue(name: string, seen: Set<string>): number {
    const l = this.labels.get(name);
    if (l) return this.bases[l.section] + l.offset;
    const e = this.equs.get(name);
    if (!e && name === GLOBAL_POINTER) {
      // As GNU ld's default script: MIN(__SDATA_BEGIN__ + 0x800, MAX(__DATA_BEGIN__ + 0x800, __BSS_END__ - 0x800)).
      const sdata = this.bases['.data'] + this.offsets['.data'];
      return Math.min(sdata + 0x800, Math.max(this.bases['.data'] + 0x800, this.bases['.bss'] + this.offsets['.bss'] - 0x800));
    }
    if (!e) throw new UnresolvedError(`undefined symbol '${name}'`);
    if (seen.has(name)) throw new UnresolvedError(`'${name}' is defined in terms of itself`);
    if (seen.size >= MAX_SYMBOL_DEPTH) throw new LineError(`symbol definitions nest deeper than ${MAX_SYMBOL_DEPTH} (at '${name}')`, 1);
    seen.add(name);
    return evaluate(e, {
      dot: 0, symbol: (n) => this.symbolValue(n, seen),
      local: () => undefined, pcrelHiTarget: () => undefined,
    });
  }

  /** Constant value in pass 1 (no labels allowed), or undefined when it depends on a label. */
  private constant(e: Expr): number | undefined {
    try {
      return evaluate(e, { dot: 0, symbol: (n) => (this.equs.has(n) ? this.symbolValue(n, new Set()) : undefined), local: () => undefined, pcrelHiTarget: () => undefined });
    } catch (err) {
      if (err instanceof UnresolvedError) return undefined;
      throw err;
    }
  }

  private add(size: number, col: number, line: number, emit: (c: Ctx) => void, pcrel?: (c: Ctx) => void) {
    const st: Stmt & { pcrel?: (c: Ctx) => void } = { line, col, section: this.section, offset: this.offsets[this.section], size, emit, pcrel };
    this.stmts.push(st);
    this.offsets[this.section] += size;
    const stored = this.offsets['.text'] + this.offsets['.rodata'] + this.offsets['.data'];
    if (!this.tooLarge && this.section !== '.bss' && stored > this.maxOutput) {
      this.tooLarge = true;
      this.problem(line, col, `image would be ${stored} bytes or more; the limit is ${this.maxOutput}`);
    }
  }

  private statement(text: string, line: number) {
    let rest = text;
    let col = 1;
    // Labels (possibly several).
    for (;;) {
      const m = /^(\s*)([A-Za-z_.$][\w.$]*|\d+):/.exec(rest);
      if (!m) break;
      const name = m[2];
      const at = col + m[1].length;
      if (/^\d+$/.test(name)) {
        const n = Number(name);
        if (!this.locals.has(n)) this.locals.set(n, []);
        this.locals.get(n)!.push({ idx: this.stmts.length, section: this.section, offset: this.offsets[this.section] });
      } else if (this.labels.has(name) || this.equs.has(name)) {
        throw new LineError(`symbol '${name}' is already defined (line ${this.labels.get(name)?.line ?? '?'})`, at);
      } else {
        this.labels.set(name, { section: this.section, offset: this.offsets[this.section], line });
      }
      col += m[0].length;
      rest = rest.slice(m[0].length);
    }
    const m = /^(\s*)(\S+)(.*)$/.exec(rest);
    if (!m) return;
    const mnemonic = m[2];
    const mcol = col + m[1].length;
    const opsCol = mcol + mnemonic.length;
    const ops = splitOperands(m[3], opsCol);
    if (mnemonic.startsWith('.')) this.directive(mnemonic.toLowerCase(), ops, m[3], line, mcol, opsCol);
    else this.instruction(mnemonic.toLowerCase(), ops, line, mcol);
  }

  private expr(op: [string, number] | undefined, what: string, col: number): Expr {
    if (!op || op[0] === '') throw new LineError(`missing ${what}`, col);
    if (op[0].length > MAX_EXPR_CHARS) throw new LineError(`${what}: expression is longer than ${MAX_EXPR_CHARS} characters`, op[1]);
    const { e, end } = parseExpr(op[0], 0, op[1] - 1);
    if (end !== op[0].length) throw new LineError(`unexpected '${op[0].slice(end)}' in ${what}`, op[1] + end);
    return e;
  }

  private need(ops: Array<[string, number]>, n: number | number[], mnemonic: string, col: number) {
    const ok = Array.isArray(n) ? n.includes(ops.length) : ops.length === n;
    if (!ok) throw new LineError(`${mnemonic} takes ${Array.isArray(n) ? n.join(' or ') : n} operand(s), got ${ops.length}`, col);
  }

  private directive(d: string, ops: Array<[string, number]>, raw: string, line: number, col: number, opsCol: number) {
    const constArg = (i: number, what: string) => {
      const v = this.constant(this.expr(ops[i], what, col));
      if (v === undefined) throw new LineError(`${what} must be a constant`, ops[i][1]);
      return v;
    };
    const sectionOf = (name: string): SectionName | undefined => {
      if (name === '.text' || name.startsWith('.text.')) return '.text';
      if (name === '.rodata' || name.startsWith('.rodata') || name.startsWith('.srodata')) return '.rodata';
      if (name === '.data' || name.startsWith('.data.') || name.startsWith('.sdata')) return '.data';
      if (name === '.bss' || name.startsWith('.bss.') || name.startsWith('.sbss')) return '.bss';
      return undefined;
    };
    switch (d) {
      case '.text': case '.data': case '.rodata': case '.bss':
        this.section = d as SectionName; return;
      case '.section': {
        const name = ops[0]?.[0];
        const s = name ? sectionOf(name) : undefined;
        if (!s) throw new LineError(`unsupported section '${name ?? ''}' (use .text, .rodata, .data or .bss and their subsections)`, ops[0]?.[1] ?? col);
        this.section = s; return;
      }
      case '.globl': case '.global':
        for (const [n] of ops) this.globals.add(n); return;
      case '.local': case '.type': case '.size': case '.file': case '.ident': case '.attribute': case '.weak': case '.hidden':
        return;
      case '.option': {
        const o = ops[0]?.[0];
        if (o === 'rvc') this.rvc = true;
        else if (o === 'norvc') this.rvc = false;
        else if (o === 'push') this.optionStack.push(this.rvc);
        else if (o === 'pop') { if (!this.optionStack.length) throw new LineError('.option pop without push', col); this.rvc = this.optionStack.pop()!; }
        else if (o === 'relax' || o === 'norelax' || o === 'pic' || o === 'nopic') { /* no linker relaxation here */ }
        else throw new LineError(`unknown .option '${o ?? ''}'`, ops[0]?.[1] ?? col);
        return;
      }
      case '.align': case '.p2align': case '.balign': {
        this.need(ops, [1, 2], d, col);
        const n = constArg(0, 'alignment');
        const align = d === '.balign' ? n : 2 ** n;
        if (align < 1 || align > 4096 || (align & (align - 1))) throw new LineError(`bad alignment ${align}`, ops[0][1]);
        const fill = ops.length > 1 ? constArg(1, 'fill') : undefined;
        const pad = (align - (this.offsets[this.section] % align)) % align;
        this.aligns[this.section] = Math.max(this.aligns[this.section], align);
        const text = this.section === '.text' && fill === undefined;
        this.add(pad, col, line, (c) => {
          const b: number[] = [];
          let left = pad;
          if (text) {
            if (left % 2) { b.push(0); left--; }
            if (left % 4 === 2) { b.push(0x01, 0x00); left -= 2; } // c.nop
            while (left > 0) { b.push(0x13, 0, 0, 0); left -= 4; } // nop
          } else for (let k = 0; k < pad; k++) b.push(fill ?? 0);
          c.out(b);
        });
        return;
      }
      case '.word': case '.4byte': case '.long': case '.half': case '.2byte': case '.short': case '.byte': {
        const size = d === '.byte' ? 1 : d === '.half' || d === '.2byte' || d === '.short' ? 2 : 4;
        for (const op of ops) {
          const e = this.expr(op, 'value', col);
          this.add(size, op[1], line, (c) => c.out(le(evaluate(e, c.env), size)));
        }
        return;
      }
      case '.ascii': case '.asciz': case '.string': {
        for (const [s, c0] of ops) {
          const bytes = parseString(s, c0);
          if (d !== '.ascii') bytes.push(0);
          this.add(bytes.length, c0, line, (c) => c.out(bytes));
        }
        return;
      }
      case '.space': case '.zero': case '.skip': {
        this.need(ops, [1, 2], d, col);
        const n = constArg(0, 'size');
        if (n < 0 || n > 64 << 20) throw new LineError(`bad size ${n}`, ops[0][1]);
        const fill = ops.length > 1 ? constArg(1, 'fill') & 0xff : 0;
        this.add(n, col, line, () => { /* filled by emitStmt */ });
        (this.stmts[this.stmts.length - 1] as Stmt).fill = fill;
        return;
      }
      case '.equ': case '.set': {
        this.need(ops, 2, d, col);
        const name = ops[0][0];
        if (!/^[A-Za-z_.$][\w.$]*$/.test(name)) throw new LineError(`bad symbol name '${name}'`, ops[0][1]);
        if (this.labels.has(name)) throw new LineError(`symbol '${name}' is already defined`, ops[0][1]);
        this.equs.set(name, this.expr(ops[1], 'value', col));
        return;
      }
      default:
        void raw; void opsCol;
        throw new LineError(`unknown directive ${d}`, col);
    }
  }

  private reg(op: [string, number] | undefined, what: string, col: number): number {
    if (!op) throw new LineError(`missing ${what}`, col);
    const r = REG_NAMES.get(op[0]);
    if (r === undefined) throw new LineError(`${what}: '${op[0]}' is not a register`, op[1]);
    return r;
  }

  /** Parses `imm(reg)` or `(reg)`; returns the offset expression and the register. */
  private mem(op: [string, number] | undefined, col: number): { off: Expr; base: number } {
    if (!op) throw new LineError('missing memory operand', col);
    const m = /^(.*)\(\s*([\w$]+)\s*\)$/.exec(op[0]);
    if (!m) throw new LineError(`expected offset(register), got '${op[0]}'`, op[1]);
    const base = this.reg([m[2], op[1] + op[0].indexOf('(') + 1], 'base', col);
    const off = m[1].trim() === '' ? { k: 'num', v: 0 } as Expr : this.expr([m[1].trim(), op[1]], 'offset', col);
    return { off, base };
  }

  private csr(op: [string, number] | undefined, col: number): Expr {
    if (!op) throw new LineError('missing CSR', col);
    const a = CSR_ADDRESSES.get(op[0]);
    return a !== undefined ? { k: 'num', v: a } : this.expr(op, 'CSR', col);
  }

  private fenceSet(op: [string, number]): number {
    if (!/^[iorw]+$/.test(op[0])) throw new LineError(`bad fence set '${op[0]}'`, op[1]);
    return (op[0].includes('i') ? 8 : 0) | (op[0].includes('o') ? 4 : 0) | (op[0].includes('r') ? 2 : 0) | (op[0].includes('w') ? 1 : 0);
  }

  /** Adds one 32-bit instruction (compressed when .option rvc and the operands allow it). */
  private base(name: string, line: number, col: number, operands: (c: Ctx | null) => Operands, pcrel?: (c: Ctx) => void) {
    const id = opId(name);
    let size = 4;
    let word: number | undefined;
    if (this.rvc) {
      try {
        const o = operands(null);
        word = autoCompress(encode(id, o));
        if (word !== undefined) size = 2;
      } catch (e) {
        if (!(e instanceof UnresolvedError || e instanceof EncodeError || e instanceof NeedsPass2)) throw e;
      }
    }
    const fixed = word;
    this.add(size, col, line, (c) => {
      if (fixed !== undefined) { c.out(le(fixed, 2)); return; }
      c.out(le(encode(id, operands(c)), 4));
    }, pcrel);
  }

  private instruction(mn: string, ops: Array<[string, number]>, line: number, col: number) {
    const R = (i: number, what = `operand ${i + 1}`) => this.reg(ops[i], what, col);
    /** Evaluates an expression now (pass 2) or as a constant (pass 1, throwing NeedsPass2). */
    const val = (e: Expr, c: Ctx | null): number => {
      if (c) return evaluate(e, c.env);
      const v = this.constant(e);
      if (v === undefined || hasDot(e)) throw new NeedsPass2();
      return v;
    };
    const rel = (e: Expr, c: Ctx | null): number => {
      if (!c) throw new NeedsPass2();
      return evaluate(e, c.env) - c.pc;
    };

    // Pseudo-instructions first.
    switch (mn) {
      case 'nop': this.need(ops, 0, mn, col); return this.base('addi', line, col, () => ({ rd: 0, rs1: 0, imm: 0 }));
      case 'li': {
        this.need(ops, 2, mn, col);
        const rd = R(0);
        const e = this.expr(ops[1], 'immediate', col);
        const v = this.constant(e);
        if (v === undefined) throw new LineError('li needs a constant (use la for addresses)', ops[1][1]);
        if (v < -0x80000000 || v > 0xffffffff) throw new LineError(`li value ${v} does not fit in 32 bits`, ops[1][1]);
        const s = v | 0;
        if (s >= -2048 && s < 2048) return this.base('addi', line, col, () => ({ rd, rs1: 0, imm: s }));
        this.base('lui', line, col, () => ({ rd, imm: hi20(s) }));
        if (lo12(s) !== 0) this.base('addi', line, col, () => ({ rd, rs1: rd, imm: lo12(s) }));
        return;
      }
      case 'la': case 'lla': {
        this.need(ops, 2, mn, col);
        const rd = R(0);
        const e = this.expr(ops[1], 'address', col);
        this.base('auipc', line, col, (c) => ({ rd, imm: hi20(rel(e, c)) }));
        this.base('addi', line, col, (c) => ({ rd, rs1: rd, imm: lo12(rel(e, c) + 4) }));
        return;
      }
      case 'call': case 'tail': {
        this.need(ops, [1, 2], mn, col);
        const link = mn === 'call' ? 1 : 0;
        const tmp = ops.length === 2 ? R(0) : mn === 'call' ? 1 : 6;
        const e = this.expr(ops[ops.length - 1], 'target', col);
        this.base('auipc', line, col, (c) => ({ rd: tmp, imm: hi20(rel(e, c)) }));
        this.base('jalr', line, col, (c) => ({ rd: link, rs1: tmp, imm: lo12(rel(e, c) + 4) }));
        return;
      }
      case 'mv': this.need(ops, 2, mn, col); { const [d, s] = [R(0), R(1)]; return this.base('addi', line, col, () => ({ rd: d, rs1: s, imm: 0 })); }
      case 'not': this.need(ops, 2, mn, col); { const [d, s] = [R(0), R(1)]; return this.base('xori', line, col, () => ({ rd: d, rs1: s, imm: -1 })); }
      case 'neg': this.need(ops, 2, mn, col); { const [d, s] = [R(0), R(1)]; return this.base('sub', line, col, () => ({ rd: d, rs1: 0, rs2: s })); }
      case 'seqz': this.need(ops, 2, mn, col); { const [d, s] = [R(0), R(1)]; return this.base('sltiu', line, col, () => ({ rd: d, rs1: s, imm: 1 })); }
      case 'snez': this.need(ops, 2, mn, col); { const [d, s] = [R(0), R(1)]; return this.base('sltu', line, col, () => ({ rd: d, rs1: 0, rs2: s })); }
      case 'sltz': this.need(ops, 2, mn, col); { const [d, s] = [R(0), R(1)]; return this.base('slt', line, col, () => ({ rd: d, rs1: s, rs2: 0 })); }
      case 'sgtz': this.need(ops, 2, mn, col); { const [d, s] = [R(0), R(1)]; return this.base('slt', line, col, () => ({ rd: d, rs1: 0, rs2: s })); }
      case 'j': { this.need(ops, 1, mn, col); const e = this.expr(ops[0], 'target', col); return this.base('jal', line, col, (c) => ({ rd: 0, imm: rel(e, c) })); }
      case 'jr': { this.need(ops, 1, mn, col); const s = R(0); return this.base('jalr', line, col, () => ({ rd: 0, rs1: s, imm: 0 })); }
      case 'ret': this.need(ops, 0, mn, col); return this.base('jalr', line, col, () => ({ rd: 0, rs1: 1, imm: 0 }));
      case 'beqz': case 'bnez': case 'blez': case 'bgez': case 'bltz': case 'bgtz': {
        this.need(ops, 2, mn, col);
        const r = R(0);
        const e = this.expr(ops[1], 'target', col);
        const [op, a, b] = ({ beqz: ['beq', r, 0], bnez: ['bne', r, 0], blez: ['bge', 0, r], bgez: ['bge', r, 0], bltz: ['blt', r, 0], bgtz: ['blt', 0, r] } as Record<string, [string, number, number]>)[mn];
        return this.base(op, line, col, (c) => ({ rs1: a, rs2: b, imm: rel(e, c) }));
      }
      case 'bgt': case 'ble': case 'bgtu': case 'bleu': {
        this.need(ops, 3, mn, col);
        const [a, b] = [R(0), R(1)];
        const e = this.expr(ops[2], 'target', col);
        const op = { bgt: 'blt', ble: 'bge', bgtu: 'bltu', bleu: 'bgeu' }[mn]!;
        return this.base(op, line, col, (c) => ({ rs1: b, rs2: a, imm: rel(e, c) }));
      }
      case 'csrr': { this.need(ops, 2, mn, col); const d = R(0); const c0 = this.csr(ops[1], col); return this.base('csrrs', line, col, (c) => ({ rd: d, csr: val(c0, c), rs1: 0 })); }
      case 'csrw': case 'csrs': case 'csrc': {
        this.need(ops, 2, mn, col);
        const c0 = this.csr(ops[0], col);
        const isReg = REG_NAMES.has(ops[1][0]);
        const name = { csrw: 'csrrw', csrs: 'csrrs', csrc: 'csrrc' }[mn]! + (isReg ? '' : 'i');
        if (isReg) { const s = R(1); return this.base(name, line, col, (c) => ({ rd: 0, csr: val(c0, c), rs1: s })); }
        const e = this.expr(ops[1], 'immediate', col);
        return this.base(name, line, col, (c) => ({ rd: 0, csr: val(c0, c), imm: val(e, c) }));
      }
      case 'csrwi': case 'csrsi': case 'csrci': {
        this.need(ops, 2, mn, col);
        const c0 = this.csr(ops[0], col);
        const e = this.expr(ops[1], 'immediate', col);
        return this.base(mn.replace('csr', 'csrr'), line, col, (c) => ({ rd: 0, csr: val(c0, c), imm: val(e, c) }));
      }
      case 'rdcycle': case 'rdtime': case 'rdinstret': case 'rdcycleh': case 'rdtimeh': case 'rdinstreth': {
        this.need(ops, 1, mn, col);
        const d = R(0);
        const csr = { rdcycle: 0xc00, rdtime: 0xc01, rdinstret: 0xc02, rdcycleh: 0xc80, rdtimeh: 0xc81, rdinstreth: 0xc82 }[mn]!;
        return this.base('csrrs', line, col, () => ({ rd: d, csr, rs1: 0 }));
      }
      case 'unimp': this.need(ops, 0, mn, col); return this.base('csrrw', line, col, () => ({ rd: 0, csr: 0xc00, rs1: 0 }));
    }

    if (mn.startsWith('c.')) return this.compressed(mn, ops, line, col);

    // AMO ordering suffixes.
    let name = mn;
    let aq = 0, rl = 0;
    const sfx = /^(.*\.w)\.(aqrl|aq|rl)$/.exec(mn);
    if (sfx && (sfx[1].startsWith('amo') || sfx[1] === 'lr.w' || sfx[1] === 'sc.w')) {
      name = sfx[1];
      aq = sfx[2].includes('aq') ? 1 : 0;
      rl = sfx[2].includes('rl') ? 1 : 0;
    }
    let id: number;
    try { id = opId(name); } catch { throw new LineError(`unknown instruction '${mn}'`, col); }
    const row = INSNS[id];
    // `add rd, rs1, imm` and friends: GNU as accepts the register form's name for immediates.
    if (row.format === 'R' && ops.length === 3 && !REG_NAMES.has(ops[2][0]) && INSNS.some((r) => r.name === `${name}i`)) {
      name = `${name}i`;
      id = opId(name);
    }
    const f = INSNS[id].format;
    switch (f) {
      case 'R': { this.need(ops, 3, mn, col); const [d, a, b] = [R(0), R(1), R(2)]; return this.base(name, line, col, () => ({ rd: d, rs1: a, rs2: b })); }
      case 'I': case 'Ishift': {
        this.need(ops, 3, mn, col);
        const [d, a] = [R(0), R(1)];
        const e = this.expr(ops[2], 'immediate', col);
        return this.base(name, line, col, (c) => ({ rd: d, rs1: a, imm: val(e, c) }));
      }
      case 'IL': {
        this.need(ops, 2, mn, col);
        const d = R(0);
        const { off, base } = this.mem(ops[1], col);
        return this.base(name, line, col, (c) => ({ rd: d, rs1: base, imm: val(off, c) }));
      }
      case 'S': {
        this.need(ops, 2, mn, col);
        const s = R(0);
        const { off, base } = this.mem(ops[1], col);
        return this.base(name, line, col, (c) => ({ rs1: base, rs2: s, imm: val(off, c) }));
      }
      case 'B': {
        this.need(ops, 3, mn, col);
        const [a, b] = [R(0), R(1)];
        const e = this.expr(ops[2], 'target', col);
        return this.base(name, line, col, (c) => ({ rs1: a, rs2: b, imm: rel(e, c) }));
      }
      case 'U': {
        this.need(ops, 2, mn, col);
        const d = R(0);
        const e = this.expr(ops[1], 'immediate', col);
        const pcrelHi = isPcrelHi(e);
        const value = (c: Ctx | null) => {
          const v = val(e, c);
          if (v < 0 || v > 0xfffff) throw new LineError(`immediate ${v} out of range [0, 0xfffff]`, ops[1][1]);
          return v;
        };
        return this.base(name, line, col, (c) => ({ rd: d, imm: value(c) }), pcrelHi ? (c) => {
          if (e.k === 'fn') this.pcrelHi.set(c.pc >>> 0, evaluate(e.e, c.env));
        } : undefined);
      }
      case 'J': {
        this.need(ops, [1, 2], mn, col);
        const d = ops.length === 2 ? R(0) : 1;
        const e = this.expr(ops[ops.length - 1], 'target', col);
        return this.base(name, line, col, (c) => ({ rd: d, imm: rel(e, c) }));
      }
      case 'JALR': {
        this.need(ops, [1, 2, 3], mn, col);
        if (ops.length === 1) {
          if (REG_NAMES.has(ops[0][0])) { const s = R(0); return this.base(name, line, col, () => ({ rd: 1, rs1: s, imm: 0 })); }
          const { off, base } = this.mem(ops[0], col);
          return this.base(name, line, col, (c) => ({ rd: 1, rs1: base, imm: val(off, c) }));
        }
        const d = R(0);
        if (ops.length === 3) {
          const s = R(1);
          const e = this.expr(ops[2], 'offset', col);
          return this.base(name, line, col, (c) => ({ rd: d, rs1: s, imm: val(e, c) }));
        }
        if (REG_NAMES.has(ops[1][0])) { const s = R(1); return this.base(name, line, col, () => ({ rd: d, rs1: s, imm: 0 })); }
        const { off, base } = this.mem(ops[1], col);
        return this.base(name, line, col, (c) => ({ rd: d, rs1: base, imm: val(off, c) }));
      }
      case 'CSR': {
        this.need(ops, 3, mn, col);
        const d = R(0); const c0 = this.csr(ops[1], col); const s = R(2);
        return this.base(name, line, col, (c) => ({ rd: d, csr: val(c0, c), rs1: s }));
      }
      case 'CSRI': {
        this.need(ops, 3, mn, col);
        const d = R(0); const c0 = this.csr(ops[1], col); const e = this.expr(ops[2], 'immediate', col);
        return this.base(name, line, col, (c) => ({ rd: d, csr: val(c0, c), imm: val(e, c) }));
      }
      case 'AMO': {
        this.need(ops, 3, mn, col);
        const [d, s] = [R(0), R(1)];
        const { off, base } = this.mem(ops[2], col);
        if (!(off.k === 'num' && off.v === 0)) throw new LineError('AMO address must be (register) with no offset', ops[2][1]);
        return this.base(name, line, col, () => ({ rd: d, rs1: base, rs2: s, aq, rl }));
      }
      case 'LR': case 'HLV': {
        this.need(ops, 2, mn, col);
        const d = R(0);
        const { off, base } = this.mem(ops[1], col);
        if (!(off.k === 'num' && off.v === 0)) throw new LineError('address must be (register) with no offset', ops[1][1]);
        return this.base(name, line, col, () => ({ rd: d, rs1: base, aq, rl }));
      }
      case 'HSV': {
        this.need(ops, 2, mn, col);
        const s = R(0);
        const { base } = this.mem(ops[1], col);
        return this.base(name, line, col, () => ({ rs1: base, rs2: s }));
      }
      case 'FENCE': {
        this.need(ops, [0, 2], mn, col);
        const [pred, succ] = ops.length ? [this.fenceSet(ops[0]), this.fenceSet(ops[1])] : [15, 15];
        return this.base(name, line, col, () => ({ pred, succ }));
      }
      case 'SFENCE': {
        this.need(ops, [0, 1, 2], mn, col);
        const a = ops.length > 0 ? R(0) : 0; const b = ops.length > 1 ? R(1) : 0;
        return this.base(name, line, col, () => ({ rs1: a, rs2: b }));
      }
      case 'NONE': case 'FENCEI':
        this.need(ops, 0, mn, col);
        return this.base(name, line, col, () => ({}));
    }
  }

  /** Explicit compressed mnemonics: builds the expansion and finds the row's encoding of it. */
  private compressed(mn: string, ops: Array<[string, number]>, line: number, col: number) {
    const row = CINSNS.findIndex((r) => r.name === mn);
    if (row < 0) throw new LineError(`unknown instruction '${mn}'`, col);
    const R = (i: number) => this.reg(ops[i], `operand ${i + 1}`, col);
    const E = (i: number) => this.expr(ops[i], `operand ${i + 1}`, col);
    const rel = (e: Expr, c: Ctx) => evaluate(e, c.env) - c.pc;
    let build: (c: Ctx) => number;
    const I = (name: string, o: Operands) => encode(opId(name), o);
    switch (mn) {
      case 'c.addi4spn': { this.need(ops, 3, mn, col); const d = R(0); const e = E(2); build = (c) => I('addi', { rd: d, rs1: 2, imm: evaluate(e, c.env) }); break; }
      case 'c.lw': case 'c.lwsp': { this.need(ops, 2, mn, col); const d = R(0); const m = this.mem(ops[1], col); build = (c) => I('lw', { rd: d, rs1: m.base, imm: evaluate(m.off, c.env) }); break; }
      case 'c.sw': case 'c.swsp': { this.need(ops, 2, mn, col); const s = R(0); const m = this.mem(ops[1], col); build = (c) => I('sw', { rs2: s, rs1: m.base, imm: evaluate(m.off, c.env) }); break; }
      case 'c.nop': { this.need(ops, [0, 1], mn, col); const e = ops.length ? E(0) : undefined; build = (c) => I('addi', { rd: 0, rs1: 0, imm: e ? evaluate(e, c.env) : 0 }); break; }
      case 'c.addi': case 'c.andi': { this.need(ops, 2, mn, col); const d = R(0); const e = E(1); build = (c) => I(mn === 'c.addi' ? 'addi' : 'andi', { rd: d, rs1: d, imm: evaluate(e, c.env) }); break; }
      case 'c.addi16sp': { this.need(ops, 2, mn, col); R(0); const e = E(1); build = (c) => I('addi', { rd: 2, rs1: 2, imm: evaluate(e, c.env) }); break; }
      case 'c.li': { this.need(ops, 2, mn, col); const d = R(0); const e = E(1); build = (c) => I('addi', { rd: d, rs1: 0, imm: evaluate(e, c.env) }); break; }
      case 'c.lui': { this.need(ops, 2, mn, col); const d = R(0); const e = E(1); build = (c) => I('lui', { rd: d, imm: evaluate(e, c.env) & 0xfffff }); break; }
      case 'c.srli': case 'c.srai': case 'c.slli': { this.need(ops, 2, mn, col); const d = R(0); const e = E(1); build = (c) => I(mn.slice(2), { rd: d, rs1: d, imm: evaluate(e, c.env) }); break; }
      case 'c.sub': case 'c.xor': case 'c.or': case 'c.and': case 'c.add': { this.need(ops, 2, mn, col); const [d, s] = [R(0), R(1)]; build = () => I(mn.slice(2), { rd: d, rs1: d, rs2: s }); break; }
      case 'c.mv': { this.need(ops, 2, mn, col); const [d, s] = [R(0), R(1)]; build = () => I('add', { rd: d, rs1: 0, rs2: s }); break; }
      case 'c.j': case 'c.jal': { this.need(ops, 1, mn, col); const e = E(0); build = (c) => I('jal', { rd: mn === 'c.jal' ? 1 : 0, imm: rel(e, c) }); break; }
      case 'c.beqz': case 'c.bnez': { this.need(ops, 2, mn, col); const s = R(0); const e = E(1); build = (c) => I(mn === 'c.beqz' ? 'beq' : 'bne', { rs1: s, rs2: 0, imm: rel(e, c) }); break; }
      case 'c.jr': case 'c.jalr': { this.need(ops, 1, mn, col); const s = R(0); build = () => I('jalr', { rd: mn === 'c.jalr' ? 1 : 0, rs1: s, imm: 0 }); break; }
      case 'c.ebreak': { this.need(ops, 0, mn, col); build = () => I('ebreak', {}); break; }
      default: throw new LineError(`unknown instruction '${mn}'`, col);
    }
    this.add(2, col, line, (c) => {
      let w: number;
      try { w = build(c); } catch (e) { if (e instanceof EncodeError) throw new LineError(`${mn}: ${e.message}`, col); throw e; }
      const h = compressedFor(row, w);
      if (h === undefined) throw new LineError(`${mn}: operands cannot be encoded in the compressed form`, col);
      c.out(le(h, 2));
    });
  }
}

class NeedsPass2 extends Error {}

function hasDot(e: Expr): boolean {
  switch (e.k) {
    case 'dot': case 'local': return true;
    case 'un': case 'fn': return hasDot(e.e);
    case 'bin': return hasDot(e.a) || hasDot(e.b);
    default: return false;
  }
}

/**
 * Assembles and links `source` into a static ELF32 (text at `base`, default 0x10000; entry
 * `_start`). Raises: AsmError listing every problem with file:line:column.
 */
export function assemble(source: string, opts: AsmOptions = {}): AsmResult {
  return new Assembler(opts.fileName ?? '<input>', opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT).run(source, opts.base ?? 0x10000, false);
}

/**
 * Assembles `source` into one flat image at `base` (sections concatenated in the order
 * .text, .rodata, .data, .bss, 4-byte aligned), for code generated at run time.
 * Raises: AsmError.
 */
export function assembleRaw(source: string, opts: { base: number; fileName?: string }): { bytes: Uint8Array; symbols: Map<string, number> } {
  const r = new Assembler(opts.fileName ?? '<generated>', DEFAULT_MAX_OUTPUT).run(source, opts.base, true);
  // Addresses may be int32 (negative above 2 GiB): offsets are taken modulo 2^32.
  const end = Math.max(...r.sections.map((s) => ((s.addr - opts.base) >>> 0) + s.size));
  const bytes = new Uint8Array(end);
  for (const s of r.sections) if (s.name !== '.bss') bytes.set(s.bytes, (s.addr - opts.base) >>> 0);
  return { bytes, symbols: r.symbols };
}
