/**
 * Physical memory of one machine: RAM at physical address 0 over an ArrayBuffer or a
 * SharedArrayBuffer (host DRAM is shared by a host's VM workers), plus MMIO device regions above
 * it, plus a per-frame poison table for uncorrectable memory errors.
 *
 * Endianness: RISC-V is little-endian; the typed-array views assume a little-endian host (x86-64
 * and AArch64 Linux), which `assertLittleEndianHost` checks at construction.
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** The page-aligned base of address `a` (guest-physical addresses exceed int32, so no `& ~0xfff`). */
export const pageBase = (a: number): number => a - (a % PAGE_SIZE);

/** A memory-mapped device. Offsets are relative to the region base; size is 1, 2 or 4. */
export interface MmioDevice {
  read(offset: number, size: number): number;
  write(offset: number, size: number, value: number): void;
}

export interface MmioRegion { base: number; size: number; device: MmioDevice }

function assertLittleEndianHost(): void {
  if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error('hvsim needs a little-endian host');
}

export class PhysMem {
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly i32: Int32Array;
  readonly size: number;
  /** Per-frame poison state (1 = uncorrectable error), or null when no frame was ever poisoned. */
  poison: Uint8Array | null = null;
  private regions: MmioRegion[] = [];

  /**
   * Preconditions: buffer length is a multiple of the page size.
   * `poison`, when given, is a (possibly shared) per-frame table that others may update.
   */
  constructor(readonly buffer: ArrayBuffer | SharedArrayBuffer, poison?: Uint8Array) {
    assertLittleEndianHost();
    if (buffer.byteLength % PAGE_SIZE !== 0) throw new Error('physical memory size must be a multiple of 4 KiB');
    this.u8 = new Uint8Array(buffer);
    this.u16 = new Uint16Array(buffer);
    this.i32 = new Int32Array(buffer);
    this.size = buffer.byteLength;
    if (poison) this.poison = poison;
  }

  static ofSize(bytes: number): PhysMem {
    return new PhysMem(new ArrayBuffer(bytes));
  }

  /** Maps a device. Raises: Error when it overlaps RAM or another region. */
  addRegion(base: number, size: number, device: MmioDevice): void {
    if (base < this.size) throw new Error(`MMIO region 0x${base.toString(16)} overlaps RAM`);
    for (const r of this.regions) {
      if (base < r.base + r.size && r.base < base + size) throw new Error('MMIO regions overlap');
    }
    this.regions.push({ base, size, device });
  }

  /** The device region holding `pa`, or undefined. */
  region(pa: number): MmioRegion | undefined {
    for (const r of this.regions) if (pa >= r.base && pa < r.base + r.size) return r;
    return undefined;
  }

  isRam(pa: number, size: number): boolean {
    return pa >= 0 && pa + size <= this.size;
  }

  /** True when the frame holding RAM address `pa` is poisoned. */
  isPoisoned(pa: number): boolean {
    return this.poison !== null && this.poison[Math.floor(pa / PAGE_SIZE)] !== 0;
  }

  /** Marks a frame poisoned (or clears it). Callers must flush TLBs that may cache the frame. */
  setPoison(frame: number, poisoned: boolean): void {
    if (!this.poison) this.poison = new Uint8Array(this.size / PAGE_SIZE);
    this.poison[frame] = poisoned ? 1 : 0;
  }

  // Little-endian RAM accessors; callers have checked bounds. Unaligned accesses go bytewise.
  read8(pa: number): number { return this.u8[pa]; }
  read16(pa: number): number { return (pa & 1) === 0 ? this.u16[pa >>> 1] : this.u8[pa] | (this.u8[pa + 1] << 8); }
  read32(pa: number): number {
    if ((pa & 3) === 0) return this.i32[pa >>> 2];
    const b = this.u8;
    return b[pa] | (b[pa + 1] << 8) | (b[pa + 2] << 16) | (b[pa + 3] << 24);
  }
  write8(pa: number, v: number): void { this.u8[pa] = v; }
  write16(pa: number, v: number): void {
    if ((pa & 1) === 0) this.u16[pa >>> 1] = v;
    else { this.u8[pa] = v; this.u8[pa + 1] = v >>> 8; }
  }
  write32(pa: number, v: number): void {
    if ((pa & 3) === 0) { this.i32[pa >>> 2] = v; return; }
    const b = this.u8;
    b[pa] = v; b[pa + 1] = v >>> 8; b[pa + 2] = v >>> 16; b[pa + 3] = v >>> 24;
  }
}
