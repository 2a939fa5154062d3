/**
 * CSR bit layouts and the shape of a CSR table row, with no dependency: the hart (hart-core.ts)
 * reads these, and the CSR table (csr.ts) is written against the hart, so neither imports the
 * other (hart.ts hands the table to the hart).
 */

export type SupportLevel = 'full' | 'partial' | 'read-only-zero';

/** One CSR of the table, over the hart type H. */
export interface CsrRowOf<H> {
  readonly addr: number;
  readonly name: string;
  readonly support: SupportLevel;
  /** A note for docs/isa.md on partial support. */
  readonly note?: string;
  read(h: H): number;
  write(h: H, v: number): void;
}

// mstatus bits
export const MS = {
  SIE: 1 << 1, MIE: 1 << 3, SPIE: 1 << 5, MPIE: 1 << 7, SPP: 1 << 8, MPP: 3 << 11,
  MPRV: 1 << 17, SUM: 1 << 18, MXR: 1 << 19, TVM: 1 << 20, TW: 1 << 21, TSR: 1 << 22,
} as const;
/** mstatush bits (RV32). */
export const MSH = { GVA: 1 << 6, MPV: 1 << 7 } as const;
/** hstatus bits. */
export const HS = { GVA: 1 << 6, SPV: 1 << 7, SPVP: 1 << 8, HU: 1 << 9, VTVM: 1 << 20, VTW: 1 << 21, VTSR: 1 << 22 } as const;

// Interrupt bits: SSIP 1, VSSIP 2, MSIP 3, STIP 5, VSTIP 6, MTIP 7, SEIP 9, VSEIP 10, MEIP 11, SGEIP 12.
export const IRQ = { SSI: 1, VSSI: 2, MSI: 3, STI: 5, VSTI: 6, MTI: 7, SEI: 9, VSEI: 10, MEI: 11 } as const;
