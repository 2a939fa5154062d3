/**
 * The cycle cost model (DESIGN.md section 6). ONE table of constants; docs/cost-model.md gives
 * the source of each. Techniques never special-case these: they change which instructions and
 * events happen, and the cost follows.
 */
export const COSTS = {
  /** Every retired instruction. */
  base: 1,
  /** Extra cycles on top of `base` for M-extension multiplies and divides. */
  mul: 2,
  div: 19,
  /** Extra cycle for a taken branch or any jump. */
  takenBranch: 1,
  /** Indirect branch whose target the BTB did not predict (miss or wrong target). */
  indirectMispredict: 18,
  /** Return whose target the return-stack buffer did not predict. */
  returnMispredict: 18,
  /** One memory reference made by a page-table walk (a TLB miss costs refs * this). */
  walkReference: 30,
  /**
   * Privilege crossing cost per direction (trap entry or xRET), by crossing preset. A trap from
   * V=1 into HS/M and the xRET back are a VM exit/entry instead, charged as `vmExit`.
   */
  crossing: { none: 150, kpti: 350 },
  /** Modelled work of a native guest-kernel handler reached through a gate: base + per byte copied. */
  gateBase: 40,
  gateBytesPerCycle: 8,
  /**
   * Syscall lookahead (technique 3): the kernel fetches and decodes each scanned user instruction
   * in software, and emulates each viable one on the saved registers (docs/cost-model.md).
   */
  lookaheadDecode: 12,
  lookaheadEmulate: 8,
  /** VM exit + entry between guest and kernel-level hypervisor (one round trip). */
  vmExit: 1400,
  /** Round trip between kernel-level and user-level hypervisor. */
  khvUhvRoundTrip: 2600,
  /**
   * A VM-control field access the UHV cannot make directly: a call into the KHV and back (an
   * ioctl such as KVM_GET_ONE_REG is a host syscall round trip: the syscall row, preset none).
   * A direct access is a plain access (`base`).
   */
  uhvFieldCall: 300,
  /** Protection-domain switch through an exit / through a fast gate. */
  domainSwitchExit: 1400,
  domainSwitchGate: 150,
  /** Stop-the-world rendezvous: base plus per extra vCPU. */
  rendezvousBase: 4000,
  rendezvousPerVcpu: 600,
} as const;

export type CrossingPreset = keyof typeof COSTS.crossing;

/** Counter slots, in one Int32/Float64 array so the service can publish them via shared memory. */
export const Ctr = {
  Instructions: 0,
  Cycles: 1,
  TlbMisses: 2,
  WalkRefs: 3,
  TakenBranches: 4,
  BranchMispredicts: 5,
  ReturnMispredicts: 6,
  Traps: 7,
  Interrupts: 8,
  /** Privilege crossings inside a machine: trap entries and xRETs that are not VM exits/entries. */
  Crossings: 9,
  /** Indirect jumps mispredicted to HartCore.gadget: branch target injection's transient window. */
  GadgetReaches: 10,
  /** Indirect calls (a jalr that links, not a return) in VS mode, the guest kernel, whose target the BTB predicted (right or wrong). */
  KernelBtbCalls: 11,
  Count: 12,
} as const;

/**
 * Indirect-branch target predictor: direct-mapped, 512 entries indexed by pc bits [9:1], tagged
 * with the low TAG_BITS bits of the pc only (as hardware BTBs keep partial tags), storing the full
 * target. Shared across privilege levels and address spaces until flushed, so a branch at one
 * address can train the prediction of a branch at another with the same low bits: the aliasing
 * branch target injection uses (a user jump at 0x1_0234 trains the kernel's at 0xC000_0234).
 */
export class Btb {
  static readonly ENTRIES = 512;
  static readonly TAG_BITS = 16;
  readonly tag = new Int32Array(Btb.ENTRIES).fill(-1);
  readonly target = new Int32Array(Btb.ENTRIES);
  /** After a wrong prediction: the target the branch was predicted to (speculation went there); 0 when there was no prediction or it was right. */
  wrongTarget = 0;

  /** Predicts and trains; returns true when the prediction was correct. */
  predict(pc: number, actual: number): boolean {
    const i = (pc >>> 1) & (Btb.ENTRIES - 1);
    const t = pc & ((1 << Btb.TAG_BITS) - 1);
    const tagged = this.tag[i] === t;
    const hit = tagged && this.target[i] === actual;
    this.wrongTarget = tagged && !hit ? this.target[i] : 0;
    this.tag[i] = t;
    this.target[i] = actual;
    return hit;
  }

  flush(): void { this.tag.fill(-1); }
}

/** 16-entry return-stack buffer (circular: overflow overwrites the oldest entry). */
export class Rsb {
  static readonly ENTRIES = 16;
  readonly stack = new Int32Array(Rsb.ENTRIES);
  top = 0;
  depth = 0;

  push(ret: number): void {
    this.top = (this.top + 1) & (Rsb.ENTRIES - 1);
    this.stack[this.top] = ret;
    if (this.depth < Rsb.ENTRIES) this.depth++;
  }

  /** Pops a prediction and returns true when it equals the actual return target. */
  pop(actual: number): boolean {
    if (this.depth === 0) return false;
    const predicted = this.stack[this.top];
    this.top = (this.top - 1) & (Rsb.ENTRIES - 1);
    this.depth--;
    return predicted === actual;
  }

  flush(): void { this.depth = 0; }
}
