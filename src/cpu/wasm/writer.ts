/**
 * A small WebAssembly binary writer: LEB128, the sections a one-function module needs (type,
 * import (functions, the memory, a table), function, export, code) and a function-body builder with the opcodes the code
 * generator (codegen.ts) emits. Nothing here knows RISC-V.
 *
 * Binary format: https://webassembly.github.io/spec/core/binary/ (section ids, value types,
 * opcodes and the memarg/blocktype encodings used below).
 */

export const I32 = 0x7f;
export const I64 = 0x7e;
/** Block type of a block/loop/if without results. */
export const VOID = 0x40;

/** The opcodes the generator uses (names as in the text format). */
export const OP = {
  unreachable: 0x00, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d, brTable: 0x0e,
  return: 0x0f, call: 0x10, callIndirect: 0x11, drop: 0x1a, select: 0x1b,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Load: 0x28, i32Load8S: 0x2c, i32Load8U: 0x2d, i32Load16S: 0x2e, i32Load16U: 0x2f,
  i32Store: 0x36, i32Store8: 0x3a, i32Store16: 0x3b,
  i32Const: 0x41, i64Const: 0x42,
  i32Eqz: 0x45, i32Eq: 0x46, i32Ne: 0x47, i32LtS: 0x48, i32LtU: 0x49, i32GtS: 0x4a, i32GtU: 0x4b,
  i32LeS: 0x4c, i32LeU: 0x4d, i32GeS: 0x4e, i32GeU: 0x4f,
  i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32DivS: 0x6d, i32DivU: 0x6e, i32RemS: 0x6f, i32RemU: 0x70,
  i32And: 0x71, i32Or: 0x72, i32Xor: 0x73, i32Shl: 0x74, i32ShrS: 0x75, i32ShrU: 0x76,
  i64Mul: 0x7e, i64ShrS: 0x87, i64ShrU: 0x88,
  i32WrapI64: 0xa7, i64ExtendI32S: 0xac, i64ExtendI32U: 0xad,
} as const;

/** Where the LEB128 encoders append: a number[], or a Body. */
export interface ByteSink { push(b: number): unknown }

/** Appends the unsigned LEB128 encoding of `v` (0 <= v < 2^32). */
export function uleb(out: ByteSink, v: number): void {
  v >>>= 0;
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
}

/** Appends the signed LEB128 encoding of the int32 `v`. */
export function sleb(out: ByteSink, v: number): void {
  v |= 0;
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) { out.push(b); return; }
    out.push(b | 0x80);
  }
}

/**
 * A function body under construction: locals are declared up front, code is appended to a
 * growing byte array (a number[] with a push per byte cost about 100 ns a byte, most of the
 * generator's time).
 */
export class Body implements ByteSink {
  private buf = new Uint8Array(4096);
  private n = 0;
  private readonly localTypes: number[] = [];

  /** `params` parameters come first in the index space; locals are numbered after them. */
  constructor(private readonly params: number) {}

  /** The code so far (a view, valid until the next append). */
  get code(): Uint8Array { return this.buf.subarray(0, this.n); }

  /** Declares a local of type `t` and returns its index. */
  local(t: number): number {
    this.localTypes.push(t);
    return this.params + this.localTypes.length - 1;
  }

  /** Appends one byte. */
  push(b: number): void {
    if (this.n === this.buf.length) { const g = new Uint8Array(2 * this.n); g.set(this.buf); this.buf = g; }
    this.buf[this.n++] = b;
  }
  private byte(b: number): void { this.push(b); }
  private u(v: number): void { if (v >= 0 && v < 0x80) this.push(v); else uleb(this, v); }
  private s(v: number): void { if (v >= 0 && v < 0x40) this.push(v); else sleb(this, v); }

  op(...bytes: number[]): this { for (let i = 0; i < bytes.length; i++) this.byte(bytes[i]); return this; }
  i32(v: number): this { this.byte(OP.i32Const); this.s(v); return this; }
  get(l: number): this { this.byte(OP.localGet); this.u(l); return this; }
  set(l: number): this { this.byte(OP.localSet); this.u(l); return this; }
  tee(l: number): this { this.byte(OP.localTee); this.u(l); return this; }
  br(depth: number): this { this.byte(OP.br); this.u(depth); return this; }
  brIf(depth: number): this { this.byte(OP.brIf); this.u(depth); return this; }
  call(f: number): this { this.byte(OP.call); this.u(f); return this; }
  /** Calls table 0's element at the index on the stack (after the arguments), checked against type `t`. */
  callIndirect(t: number): this { this.byte(OP.callIndirect); this.u(t); this.byte(0); return this; }
  /** A load or store with alignment hint 0 (any alignment) and a constant offset. */
  mem(op: number, offset = 0): this { this.byte(op); this.byte(0); this.u(offset); return this; }
  brTable(targets: number[], dflt: number): this {
    this.byte(OP.brTable);
    this.u(targets.length);
    for (const t of targets) this.u(t);
    this.u(dflt);
    return this;
  }

  /** The body's bytes as parts (copied once into the module): size, local declarations (runs of one type), code, end. */
  encode(): ArrayLike<number>[] {
    const runs: [number, number][] = [];
    for (const t of this.localTypes) {
      const last = runs[runs.length - 1];
      if (last && last[1] === t) last[0]++; else runs.push([1, t]);
    }
    const locals: number[] = [];
    uleb(locals, runs.length);
    for (const [n, t] of runs) { uleb(locals, n); locals.push(t); }
    const size: number[] = [];
    uleb(size, locals.length + this.n + 1);
    return [size, locals, this.code, [OP.end]];
  }
}

export interface FuncType { params: number[]; results: number[] }

/** A module's description: imported functions, one imported shared memory, one exported function. */
export interface ModuleSpec {
  /** Imported functions ("e", name), by index 0..n-1. */
  imports: { name: string; type: FuncType }[];
  /** The imported memory ("e", "mem"): shared, `pages` 64 KiB pages both initial and maximum. */
  memoryPages: number;
  /** An imported funcref table ("e", "tbl") of at least this many elements, for callIndirect; none when absent. */
  table?: number;
  /** The one defined function (index imports.length), exported as "run". */
  type: FuncType;
  body: Body;
}

/** Appends a section: id, size, then its parts. */
function section(out: ArrayLike<number>[], id: number, parts: ArrayLike<number>[]): void {
  const head = [id];
  uleb(head, parts.reduce((n, p) => n + p.length, 0));
  out.push(head, ...parts);
}

function name(out: number[], s: string): void {
  uleb(out, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
}

/** The module's binary encoding. */
export function encodeModule(m: ModuleSpec): Uint8Array {
  const types = [...m.imports.map((i) => i.type), m.type];
  const out: ArrayLike<number>[] = [[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]];
  const ty: number[] = [];
  uleb(ty, types.length);
  for (const t of types) {
    ty.push(0x60);
    uleb(ty, t.params.length); ty.push(...t.params);
    uleb(ty, t.results.length); ty.push(...t.results);
  }
  section(out, 1, [ty]);
  const im: number[] = [];
  uleb(im, m.imports.length + 1 + (m.table === undefined ? 0 : 1));
  m.imports.forEach((imp, i) => { name(im, 'e'); name(im, imp.name); im.push(0x00); uleb(im, i); });
  name(im, 'e'); name(im, 'mem'); im.push(0x02, 0x03); uleb(im, m.memoryPages); uleb(im, m.memoryPages);
  // A table import: kind 1, funcref (0x70), limits with a minimum only.
  if (m.table !== undefined) { name(im, 'e'); name(im, 'tbl'); im.push(0x01, 0x70, 0x00); uleb(im, m.table); }
  section(out, 2, [im]);
  const fn: number[] = [1];
  uleb(fn, m.imports.length);
  section(out, 3, [fn]);
  const ex: number[] = [1];
  name(ex, 'run'); ex.push(0x00); uleb(ex, m.imports.length);
  section(out, 7, [ex]);
  section(out, 10, [[1], ...m.body.encode()]);
  const bytes = new Uint8Array(out.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of out) { bytes.set(p, at); at += p.length; }
  return bytes;
}
