/**
 * The access API through which the UHV's device models read and write the VM-control state of the
 * exiting vCPU (technique 5). Every access names its field (vmcs-fields.ts) and is either direct,
 * mediated by the KHV, or refused; the field access map alone decides, so device code is the same
 * on every path. Costs go to the exiting hart and to the current exit reason's cycles.
 *
 * Preconditions: `begin` was called for the exit being handled (the KHV does it before handing
 * the exit to the UHV); methods are allocation-free and keep no reference past `end`.
 */
import { Hart } from '../cpu/hart.js';
import { IRQ } from '../cpu/csr.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import { EDGE } from './exit-routing.js';
import { FIELD, FIELD_READ, FIELD_WRITE, VMCS_FIELDS } from './vmcs-fields.js';

/** Exit reasons as the exitReason field holds them. */
export const EXIT_CODE = { Mmio: 1, Hypercall: 2 } as const;

/** The MMIO syndrome the hardware decodes on an exit (the exitQualification field). */
export interface MmioSyndrome {
  /** Offset into the device region. */
  offset: number;
  size: number;
  write: boolean;
  /** The register loaded or stored. */
  reg: number;
  signed: boolean;
  /** Length of the trapping instruction (2 or 4). */
  length: number;
}

/** A refused access: the UHV touched a field reserved to the KHV. */
export interface FieldFault { field: string; write: boolean; value: number; pc: number }

const F_REGS = FIELD.guestRegs, F_PC = FIELD.guestPc, F_REASON = FIELD.exitReason, F_QUAL = FIELD.exitQualification;
const F_ADVANCE = FIELD.pcAdvance, F_IRQ = FIELD.interruptInjection, F_TIMER = FIELD.timerDeadline;

/** The vCPU-side state a field write changes besides the hart: its timer deadline. */
export interface TimerOwner { deadline: number }

export class VmControl {
  /** Field access map bits by field id (FIELD_READ | FIELD_WRITE); set by the KHV only. */
  bits: Uint8Array;
  /** The technique is on: granted fields are accessed directly. */
  direct = false;
  /** Transition edges (EDGE), shared with the KHV that counts exit transitions. */
  readonly edges: Float64Array;
  readonly accesses = { direct: 0, mediated: 0, refused: 0 };
  /** Told about each refused access (reported as a vm.uhv-field-fault event). */
  onFault: ((f: FieldFault) => void) | null = null;
  /** Cycles charged while the current exit is handled, added to its reason by the KHV. */
  cycles = 0;

  readonly syndrome: MmioSyndrome = { offset: 0, size: 0, write: false, reg: 0, signed: false, length: 0 };
  private hart: Hart | null = null;
  private timer: TimerOwner | null = null;
  private reason = 0;
  /** Bytes the pc advances by on resume (written through pcAdvance). */
  advance = 0;

  constructor(bits: Uint8Array, edges: Float64Array) {
    this.bits = bits;
    this.edges = edges;
  }

  /** Starts handling an exit of `reason` (EXIT_CODE) from `hart` (whose timer is `timer`). */
  begin(hart: Hart, timer: TimerOwner, reason: number): void {
    this.hart = hart;
    this.timer = timer;
    this.reason = reason;
    this.advance = 0;
    this.cycles = 0;
  }

  end(): void { this.hart = null; this.timer = null; }

  /**
   * One access to field `id`: returns true when it may happen (direct or mediated), false when it
   * is refused (counted, reported, nothing changes).
   */
  access(id: number, write: boolean, value = 0): boolean {
    const h = this.hart!;
    if (VMCS_FIELDS[id].khvOnly) {
      this.accesses.refused++;
      // The fault goes to the KHV, which refuses it and resumes the UHV.
      this.edges[EDGE.UhvKhv]++;
      this.edges[EDGE.KhvUhv]++;
      this.charge(h, COSTS.uhvFieldCall);
      this.onFault?.({ field: VMCS_FIELDS[id].name, write, value, pc: h.sepc });
      return false;
    }
    if (this.direct && (this.bits[id] & (write ? FIELD_WRITE : FIELD_READ)) !== 0) {
      this.accesses.direct++;
      this.charge(h, COSTS.base);
      return true;
    }
    this.accesses.mediated++;
    this.edges[EDGE.UhvKhv]++;
    this.edges[EDGE.KhvUhv]++;
    this.charge(h, COSTS.uhvFieldCall);
    return true;
  }

  private charge(h: Hart, cycles: number): void {
    h.ctr[Ctr.Cycles] += cycles;
    this.cycles += cycles;
  }

  // *** the fields ***

  exitReason(): number { this.access(F_REASON, false); return this.reason; }

  /** The MMIO syndrome of the current exit (one read of exitQualification). */
  qualification(): MmioSyndrome { this.access(F_QUAL, false); return this.syndrome; }

  guestPc(): number { this.access(F_PC, false); return this.hart!.sepc; }

  /** Guest register `i` (x0 reads 0). */
  reg(i: number): number { this.access(F_REGS, false); return this.hart!.x[i]; }

  /** Writes guest register `i` (a write to x0 is dropped, as in hardware). */
  setReg(i: number, v: number): void { if (this.access(F_REGS, true, v) && i !== 0) this.hart!.x[i] = v; }

  advancePc(bytes: number): void { if (this.access(F_ADVANCE, true, bytes)) this.advance = bytes; }

  /** Sets or clears the pending VS interrupt `irq` (IRQ.VSTI, VSSI, VSEI). */
  setInterruptPending(irq: number, pending: boolean): void {
    if (!this.access(F_IRQ, true, pending ? 1 : 0)) return;
    const h = this.hart!;
    if (irq !== IRQ.VSTI && irq !== IRQ.VSSI && irq !== IRQ.VSEI) throw new RangeError(`interrupt ${irq} is not a VS interrupt`);
    if (pending) h.mip |= 1 << irq; else h.mip &= ~(1 << irq);
    h.irqDirty = true;
  }

  setTimerDeadline(cycles: number): void { if (this.access(F_TIMER, true, cycles)) this.timer!.deadline = cycles; }

  /**
   * A write to any field by id, for fields without a typed method: the KHV-only ones, which the
   * UHV may attempt but never changes (hgatp, delegation, the maps). Returns whether it happened.
   */
  writeReserved(id: number, value: number): boolean {
    if (!VMCS_FIELDS[id].khvOnly) throw new RangeError(`field ${VMCS_FIELDS[id].name} has a typed accessor`);
    return this.access(id, true, value);
  }
}
