/**
 * A process's address space (Linux's mm_struct): its Sv32 page table in guest RAM, the regions of
 * its user half (ELF segments, heap, stack, mmap areas), the break, and the kernel's copies to
 * and from user memory. Every address space shares the kernel's root entries (the kernel region
 * at KERNEL_VA, the device region at DEVICE_VA); per-process kernel mappings would go there too.
 *
 * User pages are mapped on demand: by the trap gate on a page fault inside a region, or by a
 * copy to or from user memory that touches a page of a region for the first time.
 */
import { PTE } from '../mmu/mmu.js';
import { PAGE_SIZE, pageBase } from '../mmu/phys.js';
import type { Khv } from '../hypervisor/khv.js';
import { RAM_BASE } from '../hypervisor/platform.js';
import { ERRNO } from './errno.js';
import { DEVICE_GPA, DEVICE_VA, KERNEL_VA, PM_GPA, PM_VA } from './layout.js';
import type { PagePool } from './page-pool.js';

/** Region and page permissions, as the PTE bits they become. */
export const PROT = { R: PTE.R, W: PTE.W, X: PTE.X } as const;

export const STACK_TOP = 0x8000_0000;
export const STACK_SIZE = 8 * 1024 * 1024;
export const MMAP_BASE = 0x4000_0000;
/** User addresses end where the kernel half (KERNEL_VA) begins. */
export const USER_END = 0xc000_0000;

export type RegionKind = 'elf' | 'stack' | 'heap' | 'mmap';
export interface Region { start: number; end: number; perms: number; kind: RegionKind }

/** What an address space needs of the kernel: guest RAM, the page pool, and a TLB shootdown on every vCPU. */
export interface MemoryContext {
  readonly khv: Khv;
  readonly pool: PagePool;
  flushTlbs(): void;
}

/** The state an address space exports for a live migration (JSON-safe). */
export interface AddressSpaceState {
  root: number; satp: number; pages: Array<[number, number]>; tables: Array<[number, number]>;
  regions: Region[]; brkStart: number; brk: number;
  /** Per-process kernel pages (vpn, gpa): technique 2's trampoline page. Absent in states exported before them. */
  kernelPages?: Array<[number, number]>;
}

/** Writes the root entries every address space shares (the kernel and device megapages) into root table `root`. */
export function writeKernelMappings(khv: Khv, root: number): void {
  const k = (((RAM_BASE / PAGE_SIZE) << 10) | PTE.V | PTE.R | PTE.W | PTE.X | PTE.G | PTE.A | PTE.D) | 0;
  const d = (((DEVICE_GPA / PAGE_SIZE) << 10) | PTE.V | PTE.R | PTE.W | PTE.G | PTE.A | PTE.D) | 0;
  khv.write32(root + 4 * (KERNEL_VA >>> 22), k);
  khv.write32(root + 4 * (DEVICE_VA >>> 22), d);
  khv.write32(root + 4 * (PM_VA >>> 22), (((PM_GPA / PAGE_SIZE) << 10) | PTE.V | PTE.R | PTE.G | PTE.A) | 0);
}

export class AddressSpace {
  /** The satp value selecting this address space. */
  readonly satp: number;
  /** Mapped user pages: vpn -> guest-physical page address + PTE permission bits. */
  readonly pages = new Map<number, number>();
  /** Leaf page tables: root index -> guest-physical address. */
  readonly tables = new Map<number, number>();
  /** Per-process kernel pages: vpn -> guest-physical page address (mapKernelPage). */
  readonly kernelPages = new Map<number, number>();
  readonly regions: Region[] = [];
  brkStart = 0;
  brk = 0;

  /** Over the root page table at guest-physical `root` (already holding the kernel mappings). */
  private constructor(private readonly ctx: MemoryContext, readonly root: number) {
    this.satp = (0x80000000 | (root / PAGE_SIZE)) | 0;
  }

  /** A new, empty address space; null when guest RAM is exhausted. Raises: OutOfHostMemory. */
  static create(ctx: MemoryContext): AddressSpace | null {
    const root = ctx.pool.alloc();
    if (root < 0) return null;
    writeKernelMappings(ctx.khv, root);
    return new AddressSpace(ctx, root);
  }

  /** An address space from `export` of another VM whose guest RAM (page tables included) was copied here. */
  static restore(ctx: MemoryContext, st: AddressSpaceState): AddressSpace {
    const mm = new AddressSpace(ctx, st.root);
    if (mm.satp !== st.satp) throw new Error(`address space state: satp 0x${(st.satp >>> 0).toString(16)} does not select root 0x${st.root.toString(16)}`);
    for (const [k, v] of st.pages) mm.pages.set(k, v);
    for (const [k, v] of st.tables) mm.tables.set(k, v);
    for (const [k, v] of st.kernelPages ?? []) mm.kernelPages.set(k, v);
    mm.regions.push(...st.regions);
    mm.brkStart = st.brkStart;
    mm.brk = st.brk;
    return mm;
  }

  export(): AddressSpaceState {
    return {
      root: this.root, satp: this.satp, pages: [...this.pages], tables: [...this.tables], regions: this.regions.map((r) => ({ ...r })),
      brkStart: this.brkStart, brk: this.brk, kernelPages: [...this.kernelPages],
    };
  }

  /**
   * Maps a fresh page at kernel address `va` (supervisor-only, read and execute) in this address
   * space alone: a per-process kernel page (technique 2's trampolines). `va` must lie outside the
   * shared kernel and device megapages. Returns its GPA, or -1 when guest RAM is exhausted.
   */
  mapKernelPage(va: number): number {
    const vpn = va >>> 12, l1 = vpn >>> 10;
    const have = this.kernelPages.get(vpn);
    if (have !== undefined) return have;
    const table = this.leafTable(l1);
    if (table < 0) return -1;
    const gpa = this.ctx.pool.alloc();
    if (gpa < 0) return -1;
    this.ctx.khv.write32(table + 4 * (vpn & 0x3ff), ((gpa / PAGE_SIZE) << 10) | PTE.R | PTE.X | PTE.V | PTE.A | PTE.D);
    this.kernelPages.set(vpn, gpa);
    return gpa;
  }

  region(va: number): Region | undefined {
    for (const r of this.regions) if (va >= r.start && va < r.end) return r;
    return undefined;
  }

  /** Where guest page `gpa` is in this address space: the user address it is mapped at, null for one of its page tables, undefined when it is not this space's. */
  locate(gpa: number): number | null | undefined {
    for (const [vpn, e] of this.pages) if (pageBase(e) === gpa) return vpn * PAGE_SIZE;
    if (this.root === gpa || [...this.tables.values()].includes(gpa) || [...this.kernelPages.values()].includes(gpa)) return null;
    return undefined;
  }

  /** The leaf table under root entry `l1`, allocated and linked when missing; -1 when guest RAM is exhausted. */
  private leafTable(l1: number): number {
    let table = this.tables.get(l1);
    if (table === undefined) {
      table = this.ctx.pool.alloc();
      if (table < 0) return -1;
      this.tables.set(l1, table);
      this.ctx.khv.write32(this.root + 4 * l1, ((table / PAGE_SIZE) << 10) | PTE.V);
    }
    return table;
  }

  /** Maps user page `va` with `perms`; returns the page's GPA, or -1 when guest RAM is exhausted. */
  map(va: number, perms: number): number {
    const khv = this.ctx.khv;
    const vpn = va >>> 12;
    const have = this.pages.get(vpn);
    if (have !== undefined) return pageBase(have);
    const table = this.leafTable(vpn >>> 10);
    if (table < 0) return -1;
    const gpa = this.ctx.pool.alloc();
    if (gpa < 0) return -1;
    khv.write32(table + 4 * (vpn & 0x3ff), ((gpa / PAGE_SIZE) << 10) | perms | PTE.U | PTE.V | PTE.A | PTE.D);
    this.pages.set(vpn, gpa + perms);
    return gpa;
  }

  /** Unmaps user pages in [start, end) and returns them to the pool. */
  unmapRange(start: number, end: number): void {
    let any = false;
    for (let va = start; va < end; va += PAGE_SIZE) {
      const vpn = va >>> 12;
      const e = this.pages.get(vpn);
      if (e === undefined) continue;
      this.ctx.khv.write32(this.tables.get(vpn >>> 10)! + 4 * (vpn & 0x3ff), 0);
      this.pages.delete(vpn);
      this.ctx.pool.release(pageBase(e));
      any = true;
    }
    if (any) this.ctx.flushTlbs();
  }

  /** Frees every page this address space holds, its page tables included. */
  teardown(): void {
    const pool = this.ctx.pool;
    for (const e of this.pages.values()) pool.release(pageBase(e));
    for (const t of this.tables.values()) pool.release(t);
    for (const k of this.kernelPages.values()) pool.release(k);
    pool.release(this.root);
    this.pages.clear();
    this.kernelPages.clear();
    this.tables.clear();
    this.ctx.flushTlbs();
  }

  /**
   * GPA of user byte `va` for an access needing `perm` (PROT bits; 0 = any mapped page), mapping
   * it on demand when a region allows it (as a page fault taken in copy_from_user would); -1 = EFAULT.
   */
  private userGpa(va: number, perm: number): number {
    if (va < 0 || va >= USER_END) return -1;
    const e = this.pages.get(va >>> 12);
    if (e !== undefined) return perm === 0 || (e & perm) ? pageBase(e) + (va & 0xfff) : -1;
    const r = this.region(va);
    if (!r || !(r.perms & perm)) return -1;
    const gpa = this.map(va & ~0xfff, r.perms);
    return gpa < 0 ? -1 : gpa + (va & 0xfff);
  }

  /**
   * Calls `fn(gpa, offset, n)` for each page-bounded piece of user memory [va, va + len) that
   * allows `perm`; stops at the first that does not. Returns the bytes covered.
   */
  userSpans(va: number, len: number, perm: number, fn: (gpa: number, offset: number, n: number) => void): number {
    for (let i = 0; i < len;) {
      const a = (va + i) >>> 0;
      const n = Math.min(len - i, PAGE_SIZE - (a & 0xfff));
      const gpa = this.userGpa(a, perm);
      if (gpa < 0) return i;
      fn(gpa, i, n);
      i += n;
    }
    return len;
  }

  /** Copies user memory out; returns null on EFAULT. Raises: GuestMemoryError (a memory error in the page read). */
  copyIn(va: number, len: number): Uint8Array | null {
    const out = new Uint8Array(len);
    const khv = this.ctx.khv;
    const done = this.userSpans(va, len, PROT.R, (gpa, i, n) => out.set(khv.readBytes(gpa, n), i));
    return done === len ? out : null;
  }

  /** Copies into user memory (needing write permission, or none with `anyPage`); returns the bytes copied before a fault. */
  copyOut(va: number, bytes: Uint8Array, anyPage = false): number {
    const khv = this.ctx.khv;
    return this.userSpans(va, bytes.length, anyPage ? 0 : PROT.W, (gpa, i, n) => khv.writeBytes(gpa, bytes.subarray(i, i + n)));
  }

  private heapRegion(): Region { return this.regions.find((r) => r.kind === 'heap')!; }

  /** brk(2): moves the break within [brkStart, mmap base); returns the (new) break. */
  setBrk(want: number): number {
    if (want < this.brkStart || want >= MMAP_BASE) return this.brk;
    const heap = this.heapRegion();
    const oldEnd = heap.end, newEnd = (want + 0xfff) & ~0xfff;
    if (newEnd < oldEnd) this.unmapRange(newEnd, oldEnd);
    heap.end = newEnd;
    this.brk = want;
    return this.brk;
  }

  /** mmap2 of anonymous memory: a free range of `len` bytes (or exactly `fixed`); returns its start or -ENOMEM. */
  mmap(len: number, perms: number, fixed: number | null): number {
    const size = (len + 0xfff) & ~0xfff;
    let start = fixed;
    if (start === null) {
      start = MMAP_BASE;
      const taken = this.regions.filter((r) => r.kind === 'mmap').sort((a, b) => a.start - b.start);
      for (const r of taken) { if (start + size <= r.start) break; start = Math.max(start, r.end); }
      if (start + size > STACK_TOP - STACK_SIZE) return -ERRNO.ENOMEM;
    } else {
      this.munmap(start, size);
    }
    this.regions.push({ start, end: start + size, perms, kind: 'mmap' });
    return start;
  }

  /** munmap: drops mmap regions (or parts of them) in [start, start+len). */
  munmap(start: number, len: number): void {
    const end = start + ((len + 0xfff) & ~0xfff);
    for (const r of [...this.regions]) {
      if (r.kind !== 'mmap' || r.end <= start || r.start >= end) continue;
      this.regions.splice(this.regions.indexOf(r), 1);
      if (r.start < start) this.regions.push({ ...r, end: start });
      if (r.end > end) this.regions.push({ ...r, start: end });
    }
    this.unmapRange(start, end);
  }
}
