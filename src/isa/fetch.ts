/**
 * The one fetch-and-expand step of RV32C, used by every reader of instructions (Hart.fetch and
 * so the interpreter's loop, the JIT's translator, the lookahead scanner, the KHV's MMIO decoder):
 * fetch 16 bits; a compressed instruction (low bits not 11) is complete, otherwise the next 16
 * bits complete it. The raw result says everything: `insnLen(raw)` is its length and
 * `insnWord(raw)` the 32-bit instruction it stands for (0 for an illegal or reserved
 * compressed halfword). All are allocation-free; the reader decides where the bytes come from and
 * how a fault is raised (it throws).
 *
 * The step is written once, as code (`step`), and compiled per reader: a hot reader (Hart.fetch,
 * on the interpreter's every instruction) gets a function of its own, whose call to the reader V8
 * sees monomorphic and inlines; one shared function taking the reader as an argument would see
 * every consumer's reader at one call site and call it megamorphically (measured: the
 * interpreter ran about 30% slower that way).
 */
import { expandCompressed } from './decode.js';

/** The step's source: returns the raw instruction at `a`, reading 16 bits with the code `read(address)`. */
const step = (read: (addr: string) => string): string =>
  `const lo = ${read('a')}; if ((lo & 3) !== 3) return lo; return lo | (${read('((a + 2) | 0)')} << 16);`;

/**
 * The step compiled for one reader: `read(ctx, addr)` is the code of a 16-bit read at `addr` given
 * the context object `ctx`. Returns `(ctx, a) => raw`.
 */
export function compileFetch<C>(read: (ctx: string, addr: string) => string): (ctx: C, a: number) => number {
  return new Function('ctx', 'a', step((addr) => read('ctx', addr))) as (ctx: C, a: number) => number;
}

/** The raw instruction at `a`, read with `read16` (for readers off the hot path). */
export const fetchInsn: (read16: (a: number) => number, a: number) => number = compileFetch((f, addr) => `${f}(${addr})`);

/** Length in bytes of a raw instruction (2 or 4). */
export const insnLen = (raw: number): number => ((raw & 3) === 3 ? 4 : 2);

/** The 32-bit instruction a raw one stands for: itself, or the expansion of a compressed halfword (0 when illegal). */
export const insnWord = (raw: number): number => ((raw & 3) === 3 ? raw : expandCompressed(raw & 0xffff));
