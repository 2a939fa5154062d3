/**
 * Technique 2 (instanceCallInlining, US11016767B2): the kernel text's file method call (`sys_rw`,
 * whose target depends on what the calling process's fd refers to) becomes a direct call to a
 * first trampoline at one fixed kernel address, TRAMPOLINE_VA, which every process maps to a page
 * of its own (AddressSpace.mapKernelPage, supervisor-only). From there execution continues in
 * that process's second trampoline:
 *   inline: compare the loaded target (t2) with the process's learned targets and jump to the
 *           matching one directly;
 *   outline: jump to the retpoline (every target not learned, and the fallback mode).
 * Direct jumps are not predicted by the BTB, so another process cannot steer this call.
 *
 * Learning: each process has a frequency table of its method targets; in learning mode, once per
 * `updateIntervalUs` of virtual time, its `maxTargets` most frequent targets regenerate its second
 * trampoline when they changed. Modes (parameters): learning on (learning-and-update), learning
 * off (use the trampolines as they are), fallbackOnly (outline for every call). `shared` is the
 * baseline the per-process design is measured against: one frequency table for all processes,
 * whose top targets every process's trampoline gets (at its next call).
 *
 * Patching: the first trampoline is the word at TRAMPOLINE_VA: it falls through into the
 * process's second trampoline, which starts there (the second trampoline lives at the physical
 * page the first one's address maps to, as in the patent's claim 1). A regeneration goes through
 * a spare copy in the page's upper half: the first word jumps there (`jal x0, <spare>`) while the
 * code at TRAMPOLINE_VA is rewritten, then becomes its first instruction again (regenerate); a
 * page a vCPU running that process is executing is never rewritten (postponed). The call site in the shared kernel text is switched by one word store. Every write
 * goes through the KHV's guest-RAM writes, which drop the translations of the frames written.
 */
import { assembleRaw } from '../isa/assembler.js';
import type { Khv } from '../hypervisor/khv.js';
import type { KernelText } from './kernel-text.js';
import { K, KERNEL_VA, kgpa, kva } from './layout.js';
import type { Process } from './process.js';
import type { Cpu } from './scheduler.js';

/** The per-process trampoline page: the last page below the kernel megapage, in reach of a jal from the kernel text. */
export const TRAMPOLINE_VA = KERNEL_VA - 0x1000;
/** Offset of the spare copy a regeneration switches through (the live copy is at offset 0). */
const SPARE = 0x800;

export interface ProcessCallStats { hits: number; misses: number; fallbacks: number; regenerations: number; targets: number[] }

/** Technique 2's counters (one call site: the file method call of `sys_rw`). */
export interface InstanceCallStats {
  /** Calls whose target the process's inline trampoline matched (a direct jump). */
  hits: number;
  /** Calls through an inline trampoline whose target it had not learned (the retpoline). */
  misses: number;
  /** Calls through an outline trampoline (fallback mode, or nothing learned yet). */
  fallbacks: number;
  /** Target comparisons the inline trampolines ran (compares / (hits + misses): the mean chain length). */
  compares: number;
  regenerations: number;
  postponed: number;
  /** By pid. */
  perProcess: Record<string, ProcessCallStats>;
  /** By call site (the kernel text's symbol; technique 2 patches one: `method_site`). */
  perSite: Record<string, { hits: number; misses: number; fallbacks: number }>;
}

/** Technique 2's learning state, as a live migration carries it (JSON-safe; the trampoline pages themselves are guest RAM). */
export interface InstanceCallState {
  patched: boolean;
  shared: { freq: Array<[number, number]>; lastUpdate: number };
  processes: Array<{ pid: number; freq: Array<[number, number]>; lastUpdate: number; half: number; targets: number[]; want: number[] }>;
  stats: InstanceCallStats;
}

export interface InstanceCallOptions { learning: boolean; fallbackOnly: boolean; shared: boolean; maxTargets: number; updateIntervalUs: number }

/** A frequency table and when it last regenerated. */
interface Learner { freq: Map<number, number>; lastUpdate: number }
/** A process's learner, its page's live half and targets, and the targets it should have (installed at its next call). */
interface PerProcess extends Learner { half: number; targets: number[]; want: number[]; stats: ProcessCallStats }

/**
 * The second trampoline's source at `base`: compare t2 with each target (most frequent first),
 * else the retpoline. The first target is materialized with `li` (lui + addi); each next one
 * from the previous by one `addi` when they are less than 2 KiB apart (the method gates are 4
 * bytes apart in the gate page).
 */
export function secondTrampolineSource(base: number, targets: readonly number[], retpoline: number): string {
  const at = (addr: number) => `start + ${(addr >>> 0) - (base >>> 0)}`;
  const out = ['.option norvc', 'start:'];
  targets.forEach((t, i) => {
    const delta = i === 0 ? NaN : (t | 0) - (targets[i - 1] | 0);
    out.push(delta >= -2048 && delta < 2048 ? `  addi t4, t4, ${delta}` : `  li t4, ${t | 0}`, `  bne t2, t4, n${i}`, `  jal x0, ${at(t)}`, `n${i}:`);
  });
  out.push(`  jal x0, ${at(retpoline)}`);
  return out.join('\n') + '\n';
}

const jalTo = (from: number, to: number, rd: 'x0' | 'ra'): number => {
  const b = assembleRaw(`.option norvc\nsite:\n  jal ${rd}, site + ${(to >>> 0) - (from >>> 0)}\n`, { base: from >>> 0 }).bytes;
  return new DataView(b.buffer).getInt32(0, true);
};

export class InstanceTrampolines {
  readonly stats: InstanceCallStats = { hits: 0, misses: 0, fallbacks: 0, compares: 0, regenerations: 0, postponed: 0, perProcess: {}, perSite: { method_site: { hits: 0, misses: 0, fallbacks: 0 } } };
  private readonly per = new Map<number, PerProcess>();
  /** The one frequency table of the shared mode (a baseline: one trampoline for every process). */
  private readonly shared: Learner = { freq: new Map(), lastUpdate: 0 };
  private patched = false;
  private readonly site: number;
  private readonly siteWord: number;
  private readonly retpoline: number;

  /** Raises: Error when the kernel text has no method_site or retpoline thunk. */
  constructor(private readonly khv: Khv, text: KernelText, private readonly cpus: readonly Cpu[], private readonly processes: readonly Process[]) {
    const site = text.symbols.get('method_site'), retpoline = text.symbols.get('retpoline_t2');
    if (site === undefined || retpoline === undefined) throw new Error('kernel text has no method_site or retpoline_t2');
    this.site = site >>> 0;
    this.retpoline = retpoline >>> 0;
    this.siteWord = new DataView(text.bytes.buffer, text.bytes.byteOffset).getInt32(this.site - (KERNEL_VA + K.TEXT), true);
  }

  private state(p: Process): PerProcess {
    let s = this.per.get(p.pid);
    if (!s) {
      s = { freq: new Map(), half: -1, targets: [], want: [], lastUpdate: 0, stats: { hits: 0, misses: 0, fallbacks: 0, regenerations: 0, targets: [] } };
      this.per.set(p.pid, s);
      this.stats.perProcess[p.pid] = s.stats;
    }
    return s;
  }

  /**
   * Process `p` made the file method call to `target` (a method gate, reached through
   * the call site) at virtual time `nowNs`. Counts it, learns, regenerates; turning the
   * technique on or off patches the call site. Raises: Error when guest RAM cannot hold a page.
   */
  onCall(p: Process, target: number, nowNs: number, enabled: boolean, o: InstanceCallOptions): void {
    if (!enabled) { if (this.patched) this.unpatch(); return; }
    if (!this.patched) { this.patch(); return; }
    const s = this.state(p);
    if (s.half < 0) this.regenerate(p, s, []);
    const site = this.stats.perSite.method_site;
    const at = s.targets.indexOf(target >>> 0);
    this.stats.compares += at < 0 ? s.targets.length : at + 1;
    if (s.targets.length === 0) { this.stats.fallbacks++; s.stats.fallbacks++; site.fallbacks++; } else if (s.targets.includes(target >>> 0)) { this.stats.hits++; s.stats.hits++; site.hits++; } else { this.stats.misses++; s.stats.misses++; site.misses++; }
    if (o.fallbackOnly) s.want = [];
    else if (o.learning) {
      // The frequency table: the process's own, or (shared) one for every process.
      const l = o.shared ? this.shared : s;
      l.freq.set(target >>> 0, (l.freq.get(target >>> 0) ?? 0) + 1);
      if (nowNs - l.lastUpdate >= o.updateIntervalUs * 1000) {
        l.lastUpdate = nowNs;
        const top = [...l.freq].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, o.maxTargets).map(([t]) => t);
        for (const [t, n] of l.freq) l.freq.set(t, n / 2);
        if (o.shared) { for (const q of this.per.values()) q.want = top; } else s.want = top;
      }
    }
    if (s.want.length !== s.targets.length || s.want.some((t, i) => t !== s.targets[i])) this.regenerate(p, s, s.want);
  }

  /** Gives every live process its page (outline) and points the call site at TRAMPOLINE_VA. */
  private patch(): void {
    for (const p of this.processes) if (p.state !== 'exited') { const s = this.state(p); if (s.half < 0) this.regenerate(p, s, []); }
    this.khv.write32(kgpa(this.site - kva(0)), jalTo(this.site, TRAMPOLINE_VA, 'ra'));
    this.patched = true;
  }

  private unpatch(): void {
    this.khv.write32(kgpa(this.site - kva(0)), this.siteWord);
    this.patched = false;
  }

  /**
   * Makes `targets`' second trampoline p's live one. The live copy always starts at TRAMPOLINE_VA
   * itself, so the first trampoline (the word there) falls through into it; the page's upper half
   * is the spare the switch goes through: the new code is written there, the first word becomes
   * `jal x0, <spare>` (one aligned store: from then on every call runs the new code), the code is
   * written again at TRAMPOLINE_VA behind that word (unreachable meanwhile), and the first word
   * becomes its first instruction (one aligned store). A vCPU fetching at any moment sees one
   * whole trampoline, old or new; a vCPU running p inside the page postpones the regeneration.
   */
  private regenerate(p: Process, s: PerProcess, targets: number[]): void {
    const page = p.mm.mapKernelPage(TRAMPOLINE_VA);
    if (page < 0) throw new Error('guest memory is too small for a trampoline page');
    if (this.cpus.some((c) => c.current === p && (c.vcpu.hart.pc >>> 0) >= TRAMPOLINE_VA && (c.vcpu.hart.pc >>> 0) < TRAMPOLINE_VA + 0x1000)) { this.stats.postponed++; return; }
    const code = (base: number) => {
      const { bytes } = assembleRaw(secondTrampolineSource(base, targets, this.retpoline), { base, fileName: 'instance-trampoline.s' });
      if (bytes.length > SPARE) throw new Error(`instance trampoline of ${targets.length} targets is ${bytes.length} bytes`);
      return bytes;
    };
    const live = code(TRAMPOLINE_VA);
    if (s.half >= 0) {
      this.khv.writeBytes(page + SPARE, code(TRAMPOLINE_VA + SPARE));
      this.khv.write32(page, jalTo(TRAMPOLINE_VA, TRAMPOLINE_VA + SPARE, 'x0'));
    } else {
      this.khv.write32(page, jalTo(TRAMPOLINE_VA, this.retpoline, 'x0')); // a fresh page: the retpoline until the code below is whole
    }
    this.khv.writeBytes(page + 4, live.subarray(4));
    this.khv.write32(page, new DataView(live.buffer, live.byteOffset).getInt32(0, true));
    s.half = 0;
    s.targets = targets;
    s.stats.targets = targets;
    if (targets.length > 0 || s.stats.regenerations > 0) { s.stats.regenerations++; this.stats.regenerations++; }
    for (const c of this.cpus) if (c.current === p) c.vcpu.hart.mmu.flushAll();
  }

  /** The learning state (frequency tables, live halves and targets, modes' pending targets) and counters. */
  exportState(): InstanceCallState {
    return {
      patched: this.patched,
      shared: { freq: [...this.shared.freq], lastUpdate: this.shared.lastUpdate },
      processes: [...this.per].map(([pid, s]) => ({ pid, freq: [...s.freq], lastUpdate: s.lastUpdate, half: s.half, targets: [...s.targets], want: [...s.want] })),
      stats: structuredClone(this.stats),
    };
  }

  /** Takes over the state of `exportState` (a live migration's destination, before the VM runs). */
  importState(st: InstanceCallState): void {
    this.patched = st.patched;
    this.shared.freq = new Map(st.shared.freq);
    this.shared.lastUpdate = st.shared.lastUpdate;
    const stats = structuredClone(st.stats);
    Object.assign(this.stats, stats);
    this.per.clear();
    for (const q of st.processes) {
      const s: PerProcess = { freq: new Map(q.freq), lastUpdate: q.lastUpdate, half: q.half, targets: q.targets, want: q.want,
        stats: stats.perProcess[q.pid] ?? { hits: 0, misses: 0, fallbacks: 0, regenerations: 0, targets: q.targets } };
      this.per.set(q.pid, s);
      this.stats.perProcess[q.pid] = s.stats;
    }
  }
}
