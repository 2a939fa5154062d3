/**
 * Technique 4 (callTableInlining, US10834255B1): the syscall table's indirect call replaced by a
 * generated search trampoline. The kernel counts how often each syscall number passes the table's
 * call site (a frequency table); every `relearnInterval` passes it takes the `maxEntries` most
 * frequent numbers and, when that set changed, generates real RV32 code that searches them (a
 * chain of equality tests for the hottest, then a search tree) and calls each one's handler
 * directly, falling back to the table through the retpoline for every other number. Direct calls
 * are not predicted by the BTB, so the trampoline is safe against branch target injection, and a
 * hot syscall pays a compare and a direct call instead of the table's load and the retpoline's
 * return mispredict.
 *
 * The trampoline replaces the table lookup, not only the call (as a `switch` on the number
 * replaces a table of function pointers): the first instruction of the kernel's table load
 * (`table_load`) becomes `jal x0, <buffer>`; a hit runs `jal ra, <handler>` and, when the handler
 * returns, its own copy of `after_call`'s first instructions (tail duplication: no jump back to
 * the kernel text on the common path, straight on to `restore`); a miss loads the slot as the
 * kernel text does and calls it through the retpoline, with the same tail.
 *
 * Code patching: the trampoline is written into one of two buffers in the kernel region and
 * `table_load` is then switched to the jump by one aligned word store. Both writes go through the
 * KHV's guest-RAM writes, the path every native store takes, which drops the translations of the
 * frames they touch (Khv.nativeWrite). A vCPU stopped anywhere in the table load runs the old
 * code to its end, or the new jump, both correct; a buffer is only rewritten when no vCPU can be
 * inside it or return into it (its pc, or in S-mode its ra or s1: where the handlers reached from
 * the table keep their return address), otherwise the regeneration is postponed to the next relearn.
 */
import { assembleRaw } from '../isa/assembler.js';
import type { Hart } from '../cpu/hart.js';
import { PRIV_S } from '../cpu/hart-core.js';
import type { Khv } from '../hypervisor/khv.js';
import { AFTER_CALL_HEAD, type KernelText } from './kernel-text.js';
import { K, KERNEL_VA, kgpa, kva, NR_MAX } from './layout.js';

/** Bytes of one trampoline buffer (two of them from K.TRAMPOLINES). */
export const TRAMPOLINE_BYTES = 0x800;

/** Technique 4's counters. */
export interface CallTableStats {
  /** Passes of the table's call site whose number the live trampoline calls directly. */
  hits: number;
  /** Passes that fell back to the table through the retpoline (a trampoline was live). */
  misses: number;
  /** Equality tests the live trampolines ran (compares / (hits + misses): the mean search length). */
  compares: number;
  /** Trampolines generated and made live. */
  regenerations: number;
  /** Regenerations put off because a vCPU was executing the buffer to be rewritten. */
  postponed: number;
  /** The numbers the live trampoline calls directly (empty: the plain table call). */
  entries: number[];
  /** Hits and misses by pid of the calling process. */
  perProcess: Record<string, SiteStats>;
  /** Hits and misses by call site (the kernel text's symbol; technique 4 has one: `call_site`). */
  perSite: Record<string, SiteStats>;
}

/** Hits and misses of one process or call site. */
export interface SiteStats { hits: number; misses: number }

/** The state a live migration carries (JSON-safe). */
export interface CallTableState { active: number; since: number; missed?: number; freq: Array<[number, number]>; stats: CallTableStats; tests?: number[] }

export interface CallTableOptions { maxEntries: number; relearnInterval: number }

/**
 * The shape of a search trampoline: a chain of equality tests (the hottest numbers, hottest
 * first) followed by a search tree over the other numbers (the heaviest number of each subtree
 * at its root). Every node starts `li t4, NR; bne a7, t4, next; jal ra, <target>; <tail>` (the
 * tail: `after_call`'s head, `bnez t0, pend; j restore`); a tree node whose left subtree is not
 * empty then has `bltu a7, t4, <left>`.
 */
type Node = { key: number; chain: true; next: Node | null } | { key: number; chain: false; left: Node | null; right: Node | null };

/** Modelled cycles of the tail after a call returns when nothing is pending (sw, lw, bnez, j restore). */
const TAIL_CYCLES = 1 + 1 + 1 + 2;
/**
 * Modelled cycles of a fallback after the miss label: the table's load (slli, lui: the table is
 * page-aligned, add, lw), the call of the retpoline thunk and the thunk (jal, jal, mv, jalr and
 * its return mispredict), the tail.
 */
const MISS_CYCLES = 4 + 2 + 2 + 1 + 2 + 18 + TAIL_CYCLES;
/** Modelled cycles of a hit's `jal ra, <target>` and the tail. */
const HIT_CYCLES = 2 + TAIL_CYCLES;

/** The tree over sorted `keys` [lo, hi] (indices), the heaviest at the root of each subtree. */
function tree(keys: readonly number[], weights: readonly number[], lo: number, hi: number): Node | null {
  if (lo > hi) return null;
  // The heaviest; among equally heavy ones the one nearest the middle (a balanced tree for equal weights).
  const mid = (lo + hi) / 2;
  let root = lo;
  for (let i = lo + 1; i <= hi; i++) if (weights[i] > weights[root] || (weights[i] === weights[root] && Math.abs(i - mid) < Math.abs(root - mid))) root = i;
  return { key: keys[root], chain: false, left: tree(keys, weights, lo, root - 1), right: tree(keys, weights, root + 1, hi) };
}

/**
 * Modelled cycles from the trampoline's first instruction to the jump to its target (or through
 * the retpoline) for syscall `x`, with `node` the code at hand; `top` is true while nothing but
 * the miss label follows (no `j miss` needed). One cycle per instruction, one more per taken
 * branch or jump, as the cost model charges them (src/uarch/costs.ts).
 */
function cyclesFor(node: Node | null, x: number, top: boolean): number {
  if (node === null) return (top ? 0 : 2) + MISS_CYCLES;
  if (x === node.key) return 1 + 1 + HIT_CYCLES;
  if (node.chain) return 1 + 2 + cyclesFor(node.next, x, top);
  if (node.left !== null && x < node.key) return 1 + 2 + 2 + cyclesFor(node.left, x, false);
  return 1 + 2 + (node.left !== null ? 1 : 0) + cyclesFor(node.right, x, top && node.left === null);
}

/**
 * The cheapest shape, in modelled cycles weighted by how often each number passed (`freq`: the
 * frequency table, numbers not in `keys` included: they are the misses), among: the hottest m
 * keys as a chain, then a tree over the rest (m = 0 .. keys.length).
 */
export function trampolineShape(keys: readonly number[], weights: readonly number[], freq: ReadonlyArray<readonly [number, number]>): Node | null {
  const byWeight = keys.map((k, i) => [k, weights[i]] as const).sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  let best: Node | null = null, bestCost = Infinity;
  for (let m = 0; m <= keys.length; m++) {
    const chained = new Set(byWeight.slice(0, m).map(([k]) => k));
    const rest = keys.map((k, i) => [k, weights[i]] as const).filter(([k]) => !chained.has(k));
    let node = tree(rest.map(([k]) => k), rest.map(([, w]) => w), 0, rest.length - 1);
    for (let i = m - 1; i >= 0; i--) node = { key: byWeight[i][0], chain: true, next: node };
    let cost = 0;
    for (const [x, w] of freq) cost += w * cyclesFor(node, x, true);
    if (cost < bestCost) { best = node; bestCost = cost; }
  }
  return best;
}

/** The kernel text's addresses a trampoline jumps to. */
export interface TrampolineLinks {
  /** The retpoline thunk (retpoline_t2), called with the slot's target in t2. */
  retpoline: number;
  /** The dispatch's return to the user (restore), where the tail goes when nothing is pending. */
  restore: number;
  /** after_call past its test of PENDING (after_pending), where the tail goes when something is. */
  afterPending: number;
  /** The syscall table (K.SYSCALL_TABLE's kernel VA), loaded on a miss. */
  table: number;
}

/**
 * The search trampoline's source for `keys` (sorted) with their `weights`, placed at `base`;
 * `target(nr)` is where the table's slot for nr points; `links` the kernel text's addresses.
 * `freq` (number, passes) is the frequency table the shape is chosen by (trampolineShape; by
 * default the keys' own weights, no misses).
 */
export function trampolineSource(base: number, keys: readonly number[], weights: readonly number[], target: (nr: number) => number, links: TrampolineLinks,
  freq: ReadonlyArray<readonly [number, number]> = keys.map((k, i) => [k, weights[i]] as const)): string {
  return trampolineCode(base, trampolineShape(keys, weights, freq), target, links);
}

/** Equality tests (`li t4, NR; bne a7, t4`) the trampoline of shape `node` runs for syscall `x`. */
export function testsFor(node: Node | null, x: number): number {
  if (node === null) return 0;
  if (x === node.key) return 1;
  if (node.chain) return 1 + testsFor(node.next, x);
  return 1 + testsFor(node.left !== null && x < node.key ? node.left : node.right, x);
}

/** The source of the trampoline of shape `node` at `base` (see trampolineSource). */
function trampolineCode(base: number, shape: Node | null, target: (nr: number) => number, links: TrampolineLinks): string {
  const at = (addr: number) => `start + ${(addr >>> 0) - (base >>> 0)}`;
  const out: string[] = ['.option norvc', 'start:'];
  const tail = [...AFTER_CALL_HEAD.map((l) => `  ${l}`), '  bnez t0, pend', `  jal x0, ${at(links.restore)}`];
  let labels = 0;
  const gen = (node: Node | null, top: boolean): void => {
    if (node === null) { if (!top) out.push('  j miss'); return; }
    const next = `n${labels++}`;
    out.push(`  li t4, ${node.key}`, `  bne a7, t4, ${next}`, `  jal ra, ${at(target(node.key))}`, ...tail, `${next}:`);
    if (node.chain) { gen(node.next, top); return; }
    const left = node.left !== null ? `n${labels++}` : '';
    if (node.left !== null) out.push(`  bltu a7, t4, ${left}`);
    gen(node.right, top && node.left === null);
    if (node.left !== null) { out.push(`${left}:`); gen(node.left, false); }
  };
  gen(shape, true);
  out.push('miss:', '  slli t1, a7, 2', `  li t2, ${links.table | 0}`, '  add t1, t1, t2', '  lw t2, 0(t1)',
    `  jal ra, ${at(links.retpoline)}`, ...tail, 'pend:', `  jal x0, ${at(links.afterPending)}`);
  return out.join('\n') + '\n';
}

export class SearchTrampoline {
  readonly stats: CallTableStats = { hits: 0, misses: 0, compares: 0, regenerations: 0, postponed: 0, entries: [], perProcess: {}, perSite: { call_site: { hits: 0, misses: 0 } } };
  /** Passes per syscall number since the last relearn (halved at each relearn). */
  private readonly freq = new Float64Array(NR_MAX);
  /** Equality tests the live trampoline runs for each number (the `compares` counter). */
  private readonly tests = new Uint8Array(NR_MAX);
  /** 1 for the numbers the live trampoline calls directly. */
  private readonly hot = new Uint8Array(NR_MAX);
  /** The live buffer (0 or 1), or -1: the call site holds the kernel text's own call. */
  private active = -1;
  private since = 0;
  /** Passes since the last relearn that the live trampoline did not call directly (all of them while none is live). */
  private missed = 0;
  /** `table_load`: the word patched to the jump into the live buffer. */
  private readonly site: number;
  private readonly siteWord: number;
  private readonly links: TrampolineLinks;

  /**
   * `text` is the kernel text (its table_load, restore, after_pending and retpoline_t2); `target(nr)` where
   * the table's slot for nr points; `harts` every vCPU (none may be inside, or about to return
   * into, a buffer rewritten).
   * Raises: Error when the kernel text lacks one of those symbols.
   */
  constructor(private readonly khv: Khv, text: KernelText, private readonly target: (nr: number) => number,
    private readonly harts: readonly Hart[]) {
    const sym = (name: string) => {
      const at = text.symbols.get(name);
      if (at === undefined) throw new Error(`kernel text has no ${name}`);
      return at >>> 0;
    };
    this.site = sym('table_load');
    this.links = { retpoline: sym('retpoline_t2'), restore: sym('restore'), afterPending: sym('after_pending'), table: kva(K.SYSCALL_TABLE) };
    const off = this.site - (KERNEL_VA + K.TEXT);
    this.siteWord = new DataView(text.bytes.buffer, text.bytes.byteOffset).getInt32(off, true);
  }

  private bufferVa(i: number): number { return kva(K.TRAMPOLINES + i * TRAMPOLINE_BYTES); }

  /**
   * Whether a vCPU may be executing the buffer at `base` or return into it: its pc there, or, in
   * S-mode, its ra or s1 (a handler called from the buffer holds its return address there).
   */
  private inUse(base: number): boolean {
    const inside = (a: number) => (a >>> 0) - base >>> 0 < TRAMPOLINE_BYTES;
    return this.harts.some((h) => inside(h.pc) || (h.priv === PRIV_S && (inside(h.x[1]) || inside(h.x[9]))));
  }

  /**
   * The table's call site was passed for syscall `nr` by process `pid` (a gate reached through
   * it). Counts a hit or a miss against the live trampoline and, every `relearnInterval` passes
   * (or sooner, after relearnInterval / 8 passes missed it), relearns. With the technique off, restores the kernel text's own call.
   */
  onCall(nr: number, pid: number, enabled: boolean, o: CallTableOptions): void {
    if (!enabled) { if (this.active >= 0) this.restore(); return; }
    if (this.active >= 0) {
      const per = this.stats.perProcess[pid] ??= { hits: 0, misses: 0 };
      const site = this.stats.perSite.call_site;
      this.stats.compares += this.tests[nr];
      if (this.hot[nr] === 1) { this.stats.hits++; per.hits++; site.hits++; } else { this.stats.misses++; per.misses++; site.misses++; this.missed++; }
    } else this.missed++;
    this.freq[nr]++;
    // The learning window: every relearnInterval passes, and sooner when an eighth of that (at
    // least 8) went through the retpoline - at the start, and when a new number turns hot.
    if (++this.since >= o.relearnInterval || this.missed >= Math.max(8, o.relearnInterval >>> 3)) this.relearn(o.maxEntries);
  }

  /**
   * Takes the most frequent numbers; regenerates when they are not the live trampoline's. A live
   * number keeps its place unless another passed more than twice as often (hysteresis: numbers of
   * equal, low frequency would otherwise take turns and regenerate the trampoline at every relearn).
   */
  relearn(maxEntries: number): void {
    this.since = 0;
    this.missed = 0;
    const ranked: number[] = [];
    const freq: Array<[number, number]> = [];
    for (let nr = 0; nr < NR_MAX; nr++) if (this.freq[nr] > 0) { ranked.push(nr); freq.push([nr, this.freq[nr]]); }
    const score = (nr: number) => this.freq[nr] * (this.hot[nr] === 1 ? 2 : 1);
    ranked.sort((a, b) => score(b) - score(a) || a - b);
    const top = ranked.slice(0, maxEntries).sort((a, b) => a - b);
    const same = this.active >= 0 && top.length === this.stats.entries.length && top.every((nr, i) => nr === this.stats.entries[i]);
    if (!same && top.length > 0) this.regenerate(top, top.map((nr) => this.freq[nr]), freq);
    for (let nr = 0; nr < NR_MAX; nr++) this.freq[nr] /= 2;
  }

  /** Writes a trampoline for `keys` into the free buffer and points the call site at it. */
  private regenerate(keys: number[], weights: number[], freq: Array<[number, number]>): void {
    const buf = this.active === 0 ? 1 : 0;
    const base = this.bufferVa(buf);
    if (this.inUse(base)) { this.stats.postponed++; return; }
    const shape = trampolineShape(keys, weights, freq);
    const { bytes } = assembleRaw(trampolineCode(base, shape, this.target, this.links), { base, fileName: 'search-trampoline.s' });
    if (bytes.length > TRAMPOLINE_BYTES) throw new Error(`search trampoline of ${keys.length} entries is ${bytes.length} bytes`);
    this.khv.writeBytes(kgpa(base - kva(0)), bytes);
    const jal = assembleRaw(`.option norvc\nsite:\n  jal x0, site + ${base - this.site}\n`, { base: this.site }).bytes;
    this.khv.write32(kgpa(this.site - kva(0)), new DataView(jal.buffer).getInt32(0, true));
    this.active = buf;
    this.hot.fill(0);
    for (const nr of keys) this.hot[nr] = 1;
    for (let nr = 0; nr < NR_MAX; nr++) this.tests[nr] = testsFor(shape, nr);
    this.stats.entries = keys;
    this.stats.regenerations++;
  }

  /** The technique was turned off: `table_load` gets the kernel text's own instruction back. */
  private restore(): void {
    this.khv.write32(kgpa(this.site - kva(0)), this.siteWord);
    this.active = -1;
    this.hot.fill(0);
    this.stats.entries = [];
  }

  exportState(): CallTableState {
    const freq: Array<[number, number]> = [];
    this.freq.forEach((v, nr) => { if (v > 0) freq.push([nr, v]); });
    return { active: this.active, since: this.since, missed: this.missed, freq, stats: structuredClone(this.stats), tests: [...this.tests] };
  }

  importState(st: CallTableState): void {
    this.active = st.active;
    this.since = st.since;
    this.missed = st.missed ?? 0;
    this.freq.fill(0);
    for (const [nr, v] of st.freq) this.freq[nr] = v;
    Object.assign(this.stats, structuredClone(st.stats));
    this.hot.fill(0);
    for (const nr of st.stats.entries) this.hot[nr] = 1;
    this.tests.fill(0);
    if (st.tests) this.tests.set(st.tests);
  }
}
