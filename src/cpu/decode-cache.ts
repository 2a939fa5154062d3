/**
 * The interpreter's predecode cache: per physical code page, one entry per halfword holding the
 * decoded instruction that starts there (op id, register fields, length, immediate), filled the
 * first time the interpreter runs it.
 *
 * Validation instead of invalidation: an entry is keyed by the raw instruction bits it was decoded
 * from (`insnLen`/`insnWord` of isa/fetch.ts: the halfword, or both halfwords of a 4-byte
 * instruction), and the interpreter, which reads those bits from memory on every instruction
 * anyway (as it did before the cache), uses the entry only when they are equal. Any write to code
 * — a store by any hart, a device's DMA, a restore of RAM, a domain's code copy — is therefore
 * seen by the very next fetch, with no write path having to tell the cache. Physical keys make
 * remapping harmless; poison and fetch permissions are checked by the fetch translation, as
 * before. The cache is invisible architecturally: it changes no state, counter or timing.
 *
 * Layout (typed arrays only, no allocation on the interpreter's path): `frames[frame]` is the index
 * in `dec` of the frame's first entry, or -1; each entry is ENTRY Int32s: [key, info, imm, bad],
 * where info = op | rd << 9 | rs1 << 14 | rs2 << 19 | length << 24 | (ENDS_BLOCK when the
 * instruction ends a block, isa/facts.ts) and `bad` is the value an
 * illegal instruction reports (mtval). Pages are allocated on first use up to `maxPages`, then the
 * cache starts over (every entry is refilled on its next run).
 */
import { decode } from '../isa/decode.js';
import { insnLen, insnWord } from '../isa/fetch.js';
import { INSNS } from '../isa/table.js';
import { FACTS } from '../isa/facts.js';
import { IMM_OF } from './template.js';

/** Int32s per entry (one entry per halfword of a page). */
export const ENTRY = 4;
const ENTRIES_PER_PAGE = 2048;
const PAGE_INTS = ENTRIES_PER_PAGE * ENTRY;
/** Op of an entry that is not a legal instruction (the interpreter raises illegal with the entry's `bad`). */
export const OP_ILLEGAL = 511;
/** The info bit of an instruction that ends a block (isa/facts.ts `endsBlock`). */
export const ENDS_BLOCK = 1 << 27;
/** A key no fetch produces: the raw bits of a compressed instruction have no upper half, those of a 4-byte one end in 0b11. */
const NO_KEY = 0x10000;
if (INSNS.length > OP_ILLEGAL) throw new Error('op ids no longer fit the 9 bits of a predecoded entry');
/** Code pages held by default before the cache starts over (32 KiB each: 16 MiB). */
export const DEFAULT_MAX_PAGES = 512;

export class DecodeCache {
  /** Per physical frame: index in `dec` of its first entry, or -1. */
  readonly frames: Int32Array;
  /** The entries (see the module comment); replaced by a larger array as pages are added. */
  dec: Int32Array;
  private used = 0;
  /** Times the cache started over because `maxPages` were in use. */
  resets = 0;

  constructor(memBytes: number, readonly maxPages = DEFAULT_MAX_PAGES) {
    this.frames = new Int32Array(Math.ceil(memBytes / 4096)).fill(-1);
    this.dec = new Int32Array(Math.min(16, maxPages) * PAGE_INTS).fill(NO_KEY);
  }

  /** Entries for `frame`, allocated empty (the caller reloads `dec`, which this may replace). Returns the index of its first entry. */
  page(frame: number): number {
    if (this.used === this.maxPages) {
      this.frames.fill(-1);
      this.dec.fill(NO_KEY);
      this.used = 0;
      this.resets++;
    }
    const at = this.used++ * PAGE_INTS;
    if (at + PAGE_INTS > this.dec.length) {
      const bigger = new Int32Array(Math.min(this.dec.length * 2, this.maxPages * PAGE_INTS)).fill(NO_KEY);
      bigger.set(this.dec);
      this.dec = bigger;
    }
    this.frames[frame] = at;
    return at;
  }

  /** Decodes the raw instruction `raw` (isa/fetch.ts) into the entry at index `e`. */
  fill(e: number, raw: number): void {
    const w = insnWord(raw), len = insnLen(raw);
    const op = w === 0 ? -1 : decode(w);
    const d = this.dec;
    d[e] = raw;
    if (op < 0) {
      d[e + 1] = OP_ILLEGAL | (len << 24);
      d[e + 2] = 0;
      d[e + 3] = w === 0 ? raw & 0xffff : w;
      return;
    }
    d[e + 1] = op | (((w >>> 7) & 31) << 9) | (((w >>> 15) & 31) << 14) | (((w >>> 20) & 31) << 19) | (len << 24) | (FACTS[op].endsBlock ? ENDS_BLOCK : 0);
    d[e + 2] = IMM_OF[INSNS[op].format](w);
    d[e + 3] = w;
  }
}
