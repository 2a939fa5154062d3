/**
 * A VM's G-stage (Sv32x4) page table, built by the KHV in host memory: a 16 KiB root and 4 KiB
 * leaf tables, all hypervisor frames of the VM's owner slot. Guest RAM pages are backed lazily:
 * `back` claims a host frame and maps it (the KHV calls it on a gstage-fault exit, and when guest
 * kernel code it runs natively touches an unbacked page).
 *
 * Invariant: `frameOf[gpn]` and the in-memory table agree; harts only ever see the table.
 *
 * Dirty-page log (live migration): while `dirty` is set, backed pages are write-protected in the
 * table; the first store to one faults to the KHV (a dirty-log exit), which logs the page and
 * makes it writable again. Pages backed while logging start dirty.
 */
import { PAGE_SIZE, PhysMem } from '../mmu/phys.js';
import { PTE } from '../mmu/mmu.js';
import { FrameState, HostMemory } from './host-memory.js';
import { RAM_BASE } from './platform.js';

const LEAF = PTE.V | PTE.R | PTE.W | PTE.X | PTE.U | PTE.A | PTE.D;
/** frameOf marker of a corrupted guest page. */
export const CORRUPTED = -2;

export class GStage {
  /** hgatp value: mode Sv32x4, VMID 0, root PPN. */
  readonly hgatp: number;
  private readonly root: number;
  /** Host frame backing guest RAM page i (GPA RAM_BASE + i * 4 KiB), -1 if unbacked, CORRUPTED if its frame was poisoned. */
  readonly frameOf: Int32Array;
  /** Guest page address of each backing frame (the reverse of frameOf). */
  readonly gpaOf = new Map<number, number>();
  /** Leaf PTE addresses (host-physical), by guest page index, to unmap corrupted pages. */
  private readonly leafPa = new Map<number, number>();
  backedPages = 0;

  /** Raises: OutOfHostMemory when the host cannot hold even the root table. */
  constructor(readonly host: HostMemory, readonly mem: PhysMem, readonly owner: number, readonly ramBytes: number) {
    this.root = host.allocAligned(owner, 4);
    this.hgatp = (0x80000000 | this.root) | 0;
    this.frameOf = new Int32Array(ramBytes / PAGE_SIZE).fill(-1);
  }

  /** True when `gpa` lies in guest RAM. */
  isRam(gpa: number): boolean {
    return gpa >= RAM_BASE && gpa < RAM_BASE + this.ramBytes;
  }

  /**
   * Backs the RAM page holding `gpa` with a zeroed host frame and maps it; returns the frame.
   * Precondition: isRam(gpa) and the page is not backed. Raises: OutOfHostMemory.
   */
  back(gpa: number): number {
    const gpn = Math.floor(gpa / PAGE_SIZE);
    const l1 = this.root * PAGE_SIZE + Math.floor(gpn / 1024) * 4;
    let pte1 = this.mem.read32(l1);
    if ((pte1 & PTE.V) === 0) {
      const table = this.host.alloc(this.owner, FrameState.Hypervisor);
      pte1 = (table << 10) | PTE.V;
      this.mem.write32(l1, pte1);
    }
    const frame = this.host.alloc(this.owner, FrameState.Guest);
    const leaf = (pte1 >>> 10) * PAGE_SIZE + (gpn % 1024) * 4;
    this.mem.write32(leaf, (frame << 10) | LEAF);
    const i = (gpa - RAM_BASE) >>> 12;
    this.frameOf[i] = frame;
    this.gpaOf.set(frame, RAM_BASE + i * PAGE_SIZE);
    this.leafPa.set(i, leaf);
    this.backedPages++;
    if (this.dirty !== null) this.dirty[i] = 1;
    return frame;
  }

  /**
   * Creates every leaf table guest RAM needs (otherwise made on first touch) and returns the root
   * table's entries for RAM as [root index, PTE] pairs. A secure protection domain's G-stage table
   * (domains.ts) installs the same entries, so both tables share the leaves: backing, corruption
   * and dirty logging apply to both at once. Raises: OutOfHostMemory.
   */
  ramRootEntries(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let gpn = RAM_BASE / PAGE_SIZE; gpn < (RAM_BASE + this.ramBytes) / PAGE_SIZE; gpn += 1024) {
      const l1 = this.root * PAGE_SIZE + Math.floor(gpn / 1024) * 4;
      let pte1 = this.mem.read32(l1);
      if ((pte1 & PTE.V) === 0) {
        pte1 = (this.host.alloc(this.owner, FrameState.Hypervisor) << 10) | PTE.V;
        this.mem.write32(l1, pte1);
      }
      out.push([Math.floor(gpn / 1024), pte1]);
    }
    return out;
  }

  /**
   * The guest page holding `gpa` is corrupted (its frame has an uncorrectable error): unmap it so
   * every later access exits to the KHV, and never back it again. The frame stays owned (and
   * poisoned) until the VM releases its memory.
   */
  corrupt(gpa: number): void {
    const i = (gpa - RAM_BASE) >>> 12;
    const leaf = this.leafPa.get(i);
    if (leaf !== undefined) this.mem.write32(leaf, 0);
    if (this.frameOf[i] >= 0) this.backedPages--;
    this.frameOf[i] = CORRUPTED;
  }

  isCorrupted(gpa: number): boolean {
    return this.frameOf[(gpa - RAM_BASE) >>> 12] === CORRUPTED;
  }

  /** Host-physical address of RAM address `gpa`, or -1 when its page is not backed (or corrupted). */
  hpa(gpa: number): number {
    const f = this.frameOf[(gpa - RAM_BASE) >>> 12];
    return f < 0 ? -1 : f * PAGE_SIZE + (gpa & 0xfff);
  }

  /** One byte per guest RAM page while the dirty-page log is on (1 = written since the last `takeDirty`), else null. */
  dirty: Uint8Array | null = null;

  /** Starts the dirty-page log: every backed page is write-protected. Callers flush every vCPU's TLB. */
  startDirtyLog(): void {
    this.dirty = new Uint8Array(this.frameOf.length);
    this.setWritable(false);
  }

  /** Stops the log and makes every backed page writable again. */
  stopDirtyLog(): void {
    this.dirty = null;
    this.setWritable(true);
  }

  private setWritable(on: boolean): void {
    for (const i of this.leafPa.keys()) this.writable(i, on);
  }

  /** Sets or clears W in the leaf PTE of backed guest page `i`; returns whether it was writable. */
  private writable(i: number, on: boolean): boolean {
    const leaf = this.leafPa.get(i);
    if (leaf === undefined || this.frameOf[i] < 0) return false;
    const pte = this.mem.read32(leaf);
    this.mem.write32(leaf, on ? pte | PTE.W : pte & ~PTE.W);
    return (pte & PTE.W) !== 0;
  }

  /**
   * A store faulted on guest page index `i`: when the log write-protected it, logs it dirty, makes
   * it writable and returns true (the caller flushes the hart's TLB); otherwise returns false.
   */
  logStore(i: number): boolean {
    if (this.dirty === null || this.frameOf[i] < 0 || this.writable(i, true)) return false;
    this.dirty[i] = 1;
    return true;
  }

  /** Logs the page backed by host frame `frame` dirty (a write by native hypervisor or guest-kernel code). */
  markFrameDirty(frame: number): void {
    if (this.dirty === null) return;
    const gpa = this.gpaOf.get(frame);
    if (gpa !== undefined) this.dirty[(gpa - RAM_BASE) >>> 12] = 1;
  }

  /** Page indices logged dirty since the last call, ascending; they are write-protected again. Callers flush every vCPU's TLB. */
  takeDirty(): number[] {
    const d = this.dirty;
    if (d === null) return [];
    const out: number[] = [];
    for (let i = 0; i < d.length; i++) {
      if (d[i] === 0) continue;
      d[i] = 0;
      out.push(i);
      this.writable(i, false);
    }
    return out;
  }

  /** Guest RAM pages that are backed, with their host frames, in GPA order. */
  *backed(): Generator<{ gpa: number; frame: number }> {
    for (let i = 0; i < this.frameOf.length; i++) if (this.frameOf[i] >= 0) yield { gpa: RAM_BASE + i * PAGE_SIZE, frame: this.frameOf[i] };
  }
}
