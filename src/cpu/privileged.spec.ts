/**
 * Privileged-architecture and H-extension behaviour, checked against the RISC-V privileged
 * specification (v1.12 with the H extension chapter) on hand-built page tables.
 */
import { Hart, NATIVE_HS, NATIVE_M, NATIVE_VS, PRIV_M, PRIV_S, PRIV_U, StopReason } from './hart.js';
import { PhysMem } from '../mmu/phys.js';
import { CAUSE } from '../mmu/mmu.js';
import { encode, Operands } from '../isa/encode.js';
import { opId } from '../isa/table.js';
import { HS, MS, MSH } from './csr.js';
import { Ctr } from '../uarch/costs.js';

const PTE = { V: 1, R: 2, W: 4, X: 8, U: 16, A: 64, D: 128 };
const I = (name: string, ops: Operands = {}) => encode(opId(name), ops);

function machine(bytes = 4 << 20) {
  const mem = PhysMem.ofSize(bytes);
  const h = new Hart(mem);
  return { mem, h };
}

/** Writes code words at physical address pa. */
function code(mem: PhysMem, pa: number, words: number[]) {
  words.forEach((w, i) => mem.write32(pa + 4 * i, w));
}

/** A two-level Sv32 table builder over physical memory (also used for Sv32x4 with a 16 KiB root). */
class Tables {
  next: number;
  /** `shift` converts a table's physical address to the address space its PTEs name (GPA for VS tables). */
  constructor(private mem: PhysMem, start: number, private shift = 0) { this.next = start; }
  alloc(size = 4096) { const a = this.next; this.next += size; return a; }
  /** Maps 4 KiB page va -> pa in the table rooted at root (vpn1 may exceed 10 bits for Sv32x4). */
  map(root: number, va: number, pa: number, flags: number) {
    const l1 = root + Math.floor(va / 2 ** 22) * 4;
    let p1 = this.mem.read32(l1);
    if (!(p1 & 1)) { p1 = (((this.alloc() + this.shift) / 4096) << 10) | PTE.V; this.mem.write32(l1, p1); }
    this.mem.write32(this.l0(p1) + ((Math.floor(va / 4096)) & 0x3ff) * 4, ((pa / 4096) << 10) | flags);
  }
  /** Physical address of the level-0 table a level-1 PTE points to. */
  l0(p1: number): number { return (p1 >>> 10) * 4096 - this.shift; }
  pte(root: number, va: number): number {
    const p1 = this.mem.read32(root + Math.floor(va / 2 ** 22) * 4);
    return this.mem.read32(this.l0(p1) + ((Math.floor(va / 4096)) & 0x3ff) * 4);
  }
}

describe('traps and delegation', () => {
  test('ecall from U goes to M by default and to S when medeleg delegates it', () => {
    const { mem, h } = machine();
    code(mem, 0x1000, [I('ecall')]);
    h.nativeTraps = NATIVE_M | NATIVE_HS;
    h.priv = PRIV_U; h.pc = 0x1000; h.mtvec = 0x2000; h.stvec = 0x3000;
    expect(h.run(10)).toBe(StopReason.Trap);
    expect([h.priv, h.pc, h.mcause, h.mepc, (h.mstatus & MS.MPP) >> 11]).toEqual([PRIV_M, 0x2000, CAUSE.ecallU, 0x1000, PRIV_U]);

    h.medeleg = 1 << CAUSE.ecallU;
    h.priv = PRIV_U; h.pc = 0x1000; h.mstatus |= MS.SIE;
    expect(h.run(10)).toBe(StopReason.Trap);
    expect([h.priv, h.pc, h.scause, h.sepc]).toEqual([PRIV_S, 0x3000, CAUSE.ecallU, 0x1000]);
    expect(h.mstatus & MS.SPP).toBe(0);
    expect(h.mstatus & MS.SPIE).toBe(MS.SPIE); // SIE was pushed
    expect(h.mstatus & MS.SIE).toBe(0);
  });

  test('traps from M are never delegated; mret restores MPP/MIE and clears MPRV when leaving M', () => {
    const { mem, h } = machine();
    code(mem, 0x1000, [I('ecall')]);
    code(mem, 0x2000, [I('mret')]);
    h.medeleg = 0xffff;
    h.priv = PRIV_M; h.pc = 0x1000; h.mtvec = 0x2000; h.mstatus = MS.MIE;
    h.nativeTraps = NATIVE_M;
    expect(h.run(1)).toBe(StopReason.Trap);
    expect(h.mcause).toBe(CAUSE.ecallM);
    expect(h.mstatus & MS.MIE).toBe(0);
    h.nativeTraps = 0;
    h.mepc = 0x1100;
    h.mstatus = (h.mstatus & ~MS.MPP) | (PRIV_S << 11) | MS.MPRV | MS.MPIE;
    code(mem, 0x1100, [I('addi', { rd: 5, rs1: 0, imm: 7 })]);
    h.run(2); // mret, addi
    expect([h.priv, h.x[5], h.mstatus & MS.MPRV, h.mstatus & MS.MIE]).toEqual([PRIV_S, 7, 0, MS.MIE]);
  });

  test('sret in U is illegal; with TSR set it is illegal in S', () => {
    const { mem, h } = machine();
    code(mem, 0x1000, [I('sret')]);
    h.nativeTraps = NATIVE_M; h.priv = PRIV_U; h.pc = 0x1000;
    h.run(1);
    expect(h.mcause).toBe(CAUSE.illegal);
    h.priv = PRIV_S; h.pc = 0x1000; h.mstatus = MS.TSR;
    h.run(1);
    expect(h.mcause).toBe(CAUSE.illegal);
  });

  test('vectored mtvec sends interrupts to base + 4*cause', () => {
    const { h } = machine();
    h.nativeTraps = NATIVE_M; h.priv = PRIV_U; h.pc = 0x1000; h.mtvec = 0x2001;
    h.mie = 1 << 7; h.mip = 1 << 7; h.irqDirty = true;
    expect(h.run(1)).toBe(StopReason.Trap);
    expect([h.pc, h.mcause >>> 0]).toEqual([0x2000 + 4 * 7, 0x80000007]);
  });
});

describe('Sv32', () => {
  function sv32() {
    const m = machine();
    const t = new Tables(m.mem, 0x100000);
    const root = t.alloc();
    m.h.satp = 0x80000000 | (root / 4096);
    m.h.nativeTraps = NATIVE_M;
    return { ...m, t, root };
  }

  test('loads through a user page, sets A then D, faults on a missing page with stval', () => {
    const { mem, h, t, root } = sv32();
    t.map(root, 0x400000, 0x10000, PTE.V | PTE.R | PTE.X | PTE.U);
    t.map(root, 0x401000, 0x11000, PTE.V | PTE.R | PTE.W | PTE.U);
    code(mem, 0x10000, [I('lw', { rd: 5, rs1: 6, imm: 0 }), I('sw', { rs1: 6, rs2: 5, imm: 4 }), I('lw', { rd: 7, rs1: 8, imm: 0 })]);
    mem.write32(0x11000, 0x1234);
    h.priv = PRIV_U; h.pc = 0x400000; h.x[6] = 0x401000; h.x[8] = 0x402000;
    expect(h.run(10)).toBe(StopReason.Trap);
    expect(h.x[5]).toBe(0x1234);
    expect(mem.read32(0x11004)).toBe(0x1234);
    expect(t.pte(root, 0x401000) & (PTE.A | PTE.D)).toBe(PTE.A | PTE.D);
    expect(t.pte(root, 0x400000) & (PTE.A | PTE.D)).toBe(PTE.A);
    expect([h.mcause, h.mtval >>> 0, h.mepc]).toEqual([CAUSE.loadPage, 0x402000, 0x400008]);
    expect(h.ctr[Ctr.TlbMisses]).toBeGreaterThanOrEqual(2);
  });

  test('S-mode access to a U page needs SUM; MXR makes execute-only pages readable', () => {
    const { mem, h, t, root } = sv32();
    t.map(root, 0x400000, 0x10000, PTE.V | PTE.R | PTE.X | PTE.A);            // kernel code
    t.map(root, 0x500000, 0x20000, PTE.V | PTE.R | PTE.W | PTE.U | PTE.A | PTE.D); // user data
    t.map(root, 0x600000, 0x30000, PTE.V | PTE.X | PTE.A);                      // execute-only
    code(mem, 0x10000, [I('lw', { rd: 5, rs1: 6 })]);
    mem.write32(0x20000, 99); mem.write32(0x30000, 77);
    const attempt = (addr: number) => { h.priv = PRIV_S; h.pc = 0x400000; h.x[6] = addr; h.x[5] = 0; return h.run(1); };
    expect(attempt(0x500000)).toBe(StopReason.Trap);
    expect(h.mcause).toBe(CAUSE.loadPage);
    h.mstatus |= MS.SUM; h.mmu.flushAll();
    expect(attempt(0x500000)).toBe(StopReason.Budget);
    expect(h.x[5]).toBe(99);
    expect(attempt(0x600000)).toBe(StopReason.Trap);
    h.setMstatus(h.mstatus | MS.MXR);
    expect(attempt(0x600000)).toBe(StopReason.Budget);
    expect(h.x[5]).toBe(77);
  });

  test('U-mode cannot fetch from a supervisor page; a stale TLB entry survives until sfence.vma', () => {
    const { mem, h, t, root } = sv32();
    t.map(root, 0x400000, 0x10000, PTE.V | PTE.R | PTE.X | PTE.U | PTE.A);
    t.map(root, 0x401000, 0x11000, PTE.V | PTE.R | PTE.U | PTE.A);
    code(mem, 0x10000, [I('lw', { rd: 5, rs1: 6 }), I('lw', { rd: 5, rs1: 6 })]);
    mem.write32(0x11000, 1); mem.write32(0x12000, 2);
    h.priv = PRIV_U; h.pc = 0x400000; h.x[6] = 0x401000;
    h.run(1);
    expect(h.x[5]).toBe(1);
    t.map(root, 0x401000, 0x12000, PTE.V | PTE.R | PTE.U | PTE.A); // remap without sfence
    h.run(1);
    expect(h.x[5]).toBe(1); // the TLB still holds the old translation
    h.mmu.flushAll();
    h.pc = 0x400000;
    h.run(1);
    expect(h.x[5]).toBe(2);
    t.map(root, 0x400000, 0x10000, PTE.V | PTE.R | PTE.X | PTE.A); // supervisor-only code
    h.mmu.flushAll();
    h.pc = 0x400000;
    expect(h.run(1)).toBe(StopReason.Trap);
    expect(h.mcause).toBe(CAUSE.fetchPage);
  });
});

describe('H extension: two-stage translation', () => {
  /** A guest in VS/VU mode: VS-stage table in guest-physical memory, G-stage mapping GPA -> PA. */
  function guest() {
    const m = machine(8 << 20);
    const host = new Tables(m.mem, 0x200000);
    const groot = host.alloc(16384);
    const GPA_BASE = 0x80000000; // guest RAM at 2 GiB, backed from PA 0x400000
    const gmap = (gpa: number, flags = PTE.V | PTE.R | PTE.W | PTE.X | PTE.U) => host.map(groot, gpa, 0x400000 + (gpa - GPA_BASE), flags);
    // Guest page tables live at GPA 0x80100000.. (PA 0x500000..)
    const gpt = new Tables(m.mem, 0x500000, GPA_BASE - 0x400000);
    const vsroot = gpt.alloc(); // PA of the VS root; its GPA is PA - 0x400000 + GPA_BASE
    const toGpa = (pa: number) => pa - 0x400000 + GPA_BASE;
    m.h.hgatp = 0x80000000 | (groot / 4096);
    m.h.vsatp = 0x80000000 | (toGpa(vsroot) / 4096);
    m.h.nativeTraps = NATIVE_M | NATIVE_HS;
    // Guest-page faults, virtual-instruction and page faults go to HS (the hypervisor).
    m.h.medeleg = (0xf << 20) | (1 << CAUSE.illegal) | (1 << 12) | (1 << 13) | (1 << 15);
    m.h.virt = 1;
    return { ...m, host, groot, gmap, gpt, vsroot, toGpa, GPA_BASE };
  }

  test('a VS-stage PTE whose own GPA is unmapped raises a guest-page fault with htval = its GPA >> 2', () => {
    const { mem, h, gmap, gpt, vsroot, toGpa, GPA_BASE } = guest();
    // Code: guest VA 0x10000 -> GPA 0x80000000 (mapped in both stages).
    gmap(GPA_BASE);
    gmap(toGpa(vsroot));
    gpt.map(vsroot, 0x10000, GPA_BASE, PTE.V | PTE.R | PTE.X | PTE.U | PTE.A);
    code(mem, 0x400000, [I('lw', { rd: 5, rs1: 6 })]);
    // Data VA 0x20000: its level-0 table is placed at a GPA the G-stage does not map.
    const l0gpa = (mem.read32(vsroot) >>> 10) * 4096; // level-0 table of VA 0x10000
    // Re-point the level-1 entry for VA 0x400000.. (vpn1 = 1) at an unmapped GPA.
    const unmappedGpa = GPA_BASE + 0x300000;
    mem.write32(vsroot + 4, ((unmappedGpa / 4096) << 10) | PTE.V);
    gmap(l0gpa);
    h.priv = PRIV_U; h.pc = 0x10000; h.x[6] = 0x400010;
    expect(h.run(1)).toBe(StopReason.Trap);
    expect(h.priv).toBe(PRIV_S);
    expect(h.virt).toBe(0);
    expect(h.scause).toBe(CAUSE.loadGuestPage);
    expect(h.stval >>> 0).toBe(0x400010);
    const pteGpa = unmappedGpa + ((0x400010 >>> 12) & 0x3ff) * 4;
    expect(h.htval >>> 0).toBe(Math.floor(pteGpa / 4));
    expect(h.hstatus & HS.GVA).toBe(HS.GVA);
    expect(h.hstatus & HS.SPV).toBe(HS.SPV);
    expect(h.hstatus & HS.SPVP).toBe(0); // came from VU
  });

  test('a final GPA without G-stage mapping faults with htval of that GPA; VS page faults go to VS with hedeleg', () => {
    const { mem, h, gmap, gpt, vsroot, toGpa, GPA_BASE } = guest();
    gmap(GPA_BASE); gmap(toGpa(vsroot));
    gpt.map(vsroot, 0x10000, GPA_BASE, PTE.V | PTE.R | PTE.X | PTE.U | PTE.A);
    gmap((mem.read32(vsroot) >>> 10) * 4096);
    gpt.map(vsroot, 0x30000, GPA_BASE + 0x5000, PTE.V | PTE.R | PTE.W | PTE.U | PTE.A | PTE.D); // GPA not G-mapped
    code(mem, 0x400000, [I('sw', { rs1: 6, rs2: 0 })]);
    h.priv = PRIV_U; h.pc = 0x10000; h.x[6] = 0x30008;
    h.run(1);
    expect([h.scause, h.stval, h.htval]).toEqual([CAUSE.storeGuestPage, 0x30008, (GPA_BASE + 0x5008) / 4 | 0]);

    // A VS-stage page fault (no VS mapping at 0x90000) is delegated to VS by hedeleg.
    h.virt = 1; h.priv = PRIV_U; h.pc = 0x10000; h.x[6] = 0x90000; h.vstvec = 0x10000;
    h.medeleg = 1 << CAUSE.storePage; h.hedeleg = 1 << CAUSE.storePage; h.nativeTraps = NATIVE_VS;
    h.run(1);
    expect([h.virt, h.priv, h.vscause, h.vstval, h.vsepc]).toEqual([1, PRIV_S, CAUSE.storePage, 0x90000, 0x10000]);
  });

  test('VS-mode CSR accesses: sstatus is vsstatus, hstatus is a virtual-instruction exception, mstatus is illegal', () => {
    const { mem, h, gmap, gpt, vsroot, toGpa, GPA_BASE } = guest();
    gmap(GPA_BASE); gmap(toGpa(vsroot));
    gpt.map(vsroot, 0x10000, GPA_BASE, PTE.V | PTE.R | PTE.X | PTE.A);
    gmap((mem.read32(vsroot) >>> 10) * 4096);
    code(mem, 0x400000, [
      I('csrrs', { rd: 5, csr: 0x100, rs1: 0 }),
      I('csrrs', { rd: 6, csr: 0x600, rs1: 0 }),
      I('csrrs', { rd: 7, csr: 0x300, rs1: 0 }),
    ]);
    h.vsstatus = MS.SUM; h.mstatus = 0;
    h.priv = PRIV_S; h.pc = 0x10000;
    h.run(1);
    expect(h.x[5]).toBe(MS.SUM);
    h.run(1);
    expect(h.scause).toBe(CAUSE.virtualInstruction);
    h.virt = 1; h.priv = PRIV_S; h.pc = 0x10008;
    h.run(1);
    expect(h.scause).toBe(CAUSE.illegal);
  });

  test('HLV/HSV from HS-mode access guest memory with two-stage translation; HLVX needs execute permission', () => {
    const { mem, h, gmap, gpt, vsroot, toGpa, GPA_BASE } = guest();
    gmap(toGpa(vsroot));
    gpt.map(vsroot, 0x70000, GPA_BASE + 0x7000, PTE.V | PTE.R | PTE.W | PTE.U | PTE.A | PTE.D);
    gmap((mem.read32(vsroot) >>> 10) * 4096);
    gmap(GPA_BASE + 0x7000);
    mem.write32(0x407000, 0xcafe);
    code(mem, 0x1000, [
      I('hlv.w', { rd: 5, rs1: 6 }),
      I('hsv.w', { rs1: 6, rs2: 7 }),
      I('hlvx.wu', { rd: 8, rs1: 6 }),
    ]);
    h.virt = 0; h.priv = PRIV_S; h.satp = 0; h.pc = 0x1000; h.x[6] = 0x70000; h.x[7] = 0x55;
    h.hstatus = 0; // SPVP = 0: accesses as VU, the page is a U page
    h.run(2);
    expect(h.x[5]).toBe(0xcafe);
    expect(mem.read32(0x407000)).toBe(0x55);
    expect(h.run(1)).toBe(StopReason.Trap); // HLVX on a non-executable page
    expect(h.scause).toBe(CAUSE.loadPage);
    // From U-mode without hstatus.HU, HLV is illegal; with HU it works.
    h.virt = 0; h.priv = PRIV_U; h.pc = 0x1000; h.mcounteren = 7;
    h.medeleg &= ~(1 << CAUSE.illegal);
    h.run(1);
    expect(h.mcause).toBe(CAUSE.illegal);
    h.hstatus |= HS.HU; h.virt = 0; h.priv = PRIV_U; h.pc = 0x1000; h.x[5] = 0;
    h.run(1);
    expect(h.x[5]).toBe(0x55);
  });

  test('HLV executed in VS-mode is a virtual-instruction exception', () => {
    const { mem, h, gmap, gpt, vsroot, toGpa, GPA_BASE } = guest();
    gmap(GPA_BASE); gmap(toGpa(vsroot));
    gpt.map(vsroot, 0x10000, GPA_BASE, PTE.V | PTE.R | PTE.X | PTE.A);
    gmap((mem.read32(vsroot) >>> 10) * 4096);
    code(mem, 0x400000, [I('hlv.w', { rd: 5, rs1: 6 })]);
    h.priv = PRIV_S; h.pc = 0x10000;
    h.run(1);
    expect([h.scause, h.stval >>> 0, h.virt]).toEqual([CAUSE.virtualInstruction, 0x60000073, 0]);
  });

  test('pmret (Xhvpm) always traps: a virtual-instruction exception in VS/VU, illegal in HS/M, under both engines', () => {
    for (const engine of ['interp', 'jit'] as const) {
      const { mem, h, gmap, gpt, vsroot, toGpa, GPA_BASE } = guest();
      h.engine = engine;
      gmap(GPA_BASE); gmap(toGpa(vsroot));
      gpt.map(vsroot, 0x10000, GPA_BASE, PTE.V | PTE.R | PTE.X | PTE.A);
      gpt.map(vsroot, 0x20000, GPA_BASE, PTE.V | PTE.R | PTE.X | PTE.A | PTE.U);
      gmap((mem.read32(vsroot) >>> 10) * 4096);
      code(mem, 0x400000, [I('addi', { rd: 5, rs1: 0, imm: 7 }), I('pmret')]);
      for (const [priv, va] of [[PRIV_S, 0x10000], [PRIV_U, 0x20000]]) {
        h.virt = 1; h.priv = priv; h.pc = va; h.x[5] = 0;
        h.run(5);
        expect([engine, h.x[5], h.scause, h.stval >>> 0, h.sepc, h.virt]).toEqual([engine, 7, CAUSE.virtualInstruction, 0x0000100b, va + 4, 0]);
      }
      const m = machine();
      m.h.engine = engine;
      code(m.mem, 0x1000, [I('pmret')]);
      m.h.nativeTraps = NATIVE_M; m.h.priv = PRIV_M; m.h.pc = 0x1000;
      m.h.run(1);
      expect([m.h.mcause, m.h.mtval >>> 0]).toEqual([CAUSE.illegal, 0x0000100b]);
    }
  });

  test('hfence.gvma flushes G-stage translations; sfence.vma in VS with VTVM is a virtual-instruction exception', () => {
    const { mem, h, gmap, gpt, vsroot, toGpa, GPA_BASE, host, groot } = guest();
    gmap(GPA_BASE); gmap(toGpa(vsroot));
    gpt.map(vsroot, 0x10000, GPA_BASE, PTE.V | PTE.R | PTE.X | PTE.A);
    gmap((mem.read32(vsroot) >>> 10) * 4096);
    gpt.map(vsroot, 0x20000, GPA_BASE + 0x2000, PTE.V | PTE.R | PTE.A);
    gmap(GPA_BASE + 0x2000);
    mem.write32(0x402000, 1); mem.write32(0x403000, 2);
    code(mem, 0x400000, [I('lw', { rd: 5, rs1: 6 }), I('sfence.vma')]);
    h.priv = PRIV_S; h.pc = 0x10000; h.x[6] = 0x20000;
    h.run(1);
    expect(h.x[5]).toBe(1);
    host.map(groot, GPA_BASE + 0x2000, 0x403000, PTE.V | PTE.R | PTE.W | PTE.X | PTE.U); // host remaps the GPA
    h.pc = 0x10000; h.run(1);
    expect(h.x[5]).toBe(1); // stale until the hypervisor fences
    code(mem, 0x1000, [I('hfence.gvma')]);
    h.virt = 0; h.priv = PRIV_S; h.pc = 0x1000; h.run(1);
    h.virt = 1; h.priv = PRIV_S; h.pc = 0x10000; h.run(1);
    expect(h.x[5]).toBe(2);
    h.hstatus |= HS.VTVM; h.pc = 0x10004;
    h.run(1);
    expect([h.scause, h.virt]).toEqual([CAUSE.virtualInstruction, 0]);
    expect(h.mstatush & MSH.MPV).toBe(0);
  });
});

describe('counters, misaligned accesses and memory errors', () => {
  function flat() {
    const m = machine();
    m.h.nativeTraps = NATIVE_M;
    return m;
  }

  test('rdcycle/rdinstret count retired work; U-mode access needs mcounteren and scounteren', () => {
    const { mem, h } = flat();
    code(mem, 0x1000, [I('addi', { rd: 5, rs1: 0, imm: 1 }), I('csrrs', { rd: 6, csr: 0xc02, rs1: 0 }), I('csrrs', { rd: 7, csr: 0xc00, rs1: 0 })]);
    h.priv = PRIV_M; h.pc = 0x1000;
    h.run(3);
    expect(h.x[6]).toBe(1); // one instruction retired before the read
    expect(h.x[7]).toBeGreaterThanOrEqual(2);
    h.priv = PRIV_U; h.pc = 0x1004;
    expect(h.run(1)).toBe(StopReason.Trap);
    expect(h.mcause).toBe(CAUSE.illegal);
    h.mcounteren = 7; h.scounteren = 7; h.priv = PRIV_U; h.pc = 0x1004;
    expect(h.run(1)).toBe(StopReason.Budget);
  });

  test('misaligned loads and stores, even across a page boundary, work transparently', () => {
    const { mem, h } = flat();
    code(mem, 0x1000, [I('sw', { rs1: 6, rs2: 5, imm: 0 }), I('lw', { rd: 7, rs1: 6, imm: 0 }), I('lhu', { rd: 8, rs1: 6, imm: 1 })]);
    h.priv = PRIV_M; h.pc = 0x1000; h.x[5] = 0x11223344; h.x[6] = 0x2ffe;
    h.run(3);
    expect([h.x[7], h.x[8]]).toEqual([0x11223344, 0x2233]);
    expect([mem.u8[0x2ffe], mem.u8[0x3001]]).toEqual([0x44, 0x11]);
  });

  test('a poisoned frame raises a hardware error (cause 19) on every access; clearing it restores access', () => {
    const { mem, h } = flat();
    code(mem, 0x1000, [I('lw', { rd: 5, rs1: 6, imm: 0 })]);
    mem.write32(0x5000, 77);
    h.priv = PRIV_M; h.pc = 0x1000; h.x[6] = 0x5000;
    h.run(1);
    expect(h.x[5]).toBe(77); // the page is now in the TLB
    mem.setPoison(5, true);
    h.mmu.flushAll();
    for (let i = 0; i < 2; i++) {
      h.pc = 0x1000; h.x[5] = 0;
      expect(h.run(1)).toBe(StopReason.Trap);
      expect([h.mcause, h.mtval]).toEqual([CAUSE.hardwareError, 0x5000]);
      h.priv = PRIV_M;
    }
    mem.setPoison(5, false);
    h.pc = 0x1000;
    h.run(1);
    expect(h.x[5]).toBe(77);
  });
});
