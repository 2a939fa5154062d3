/**
 * How execution unwinds and why it stops: shared by the hart (which raises), the engines (which
 * catch) and their callers. A module of its own so that none of them imports another for these.
 */

/** Thrown (as this one object) to unwind an instruction that raised a synchronous exception. */
export const TRAP = { trap: true } as const;
/** Thrown to leave the run loop before an instruction (gate fetch). */
export const STOP = { stop: true } as const;

/** Why a run returned. */
export const StopReason = {
  /** The instruction budget is used up. */
  Budget: 0,
  /** A trap was taken into a mode listed in `nativeTraps`; CSRs hold its details. */
  Trap: 1,
  /** wfi with no interrupt pending. */
  Wfi: 2,
  /** The next instruction would be fetched from the gate range; pc is the gate address. */
  Gate: 3,
} as const;
