/**
 * Table-driven decoder. Lookup structures are built once from INSNS/CINSNS (the 32-bit ones at module load, compressed entries on first use);
 * decoding itself does no allocation and no string work.
 */
import { CINSNS, INSNS, maskMatch } from './table.js';

// 32-bit: candidates bucketed by (opcode[6:2], funct3) — 32 * 8 buckets; each bucket is a flat
// list of (mask, match, id) triples tried in order. Patterns do not overlap (tested), so order
// does not matter.
const BUCKETS = 256;
const bucketStart = new Int32Array(BUCKETS + 1);
let masks: Uint32Array;
let matches: Uint32Array;
let ids: Int32Array;
{
  const lists: Array<Array<[number, number, number]>> = Array.from({ length: BUCKETS }, () => []);
  INSNS.forEach((r, id) => {
    const { mask, match, bits } = maskMatch(r.pattern);
    if (bits !== 32) throw new Error(`row ${r.name}: pattern has ${bits} bits`);
    // A row belongs to every bucket its fixed opcode/funct3 bits allow: the bucket bits it fixes
    // are those of its match, the others take every value (enumerated as the subsets of the free
    // bits, rather than all 256 buckets tried for every row: ~3 ms of each `hvsim run`'s start-up).
    const bucketOf = (w: number) => (((w >>> 2) & 31) << 3) | ((w >>> 12) & 7);
    const fixed = bucketOf(mask), free = ~fixed & (BUCKETS - 1), base = bucketOf(match) & fixed;
    for (let f = free; ; f = (f - 1) & free) {
      lists[base | f].push([mask, match, id]);
      if (f === 0) break;
    }
  });
  const total = lists.reduce((n, l) => n + l.length, 0);
  masks = new Uint32Array(total);
  matches = new Uint32Array(total);
  ids = new Int32Array(total);
  let k = 0;
  for (let b = 0; b < BUCKETS; b++) {
    bucketStart[b] = k;
    for (const [m, x, id] of lists[b]) { masks[k] = m; matches[k] = x; ids[k] = id; k++; }
  }
  bucketStart[BUCKETS] = k;
}

/** Op id (index into INSNS) of a 32-bit word, or -1 when the word is not a known instruction. */
export function decode(word: number): number {
  if ((word & 3) !== 3) return -1;
  const b = (((word >>> 2) & 31) << 3) | ((word >>> 12) & 7);
  const end = bucketStart[b + 1];
  for (let k = bucketStart[b]; k < end; k++) {
    if (((word & masks[k]) >>> 0) === matches[k]) return ids[k];
  }
  return -1;
}

// Compressed: the whole 16-bit space fits in two tables: row index per halfword (-1 = illegal,
// -2 = not looked up yet) and the expansion (0 = illegal/reserved). Entries are filled on first
// use: filling all 65,536 at import cost ~50 ms of every `hvsim run`'s start-up.
const C_ROW = new Int16Array(65536).fill(-2);
const C_EXPANSION = new Uint32Array(65536);
let cRows: Array<{ r: (typeof CINSNS)[number]; mask: number; match: number }> | null = null;

function fillCompressed(h: number): void {
  cRows ??= CINSNS.map((r) => ({ r, ...maskMatch(r.pattern) }));
  C_ROW[h] = -1;
  if ((h & 3) === 3) return;
  for (let i = 0; i < cRows.length; i++) {
    const { r, mask, match } = cRows[i];
    if ((h & mask) === match && (!r.guard || r.guard(h))) {
      const word = r.expand(h);
      if (word !== 0) { C_ROW[h] = i; C_EXPANSION[h] = word; }
      return;
    }
  }
}

/** The 32-bit equivalent of a compressed halfword, or 0 when it is illegal or reserved. */
export function expandCompressed(half: number): number {
  const h = half & 0xffff;
  if (C_ROW[h] === -2) fillCompressed(h);
  return C_EXPANSION[h];
}

/** Index into CINSNS of a legal compressed halfword, or -1. */
export function compressedRow(half: number): number {
  const h = half & 0xffff;
  if (C_ROW[h] === -2) fillCompressed(h);
  return C_ROW[h];
}
