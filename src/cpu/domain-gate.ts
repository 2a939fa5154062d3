/**
 * The protection-domain gate of one hart (technique 7, after Intel's VMFUNC EPTP switching): the
 * `dgate rs1` instruction (isa/table.ts, extension Xdomain) switches the G-stage root (hgatp) and
 * the guest page table (vsatp) between the root domain and a secure domain and jumps to a
 * registered entry point, or returns to the caller.
 *
 *   x[rs1] = g >= 0      call gate g: allowed from the root domain in VU mode, when g is one of
 *                        the permitted gates the KHV set; switches to the gate's domain and
 *                        continues at its entry point, with the root's return address kept here.
 *   x[rs1] = DGATE_RETURN  return: allowed inside a secure domain; switches back and continues
 *                        after the root's dgate.
 *   anything else          (DGATE_SHARE, an unregistered gate, a call from inside a domain, a
 *                        return from the root) exits to the KHV (virtual-instruction trap).
 *
 * With `fast` set the hart performs permitted calls and returns itself (COSTS.domainSwitchGate);
 * with it clear every dgate exits and the KHV performs the same switch in software
 * (COSTS.domainSwitchExit) through `enter`/`leave`. Both leave exactly the same architectural
 * state, so a program's output does not depend on the kind of switch.
 *
 * The gate touches no general-purpose register: arguments travel in a0-a7 unchanged, and the
 * domain's entry code sets up its own stack (and scrubs its temporaries before returning), as a
 * VMFUNC trampoline does. While a domain runs, every exception exits to the KHV (hedeleg = 0) and
 * the VS-level interrupts are masked, so the root guest kernel never runs on the domain's page
 * tables; both are restored on return.
 *
 * The tables are plain typed arrays written by the KHV; `permits` and the switch allocate nothing.
 */
import { COSTS, Ctr } from '../uarch/costs.js';
import { maskMatch, opId, INSNS } from '../isa/table.js';

/**
 * What the gate reads and writes of its hart: the architectural registers a switch changes, the
 * MMU it flushes and the counters it charges (HartCore has them; declared here so that the gate
 * does not import the hart that owns it).
 */
export interface GateHart {
  hgatp: number; vsatp: number; hedeleg: number; mie: number;
  irqDirty: boolean; reservation: number;
  readonly mmu: { flushAll(): void };
  readonly ctr: Float64Array;
}

/** dgate's x[rs1] to return from a domain to its caller. */
export const DGATE_RETURN = -1;
/** dgate's x[rs1] to register a shared buffer page (always an exit; see hypervisor/domains.ts). */
export const DGATE_SHARE = -2;

/** The instruction word of `dgate rs1` (what a trap reports in its tval). */
export const DGATE_MATCH = maskMatch(INSNS[opId('dgate')].pattern).match;
export const dgateWord = (rs1: number): number => (DGATE_MATCH | (rs1 << 15)) | 0;

/** VS-level interrupt enables masked while a secure domain runs (VSSI, VSTI, VSEI). */
const VS_IRQS = (1 << 2) | (1 << 6) | (1 << 10);

/** Counter slots of DomainGates.ctr. */
export const DomainCtr = {
  /** Calls and returns performed by the hart (fast gate). */
  GateSwitches: 0,
  /** Calls and returns performed by the KHV after an exit. */
  ExitSwitches: 1,
  /** Cycles charged for switches (the cost table's domainSwitchGate / domainSwitchExit). */
  SwitchCycles: 2,
  Count: 3,
} as const;

export class DomainGates {
  /** Per gate id: the domain (1..) it enters and its entry pc (a virtual address of the domain). */
  readonly gateDomain: Int32Array;
  readonly gateEntry: Int32Array;
  /** Per domain index (0 = root): its hgatp; for secure domains also their vsatp. */
  readonly hgatpOf: Int32Array;
  readonly vsatpOf: Int32Array;
  /** Fast gate enabled: permitted calls and returns need no exit. */
  fast = false;
  /** The domain the hart runs in (0 = root). */
  current = 0;
  /** What a return restores: the caller's pc after its dgate, vsatp, hedeleg and interrupt enables. */
  retPc = 0;
  private rootVsatp = 0;
  private rootHedeleg = 0;
  private rootMie = 0;
  readonly ctr = new Float64Array(DomainCtr.Count);

  constructor(gates: number, domains: number) {
    this.gateDomain = new Int32Array(gates);
    this.gateEntry = new Int32Array(gates);
    this.hgatpOf = new Int32Array(domains + 1);
    this.vsatpOf = new Int32Array(domains + 1);
  }

  /** Whether the hart (in V=1 at privilege `priv`) may perform dgate `id` itself. */
  permits(priv: number, id: number): boolean {
    if (id === DGATE_RETURN) return this.current !== 0;
    return this.current === 0 && priv === 0 && id >= 0 && id < this.gateEntry.length;
  }

  /**
   * Switches hart `h` into the domain of gate `id` (precondition: permits(0, id)); returns the
   * entry pc. `viaExit`: the KHV performs the switch after an exit (charged its cost instead).
   */
  enter(h: GateHart, id: number, retPc: number, viaExit: boolean): number {
    const d = this.gateDomain[id];
    this.retPc = retPc;
    this.rootVsatp = h.vsatp;
    this.rootHedeleg = h.hedeleg;
    this.rootMie = h.mie;
    this.switchTo(h, d, this.vsatpOf[d], 0, h.mie & ~VS_IRQS, viaExit);
    return this.gateEntry[id];
  }

  /** Switches hart `h` back to the root domain (precondition: current !== 0); returns the caller's pc. */
  leave(h: GateHart, viaExit: boolean): number {
    this.switchTo(h, 0, this.rootVsatp, this.rootHedeleg, (h.mie & ~VS_IRQS) | (this.rootMie & VS_IRQS), viaExit);
    return this.retPc;
  }

  private switchTo(h: GateHart, d: number, vsatp: number, hedeleg: number, mie: number, viaExit: boolean): void {
    this.current = d;
    h.hgatp = this.hgatpOf[d];
    h.vsatp = vsatp;
    h.hedeleg = hedeleg;
    h.mie = mie;
    h.irqDirty = true;
    h.reservation = -1;
    h.mmu.flushAll();
    const cost = viaExit ? COSTS.domainSwitchExit : COSTS.domainSwitchGate;
    this.ctr[viaExit ? DomainCtr.ExitSwitches : DomainCtr.GateSwitches]++;
    this.ctr[DomainCtr.SwitchCycles] += cost;
    h.ctr[Ctr.Cycles] += cost;
  }
}
