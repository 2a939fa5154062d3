/**
 * The CSR file as a table: one row per implemented CSR with its address, name, the lowest
 * privilege that may access it, read and write functions, and a support level. Access checks
 * (privilege, read-only, virtualization) live in HartCore.csrOp; rows only describe state.
 *
 * With V=1, accesses to supervisor CSRs (0x1xx) are redirected to their VS counterparts
 * (0x2xx), as the H extension specifies; HartCore.csrOp does the redirection.
 */
import type { HartCore } from './hart-core.js';
import { CSR_NAMES } from '../isa/csr-names.js';
import { Ctr } from '../uarch/costs.js';
import { CsrRowOf, HS, IRQ, MS, MSH, SupportLevel } from './csr-bits.js';

export { HS, IRQ, MS, MSH } from './csr-bits.js';
export type { SupportLevel } from './csr-bits.js';

export type CsrRow = CsrRowOf<HartCore>;

const MSTATUS_WMASK = MS.SIE | MS.MIE | MS.SPIE | MS.MPIE | MS.SPP | MS.MPP | MS.MPRV | MS.SUM | MS.MXR | MS.TVM | MS.TW | MS.TSR;
const SSTATUS_MASK = MS.SIE | MS.SPIE | MS.SPP | MS.SUM | MS.MXR;
const HSTATUS_WMASK = HS.GVA | HS.SPV | HS.SPVP | HS.HU | HS.VTVM | HS.VTW | HS.VTSR;

const VS_IRQS = (1 << 2) | (1 << 6) | (1 << 10);
const S_IRQS = (1 << 1) | (1 << 5) | (1 << 9);
const ALL_IRQS = S_IRQS | VS_IRQS | (1 << 3) | (1 << 7) | (1 << 11);

/** misa: RV32 (MXL=1) with A, C, H, I, M, S, U. */
export const MISA = (1 << 30) | (1 << 0) | (1 << 2) | (1 << 7) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20);

/** Delegable exceptions: 0-10, 12, 13, 15 and the H extension's 20-23 (never ecall from M). */
const MEDELEG_MASK = 0xf0b7ff;
/** hedeleg may delegate to VS: misaligned, access faults, illegal, breakpoint, ecall from VU, page faults. */
const HEDELEG_MASK = 0xb1ff;

const rows: CsrRow[] = [];
const csr = (addr: number, read: (h: HartCore) => number, write: (h: HartCore, v: number) => void = () => {},
  support: SupportLevel = 'full', note?: string) => {
  const name = CSR_NAMES.get(addr);
  if (!name) throw new Error(`CSR 0x${addr.toString(16)} has no standard name`);
  rows.push({ addr, name, read, write, support, note });
};
const lo = (v: number) => v | 0;
const hi = (v: number) => Math.floor(v / 2 ** 32) | 0;

// Unprivileged counters (time is derived from cycles at the nominal 1 GHz: 1 cycle = 1 ns).
csr(0xc00, (h) => lo(h.ctr[Ctr.Cycles]));
csr(0xc01, (h) => lo(h.time()));
csr(0xc02, (h) => lo(h.ctr[Ctr.Instructions]));
csr(0xc80, (h) => hi(h.ctr[Ctr.Cycles]));
csr(0xc81, (h) => hi(h.time()));
csr(0xc82, (h) => hi(h.ctr[Ctr.Instructions]));

// Supervisor
csr(0x100, (h) => h.mstatus & SSTATUS_MASK, (h, v) => h.setMstatus((h.mstatus & ~SSTATUS_MASK) | (v & SSTATUS_MASK)));
csr(0x104, (h) => h.mie & h.mideleg & S_IRQS, (h, v) => { const m = h.mideleg & S_IRQS; h.mie = (h.mie & ~m) | (v & m); });
csr(0x105, (h) => h.stvec, (h, v) => { h.stvec = v & ~2; });
csr(0x106, (h) => h.scounteren, (h, v) => { h.scounteren = v & 7; });
csr(0x140, (h) => h.sscratch, (h, v) => { h.sscratch = v; });
csr(0x141, (h) => h.sepc, (h, v) => { h.sepc = v & ~1; });
csr(0x142, (h) => h.scause, (h, v) => { h.scause = v; });
csr(0x143, (h) => h.stval, (h, v) => { h.stval = v; });
csr(0x144, (h) => h.mip & h.mideleg & S_IRQS, (h, v) => { const m = h.mideleg & (1 << IRQ.SSI); h.mip = (h.mip & ~m) | (v & m); });
csr(0x180, (h) => h.satp, (h, v) => { h.satp = v & 0x803fffff; h.mmu.flushAll(); });

// Virtual supervisor
csr(0x200, (h) => h.vsstatus, (h, v) => { h.vsstatus = v & SSTATUS_MASK; h.mmu.flushAll(); });
csr(0x204, (h) => (h.mie & h.hideleg & VS_IRQS) >> 1, (h, v) => { const m = h.hideleg & VS_IRQS; h.mie = (h.mie & ~m) | ((v << 1) & m); });
csr(0x205, (h) => h.vstvec, (h, v) => { h.vstvec = v & ~2; });
csr(0x240, (h) => h.vsscratch, (h, v) => { h.vsscratch = v; });
csr(0x241, (h) => h.vsepc, (h, v) => { h.vsepc = v & ~1; });
csr(0x242, (h) => h.vscause, (h, v) => { h.vscause = v; });
csr(0x243, (h) => h.vstval, (h, v) => { h.vstval = v; });
csr(0x244, (h) => (h.mip & h.hideleg & VS_IRQS) >> 1, (h, v) => {
  const m = h.hideleg & (1 << IRQ.VSSI); h.mip = (h.mip & ~m) | ((v << 1) & m);
});
csr(0x280, (h) => h.vsatp, (h, v) => { h.vsatp = v & 0x803fffff; h.mmu.flushAll(); });

// Hypervisor
csr(0x600, (h) => h.hstatus, (h, v) => { h.hstatus = v & HSTATUS_WMASK; });
csr(0x602, (h) => h.hedeleg, (h, v) => { h.hedeleg = v & HEDELEG_MASK; });
csr(0x603, (h) => h.hideleg, (h, v) => { h.hideleg = v & VS_IRQS; });
csr(0x604, (h) => h.mie & (VS_IRQS | (1 << 12)), (h, v) => { h.mie = (h.mie & ~VS_IRQS) | (v & VS_IRQS); });
csr(0x605, (h) => lo(h.htimedelta), (h, v) => { h.htimedelta = hi(h.htimedelta) * 2 ** 32 + (v >>> 0); });
csr(0x615, (h) => hi(h.htimedelta), (h, v) => { h.htimedelta = v * 2 ** 32 + (lo(h.htimedelta) >>> 0); });
csr(0x606, (h) => h.hcounteren, (h, v) => { h.hcounteren = v & 7; });
csr(0x607, () => 0, () => {}, 'read-only-zero', 'no guest external interrupt files (GEILEN = 0)');
csr(0xe12, () => 0, () => {}, 'read-only-zero', 'no guest external interrupt files (GEILEN = 0)');
csr(0x643, (h) => h.htval, (h, v) => { h.htval = v; });
csr(0x644, (h) => h.mip & VS_IRQS, (h, v) => { const m = 1 << IRQ.VSSI; h.mip = (h.mip & ~m) | (v & m); });
csr(0x645, (h) => h.mip & VS_IRQS, (h, v) => { h.mip = (h.mip & ~VS_IRQS) | (v & VS_IRQS); });
csr(0x64a, (h) => h.htinst, (h, v) => { h.htinst = v; });
csr(0x680, (h) => h.hgatp, (h, v) => {
  // Sv32x4 (MODE 1) or Bare; the root is 16 KiB aligned, so PPN[1:0] read as zero. VMID not implemented (reads 0).
  h.hgatp = (v & 0x80000000) | (v & 0x3ffffc); h.mmu.flushAll();
}, 'partial', 'VMID is not implemented (VMIDLEN = 0)');

// Machine
csr(0x300, (h) => h.mstatus, (h, v) => h.setMstatus((h.mstatus & ~MSTATUS_WMASK) | (v & MSTATUS_WMASK)));
csr(0x310, (h) => h.mstatush, (h, v) => { h.mstatush = v & (MSH.GVA | MSH.MPV); });
csr(0x301, () => MISA, () => {}, 'partial', 'misa is read-only: extensions cannot be switched off');
csr(0x302, (h) => h.medeleg, (h, v) => { h.medeleg = v & MEDELEG_MASK; });
csr(0x303, (h) => h.mideleg | VS_IRQS, (h, v) => { h.mideleg = v & S_IRQS; });
csr(0x304, (h) => h.mie, (h, v) => { h.mie = v & ALL_IRQS; });
csr(0x305, (h) => h.mtvec, (h, v) => { h.mtvec = v & ~2; });
csr(0x306, (h) => h.mcounteren, (h, v) => { h.mcounteren = v & 7; });
csr(0x340, (h) => h.mscratch, (h, v) => { h.mscratch = v; });
csr(0x341, (h) => h.mepc, (h, v) => { h.mepc = v & ~1; });
csr(0x342, (h) => h.mcause, (h, v) => { h.mcause = v; });
csr(0x343, (h) => h.mtval, (h, v) => { h.mtval = v; });
csr(0x344, (h) => h.mip, (h, v) => {
  const m = (1 << IRQ.SSI) | (1 << IRQ.STI) | (1 << IRQ.SEI) | VS_IRQS; h.mip = (h.mip & ~m) | (v & m);
});
csr(0x34a, (h) => h.mtinst, (h, v) => { h.mtinst = v; });
csr(0x34b, (h) => h.mtval2, (h, v) => { h.mtval2 = v; });
csr(0xb00, (h) => lo(h.ctr[Ctr.Cycles]), (h, v) => { h.ctr[Ctr.Cycles] = hi(h.ctr[Ctr.Cycles]) * 2 ** 32 + (v >>> 0); });
csr(0xb02, (h) => lo(h.ctr[Ctr.Instructions]), (h, v) => { h.ctr[Ctr.Instructions] = hi(h.ctr[Ctr.Instructions]) * 2 ** 32 + (v >>> 0); });
csr(0xb80, (h) => hi(h.ctr[Ctr.Cycles]), (h, v) => { h.ctr[Ctr.Cycles] = v * 2 ** 32 + (lo(h.ctr[Ctr.Cycles]) >>> 0); });
csr(0xb82, (h) => hi(h.ctr[Ctr.Instructions]), (h, v) => { h.ctr[Ctr.Instructions] = v * 2 ** 32 + (lo(h.ctr[Ctr.Instructions]) >>> 0); });
csr(0xf11, () => 0);
csr(0xf12, () => 0);
csr(0xf13, () => 0);
csr(0xf14, (h) => h.hartId);

export const CSR_ROWS: readonly CsrRow[] = rows;

/** Rows by address (undefined = not implemented: accessing it is an illegal instruction). */
export const CSR_BY_ADDR: ReadonlyArray<CsrRow | undefined> = (() => {
  const t: Array<CsrRow | undefined> = new Array(4096).fill(undefined);
  for (const r of rows) t[r.addr] = r;
  return t;
})();
