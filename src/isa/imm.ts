/**
 * Immediate layouts, declared ONCE per format in QEMU's decodetree notation
 * (`%imm_b 31:s1 7:1 25:6 8:4 !function=ex_shift_1`): a list of pieces `pos:len` of the
 * instruction word, most significant piece first, concatenated; `s` before the length makes the
 * immediate sign-extend from that piece; `shift` scales the result (branch and jump offsets are
 * in 2-byte units, U immediates sit in bits 31:12).
 *
 * Everything else that knows where an immediate lives is generated from these declarations: the
 * field extractors (fields.ts), the encoder's placement (encode.ts, and the 32-bit encoders of the
 * compressed expansions in table.ts), and the immediate expressions spliced into the interpreter,
 * the JIT and the lookahead emulator (cpu/template.ts). A test checks extract(place(v)) === v for
 * every value of every format's range.
 */

/** One piece: `len` bits of the word starting at bit `pos`, landing at bit `at` of the immediate. */
export interface ImmPiece {
  readonly pos: number;
  readonly len: number;
  readonly at: number;
  /** The immediate's sign bit is this piece's top bit. */
  readonly signed: boolean;
}

export interface ImmLayout {
  /** The QEMU-style declaration it was parsed from (for messages and docs). */
  readonly decl: string;
  readonly pieces: readonly ImmPiece[];
  /** Total width of the immediate including the shift (e.g. 13 for B: offsets -4096..4094). */
  readonly width: number;
  readonly signed: boolean;
  /** Low bits that are always zero (the value is a multiple of 1 << shift). */
  readonly shift: number;
}

/**
 * Parses a layout: pieces `pos:len` or `pos:slen` (signed), most significant first, then an
 * optional left shift. Raises: Error on malformed text (a programming error in this file).
 */
export function layout(decl: string, shift = 0): ImmLayout {
  const parts = decl.trim().split(/\s+/).map((p) => {
    const m = /^(\d+):(s?)(\d+)$/.exec(p);
    if (m === null) throw new Error(`bad immediate piece ${p} in ${decl}`);
    return { pos: Number(m[1]), len: Number(m[3]), signed: m[2] === 's' };
  });
  let at = shift + parts.reduce((n, p) => n + p.len, 0);
  const width = at;
  const pieces = parts.map((p, i) => {
    if (p.signed && i !== 0) throw new Error(`only the first piece may be signed: ${decl}`);
    at -= p.len;
    return { ...p, at };
  });
  return { decl: shift ? `${decl} <<${shift}` : decl, pieces, width, signed: parts[0].signed, shift };
}

/**
 * The immediate of each 32-bit format that has one (RV32 unprivileged spec, figure 2.4;
 * CSR is the 12-bit CSR address, CSRI's 5-bit unsigned immediate sits in the rs1 field and is
 * read as rs1).
 */
export const IMM = {
  I: layout('20:s12'),
  S: layout('25:s7 7:5'),
  B: layout('31:s1 7:1 25:6 8:4', 1),
  U: layout('12:s20', 12),
  J: layout('31:s1 12:8 20:1 21:10', 1),
  Ishift: layout('20:5'),
  CSR: layout('20:12'),
} as const satisfies Record<string, ImmLayout>;

/** Immediates of the compressed formats, on the 16-bit halfword (QEMU's insn16.decode). */
export const CIMM = {
  imm6: layout('12:s1 2:5'),
  uimm6: layout('12:1 2:5'),
  addi4spn: layout('7:4 11:2 5:1 6:1', 2),
  lw: layout('5:1 10:3 6:1', 2),
  j: layout('12:s1 8:1 9:2 6:1 7:1 2:1 11:1 3:3', 1),
  addi16sp: layout('12:s1 3:2 5:1 2:1 6:1', 4),
  lui: layout('12:s1 2:5', 12),
  b: layout('12:s1 5:2 2:1 10:2 3:2', 1),
  lwsp: layout('2:2 12:1 4:3', 2),
  swsp: layout('7:2 9:4', 2),
} as const satisfies Record<string, ImmLayout>;

const hex = (v: number) => `0x${(v >>> 0).toString(16)}`;

/**
 * JavaScript expression of a layout's immediate in terms of the word variable `w` (int32 result).
 * Used as written: the interpreter's and JIT's spliced code, and (compiled) the extractors.
 */
export function immExpr(l: ImmLayout, w = 'w'): string {
  const terms = l.pieces.map(({ pos, len, at, signed }) => {
    const mask = len === 32 ? -1 : (1 << len) - 1;
    // A signed piece reaching bit 31 sign-extends with an arithmetic shift.
    if (signed && pos + len === 32) {
      if (at === pos) return `(${w} & ${hex(mask << pos)})`;
      return at === 0 ? `(${w} >> ${pos})` : `((${w} >> ${pos}) << ${at})`;
    }
    if (signed) return `(((${w} << ${32 - pos - len}) >> ${32 - len}) << ${at})`;
    if (at === pos) return `(${w} & ${hex(mask << pos)})`;
    if (pos + len === 32) return at === 0 ? `(${w} >>> ${pos})` : `((${w} >>> ${pos}) << ${at})`;
    const field = pos === 0 ? `(${w} & ${hex(mask)})` : `((${w} >>> ${pos}) & ${hex(mask)})`;
    return at === 0 ? field : `(${field} << ${at})`;
  });
  return terms.length === 1 ? terms[0] : `(${terms.join(' | ')})`;
}

/** The extractor of a layout, compiled from its expression: `(w) => immediate`, allocation-free. */
export function extractor(l: ImmLayout): (w: number) => number {
  return new Function('w', `return ${immExpr(l)};`) as (w: number) => number;
}

/** Smallest and largest value of a layout, and the step between values ([lo, hi, align]). */
export function immRange(l: ImmLayout): [number, number, number] {
  const step = 2 ** l.shift;
  return l.signed ? [-(2 ** (l.width - 1)), 2 ** (l.width - 1) - step, step] : [0, 2 ** l.width - step, step];
}

/** The bits of a word that hold immediate `v` in layout `l` (v is assumed in range). */
export function place(l: ImmLayout, v: number): number {
  let w = 0;
  for (const { pos, len, at } of l.pieces) {
    const mask = len === 32 ? -1 : (1 << len) - 1;
    w |= ((v >> at) & mask) << pos;
  }
  return w >>> 0;
}
