/**
 * The one fetch-and-expand step of RV32C, used by every reader of instructions (Hart.fetch and
 * the interpreter's loop, the JIT's translator, the lookahead scanner, the KHV's MMIO decoder):
 * fetch 16 bits; a compressed instruction (low bits not 11) is complete, otherwise the next 16
 * bits complete it. The raw result says everything: `insnLen(raw)` is its length and
 * `insnWord(raw)` the 32-bit instruction it stands for (0 for an illegal or reserved
 * compressed halfword). All three are allocation-free; `read16` decides where the bytes come from
 * and how a fault is raised (it throws).
 */
import { expandCompressed } from './decode.js';

/** The raw instruction at `a`: a halfword (compressed) or the 32-bit word, as an int32. */
export function fetchInsn(read16: (a: number) => number, a: number): number {
  const lo = read16(a);
  if ((lo & 3) !== 3) return lo;
  return lo | (read16((a + 2) | 0) << 16);
}

/** Length in bytes of a raw instruction (2 or 4). */
export const insnLen = (raw: number): number => ((raw & 3) === 3 ? 4 : 2);

/** The 32-bit instruction a raw one stands for: itself, or the expansion of a compressed halfword (0 when illegal). */
export const insnWord = (raw: number): number => ((raw & 3) === 3 ? raw : expandCompressed(raw & 0xffff));
