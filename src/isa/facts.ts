/**
 * THE CONTRACT: what each instruction is, for every engine and decoder that needs to know.
 *
 * Read this file to answer "which instructions end a block / are loads / may trap". Every row of
 * the instruction table (table.ts) declares its `kind` (and, for memory accesses, its size and
 * signedness); the facts below are derived from those by the rules in KIND_FACTS, once, into
 * FACTS (indexed by op id, like INSNS). The JIT (cpu/jit*.ts), the lookahead emulator
 * (guest/lookahead.ts) and the KHV's MMIO decoder (hypervisor/khv.ts) read FACTS; none of them
 * keeps a list of mnemonics. facts.spec.ts walks the table and checks the invariants stated here.
 *
 * The rules, by kind:
 *   kind     endsBlock  endsChain  mayTrap  readsMem  writesMem  writesRd
 *   alu/mul/div  -        -          -        -         -          yes
 *   load         -        -          yes      yes       -          yes
 *   store        -        -          yes      -         yes        -
 *   lr           -        -          yes      yes       -          yes
 *   sc, amo      -        -          yes      yes       yes        yes
 *   branch       yes      -          -        -         -          -
 *   jal, jalr    yes      -          -        -         -          yes (the link)
 *   csr          yes      yes        yes      -         -          yes
 *   fence        -        -          -        -         -          -
 *   fencei       yes      yes        -        -         -          -
 *   system       yes      yes        yes      -         -          -
 *   hlv          -        -          yes      yes       -          yes
 *   hsv          -        -          yes      -         yes        -
 *
 * - endsBlock: a translated block ends after it (control flow, or state the next instruction's
 *   translation may depend on). endsChain: it may change the mode, translation, interrupt state or
 *   code, so the block after it is found again through the dispatcher instead of chained.
 *   A CSR access also STARTS a block of its own (it may read instret/cycle/time, which are exact
 *   only at a block boundary): that is `startsBlock`.
 * - mayTrap: it can raise a synchronous exception (memory faults, illegal or virtual instruction,
 *   ecall/ebreak). Branches and jumps cannot: with C every target is 2-byte aligned and a fault at
 *   the target belongs to the instruction fetched there. Divides do not trap on RISC-V.
 * - writesRd: bits 11:7 name a destination register (written even when it is x0, then discarded).
 * - privileged: a row of the privileged architecture (Priv and H extensions): whether it may run
 *   depends on the current mode and the trap bits of mstatus/hstatus. (A CSR access's privilege
 *   depends on the CSR's address instead, checked at run time.)
 * - transfers: a branch or jump (branch, jal, jalr); taking it counts as a taken branch.
 * - plain: a load or store of RAM that translated code may inline as a TLB-checked fast path
 *   (lb ... sw); the others go through the hart every time.
 */
import { INSNS, Kind } from './table.js';

export type { Kind } from './table.js';

export interface InsnFacts {
  readonly kind: Kind;
  /** Bytes of memory accessed, 0 for none. */
  readonly size: 0 | 1 | 2 | 4;
  /** A load sign-extends its value from `size` bytes. */
  readonly signed: boolean;
  readonly readsMem: boolean;
  readonly writesMem: boolean;
  readonly writesRd: boolean;
  readonly endsBlock: boolean;
  readonly endsChain: boolean;
  readonly startsBlock: boolean;
  readonly mayTrap: boolean;
  readonly privileged: boolean;
  /** A plain RAM load or store (kind load/store): translated code may inline its fast path. */
  readonly plain: boolean;
  /** A branch or jump (kind branch, jal, jalr): it may transfer control, and counts as a taken branch when it does. */
  readonly transfers: boolean;
}

type Rule = Pick<InsnFacts, 'endsBlock' | 'endsChain' | 'mayTrap' | 'readsMem' | 'writesMem' | 'writesRd'>;

const rule = (endsBlock: boolean, endsChain: boolean, mayTrap: boolean, readsMem: boolean, writesMem: boolean, writesRd: boolean): Rule =>
  ({ endsBlock, endsChain, mayTrap, readsMem, writesMem, writesRd });
const _ = false;
const Y = true;

/** The rules of the table above, one line per kind (endsBlock, endsChain, mayTrap, readsMem, writesMem, writesRd). */
export const KIND_FACTS: Readonly<Record<Kind, Rule>> = {
  alu:    rule(_, _, _, _, _, Y),
  mul:    rule(_, _, _, _, _, Y),
  div:    rule(_, _, _, _, _, Y),
  load:   rule(_, _, Y, Y, _, Y),
  store:  rule(_, _, Y, _, Y, _),
  lr:     rule(_, _, Y, Y, _, Y),
  sc:     rule(_, _, Y, Y, Y, Y),
  amo:    rule(_, _, Y, Y, Y, Y),
  branch: rule(Y, _, _, _, _, _),
  jal:    rule(Y, _, _, _, _, Y),
  jalr:   rule(Y, _, _, _, _, Y),
  csr:    rule(Y, Y, Y, _, _, Y),
  fence:  rule(_, _, _, _, _, _),
  fencei: rule(Y, Y, _, _, _, _),
  system: rule(Y, Y, Y, _, _, _),
  hlv:    rule(_, _, Y, Y, _, Y),
  hsv:    rule(_, _, Y, _, Y, _),
};

/** The facts of every row of INSNS, by op id. */
export const FACTS: readonly InsnFacts[] = INSNS.map((r) => ({
  kind: r.kind,
  size: r.size,
  signed: r.signed,
  ...KIND_FACTS[r.kind],
  startsBlock: r.kind === 'csr',
  privileged: r.ext === 'Priv' || r.ext === 'H',
  plain: r.kind === 'load' || r.kind === 'store',
  transfers: r.kind === 'branch' || r.kind === 'jal' || r.kind === 'jalr',
}));
