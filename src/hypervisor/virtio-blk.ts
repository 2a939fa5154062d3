/**
 * A virtio block device in the UHV (virtio 1.2: section 4.2 virtio-mmio registers, 2.7 split
 * virtqueues, 5.2 block device), over one Disk. One request queue of up to QUEUE_MAX entries in
 * guest RAM; a write to QueueNotify processes every available request before the notifying store
 * retires (so a driver may poll the used ring's idx), then sets InterruptStatus bit 0. No
 * interrupt is delivered (no interrupt controller is modelled): drivers poll.
 *
 * Requests: header {type u32, reserved u32, sector u64} (device-readable), data buffers, status
 * u8 (device-writable). Types: IN (0) read, OUT (1) write, FLUSH (4), GET_ID (8); others
 * UNSUPP. A request past the disk's end is IOERR. A malformed descriptor chain (a loop, a buffer
 * outside guest RAM, a wrong direction) sets DEVICE_NEEDS_RESET and stops the queue, as the spec
 * allows.
 */
import { Disk, SECTOR } from './disk.js';

export const VIRTIO_MAGIC = 0x74726976; // "virt"
export const VIRTIO_VENDOR = 0x4d535648; // "HVSM"
export const VIRTIO_ID_BLOCK = 2;
export const QUEUE_MAX = 256;

/** virtio-mmio register offsets (virtio 1.2 section 4.2.2). */
export const VIRTIO_MMIO = {
  MagicValue: 0x000, Version: 0x004, DeviceID: 0x008, VendorID: 0x00c,
  DeviceFeatures: 0x010, DeviceFeaturesSel: 0x014, DriverFeatures: 0x020, DriverFeaturesSel: 0x024,
  QueueSel: 0x030, QueueNumMax: 0x034, QueueNum: 0x038, QueueReady: 0x044, QueueNotify: 0x050,
  InterruptStatus: 0x060, InterruptACK: 0x064, Status: 0x070,
  QueueDescLow: 0x080, QueueDescHigh: 0x084, QueueDriverLow: 0x090, QueueDriverHigh: 0x094,
  QueueDeviceLow: 0x0a0, QueueDeviceHigh: 0x0a4, ConfigGeneration: 0x0fc, Config: 0x100,
} as const;

export const BLK_T = { In: 0, Out: 1, Flush: 4, GetId: 8 } as const;
export const BLK_S = { Ok: 0, IoErr: 1, Unsupp: 2 } as const;
export const VIRTQ_DESC_F = { Next: 1, Write: 2 } as const;
const STATUS_NEEDS_RESET = 64;
/** Feature bits offered: VIRTIO_BLK_F_FLUSH (9); VIRTIO_F_VERSION_1 (32). */
const FEATURES = [1 << 9, 1 << 0];

/** Guest RAM as the device sees it (the UHV's mapping). */
export interface DeviceRam {
  read32(gpa: number): number;
  write32(gpa: number, v: number): void;
  readBytes(gpa: number, len: number): Uint8Array;
  writeBytes(gpa: number, bytes: Uint8Array): void;
  /** Whether [gpa, gpa + len) is guest RAM. */
  isRamRange(gpa: number, len: number): boolean;
}

export interface BlockCounters { requests: number; bytesRead: number; bytesWritten: number; flushes: number; errors: number }

/** The device's register state (migrated with the VM). */
export interface VirtioBlkState {
  status: number; featuresSel: number; driverFeaturesSel: number; driverFeatures: [number, number];
  queueSel: number; num: number; ready: number; desc: number; avail: number; used: number;
  lastAvail: number; interrupt: number; counters: BlockCounters;
}

class Malformed extends Error {}

export class VirtioBlk {
  private s: VirtioBlkState = VirtioBlk.reset();
  /** Device-writable bytes of the current request (the used ring's len). */
  private written = 0;

  constructor(private readonly ram: DeviceRam, readonly disk: Disk, private readonly id: string) {}

  private static reset(counters: BlockCounters = { requests: 0, bytesRead: 0, bytesWritten: 0, flushes: 0, errors: 0 }): VirtioBlkState {
    return { status: 0, featuresSel: 0, driverFeaturesSel: 0, driverFeatures: [0, 0], queueSel: 0, num: 0, ready: 0, desc: 0, avail: 0, used: 0, lastAvail: 0, interrupt: 0, counters };
  }

  get counters(): BlockCounters { return this.s.counters; }
  exportState(): VirtioBlkState { return structuredClone(this.s); }
  importState(st: VirtioBlkState): void { this.s = structuredClone(st); }

  /**
   * One register access (`offset` into this device's window, 32-bit registers; the config space
   * also byte-wise). Returns the value of a read. Raises: RangeError for an access to no register
   * (the UHV turns it into a VM fault).
   */
  access(offset: number, size: number, write: boolean, value: number): number {
    const R = VIRTIO_MMIO, s = this.s;
    if (offset >= R.Config && offset < R.Config + 8 && !write) {
      // capacity (u64, in 512-byte sectors), little-endian, read in any size.
      const cap = this.disk.sizeBytes / SECTOR;
      const bytes = [cap >>> 0, Math.floor(cap / 2 ** 32)];
      let v = 0;
      for (let i = size - 1; i >= 0; i--) {
        const b = offset - R.Config + i;
        v = (v << 8) | ((bytes[b >> 2] >>> ((b & 3) * 8)) & 0xff);
      }
      return v;
    }
    if (size !== 4 || (offset & 3) !== 0) throw new RangeError(`virtio-mmio register access of ${size} bytes at 0x${offset.toString(16)}`);
    if (!write) {
      switch (offset) {
        case R.MagicValue: return VIRTIO_MAGIC;
        case R.Version: return 2;
        case R.DeviceID: return VIRTIO_ID_BLOCK;
        case R.VendorID: return VIRTIO_VENDOR;
        case R.DeviceFeatures: return FEATURES[s.featuresSel] ?? 0;
        case R.QueueNumMax: return s.queueSel === 0 ? QUEUE_MAX : 0;
        case R.QueueReady: return s.queueSel === 0 ? s.ready : 0;
        case R.InterruptStatus: return s.interrupt;
        case R.Status: return s.status;
        case R.ConfigGeneration: return 0;
        default: if (offset >= R.Config && offset < R.Config + 0x100) return 0;
      }
      throw new RangeError(`virtio-mmio register 0x${offset.toString(16)} is not readable`);
    }
    const v = value >>> 0;
    switch (offset) {
      case R.DeviceFeaturesSel: s.featuresSel = v; return 0;
      case R.DriverFeaturesSel: s.driverFeaturesSel = v; return 0;
      case R.DriverFeatures: if (s.driverFeaturesSel < 2) s.driverFeatures[s.driverFeaturesSel] = v; return 0;
      case R.QueueSel: s.queueSel = v; return 0;
      case R.QueueNum: if (s.queueSel === 0 && v > 0 && v <= QUEUE_MAX && (v & (v - 1)) === 0) s.num = v; return 0;
      case R.QueueReady: if (s.queueSel === 0) s.ready = v & 1; return 0;
      case R.QueueNotify: if (v === 0) this.notify(); return 0;
      case R.InterruptACK: s.interrupt &= ~v; return 0;
      case R.Status: if (v === 0) this.s = VirtioBlk.reset(s.counters); else s.status = v; return 0;
      case R.QueueDescLow: if (s.queueSel === 0) s.desc = v; return 0;
      case R.QueueDriverLow: if (s.queueSel === 0) s.avail = v; return 0;
      case R.QueueDeviceLow: if (s.queueSel === 0) s.used = v; return 0;
      // 32-bit guest physical addresses: the high halves must stay 0.
      case R.QueueDescHigh: case R.QueueDriverHigh: case R.QueueDeviceHigh: if (v !== 0) s.status |= STATUS_NEEDS_RESET; return 0;
    }
    throw new RangeError(`virtio-mmio register 0x${offset.toString(16)} is not writable`);
  }

  /** Processes every request the driver made available since the last notify. */
  private notify(): void {
    const s = this.s;
    if (s.ready !== 1 || s.num === 0 || (s.status & STATUS_NEEDS_RESET) !== 0) return;
    try {
      const availIdx = this.read16(s.avail + 2);
      let usedIdx = this.read16(s.used + 2);
      let done = 0;
      while (s.lastAvail !== availIdx) {
        if (++done > s.num) throw new Malformed('more requests available than queue entries');
        const head = this.read16(s.avail + 4 + 2 * (s.lastAvail % s.num));
        this.request(head);
        const slot = s.used + 4 + 8 * (usedIdx % s.num);
        this.need(slot, 8);
        this.ram.write32(slot, head);
        this.ram.write32(slot + 4, this.written);
        usedIdx = (usedIdx + 1) & 0xffff;
        this.write16(s.used + 2, usedIdx);
        s.lastAvail = (s.lastAvail + 1) & 0xffff;
      }
      s.interrupt |= 1;
    } catch (e) {
      if (!(e instanceof Malformed)) throw e;
      s.counters.errors++;
      s.status |= STATUS_NEEDS_RESET;
    }
  }

  /** One request: the descriptor chain starting at `head`. */
  private request(head: number): void {
    const s = this.s, c = s.counters;
    const chain: Array<{ addr: number; len: number; write: boolean }> = [];
    for (let i = head, n = 0; ; n++) {
      if (i >= s.num || n >= s.num) throw new Malformed(`descriptor chain from ${head} is broken`);
      const d = s.desc + 16 * i;
      this.need(d, 16);
      const addr = this.ram.read32(d) >>> 0, hi = this.ram.read32(d + 4), len = this.ram.read32(d + 8) >>> 0, fw = this.ram.read32(d + 12);
      const flags = fw & 0xffff;
      if (hi !== 0) throw new Malformed('descriptor address above 4 GiB');
      this.need(addr, len);
      chain.push({ addr, len, write: (flags & VIRTQ_DESC_F.Write) !== 0 });
      if ((flags & VIRTQ_DESC_F.Next) === 0) break;
      i = fw >>> 16;
    }
    const hdr = chain[0], st = chain[chain.length - 1];
    if (chain.length < 2 || hdr.write || hdr.len < 16 || !st.write || st.len < 1) throw new Malformed('a block request needs a readable 16-byte header and a writable status byte');
    const data = chain.slice(1, -1);
    const type = this.ram.read32(hdr.addr) >>> 0;
    const sector = (this.ram.read32(hdr.addr + 8) >>> 0) + (this.ram.read32(hdr.addr + 12) >>> 0) * 2 ** 32;
    c.requests++;
    this.written = 0;
    let status: number = BLK_S.Ok;
    const total = data.reduce((n, b) => n + b.len, 0);
    if (type === BLK_T.In || type === BLK_T.Out) {
      const write = type === BLK_T.Out;
      if (data.some((b) => b.write === write)) throw new Malformed(`${write ? 'write' : 'read'} request with a buffer of the wrong direction`);
      if (total % SECTOR !== 0 || sector * SECTOR + total > this.disk.sizeBytes) status = BLK_S.IoErr;
      else {
        let at = sector * SECTOR;
        for (const b of data) {
          if (write) this.disk.write(at, this.ram.readBytes(b.addr, b.len));
          else {
            const buf = new Uint8Array(b.len);
            this.disk.read(at, buf);
            this.ram.writeBytes(b.addr, buf);
            this.written += b.len;
          }
          at += b.len;
        }
        if (write) c.bytesWritten += total; else c.bytesRead += total;
      }
    } else if (type === BLK_T.Flush) {
      c.flushes++;
    } else if (type === BLK_T.GetId && data.length === 1 && data[0].write) {
      const id = new Uint8Array(Math.min(20, data[0].len));
      id.set(new TextEncoder().encode(this.id).subarray(0, id.length));
      this.ram.writeBytes(data[0].addr, id);
      this.written += id.length;
    } else {
      status = BLK_S.Unsupp;
    }
    if (status !== BLK_S.Ok) c.errors++;
    this.ram.writeBytes(st.addr, Uint8Array.of(status));
    this.written += 1;
  }

  private need(gpa: number, len: number): void {
    if (!this.ram.isRamRange(gpa, len)) throw new Malformed(`[0x${gpa.toString(16)}, +${len}) is not guest RAM`);
  }

  private read16(gpa: number): number {
    this.need(gpa, 2);
    return (this.ram.read32((gpa & ~3) >>> 0) >>> ((gpa & 2) * 8)) & 0xffff;
  }

  private write16(gpa: number, v: number): void {
    this.need(gpa, 2);
    const at = (gpa & ~3) >>> 0, sh = (gpa & 2) * 8;
    this.ram.write32(at, (this.ram.read32(at) & ~(0xffff << sh)) | ((v & 0xffff) << sh));
  }
}
