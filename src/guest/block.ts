/**
 * The guest kernel's virtio-blk driver (virtio 1.2: 4.2 virtio-mmio, 2.7 split virtqueues, 5.2
 * block device), behind the block file kind of the VFS (`/dev/vda`..., vfs.ts). Everything the
 * device sees is real: the descriptor table and the available and used rings are guest pages,
 * requests are descriptor chains (a 16-byte header, up to BOUNCE_PAGES data pages, a status
 * byte), and every register access is an MMIO load or store made by the kernel text, so each is
 * a VM exit the hypervisor's maps route (technique 5).
 *
 * The kernel text makes the accesses: a handler fills the per-CPU IO list (PERCPU.IO_LIST), sets
 * PENDING's bit 31 and CONTINUE, and returns; the entry stub makes the accesses in order (a read
 * stores its value back into the list) and dispatches the same syscall again, with the same
 * arguments. The handler then sees the results and goes on. So one syscall is a short state
 * machine whose state lives in guest kernel memory (K.BLOCK), which a live migration copies as it
 * copies the rest of RAM: a VM migrated between the notify and the completion goes on where it was.
 *
 *   setup (at the first open of the disk): three rounds of register accesses: identify (magic,
 *     version, device id), reset, ACKNOWLEDGE | DRIVER, read the features; accept
 *     VIRTIO_F_VERSION_1 (and VIRTIO_BLK_F_FLUSH when offered), FEATURES_OK, read it back, the
 *     queue size; the queue's addresses, QueueReady, DRIVER_OK, the capacity.
 *   a read or write: per step of at most BOUNCE bytes, one request (a write that does not start
 *     and end on sector boundaries first reads the sectors it covers: read-modify-write), made
 *     available in the avail ring and announced by one QueueNotify store. The device model
 *     completes requests before the notifying store retires; the driver polls the used ring
 *     (there is no interrupt controller), reads the status byte and copies the data.
 *   fsync: one FLUSH request (when VIRTIO_BLK_F_FLUSH was negotiated; else nothing to do).
 *
 * Each vCPU owns descriptors [DESCS_PER_CPU * cpu, +DESCS_PER_CPU) of every disk's queue and
 * its own request pages, so vCPUs never share a request; the used ring is consumed by whoever
 * polls it, marking each completed request's vCPU. A second vCPU that opens a disk while
 * another sets it up spins (re-dispatches with one register read) until the setup is done.
 */
import type { Khv } from '../hypervisor/khv.js';
import { BLOCK_OFFSET, BLOCK_STRIDE } from '../hypervisor/platform.js';
import { BLK_S, BLK_T, VIRTIO_MMIO as R, VIRTQ_DESC_F } from '../hypervisor/virtio-blk.js';
import { PAGE_SIZE } from '../mmu/phys.js';
import { ERRNO } from './errno.js';
import { DEVICE_VA, IO_MAX, IO_PENDING, K, MAX_VCPUS, PERCPU, kgpa } from './layout.js';
import type { PagePool } from './page-pool.js';
import type { SyscallCall } from './syscall-abi.js';

export const SECTOR = 512;
/** Queue entries the driver uses (the device offers 256). */
export const QUEUE_SIZE = 256;
/** Data pages of one request: a request moves at most BOUNCE bytes. */
export const BOUNCE_PAGES = 8;
export const BOUNCE = BOUNCE_PAGES * PAGE_SIZE;
/** Descriptors per vCPU: header, data pages, status. */
export const DESCS_PER_CPU = BOUNCE_PAGES + 2;

/** Device status bits (virtio 1.2 section 2.1). */
const STATUS = { Acknowledge: 1, Driver: 2, DriverOk: 4, FeaturesOk: 8 } as const;
const F_FLUSH = 1 << 9;
const F_VERSION_1_HI = 1;

/** Per-disk words at K.BLOCK + 64 * disk. */
const D = { STATE: 0, OWNER: 4, SECTORS: 8, DESC: 12, AVAIL: 16, USED: 20, LAST_USED: 24, FLUSH: 28 } as const;
const DiskState = { Unprobed: 0, SettingUp: 1, Ready: 2, Failed: 3 } as const;
/** Per-vCPU words at K.BLOCK + CPU_AREA + 32 * cpu. */
const CPU_AREA = 0x200;
const C = { PID: 0, PHASE: 4, DONE: 8, COMPLETE: 12, DISK: 16 } as const;
/** Per-vCPU request pages at K.BLOCK + PAGE_AREA + 64 * cpu: the header/status page, then BOUNCE_PAGES data pages (0: not allocated yet). */
const PAGE_AREA = 0x400;
/** What a vCPU's call is waiting for. */
const Phase = { Idle: 0, Setup1: 1, Setup2: 2, Setup3: 3, Read: 4, Fill: 5, Write: 6, Flush: 7, Spin: 8 } as const;

/** The handler asked the stub for register accesses and to dispatch the call again: return the saved a0. */
export const AGAIN = Symbol('again');
export type Result = number | typeof AGAIN;

/** User memory of the calling process as segments [va, len, va, len, ...]. */
export type Segments = readonly number[];

/** Counters of the driver (guest side). */
export interface BlockDriverStats { setups: number; requests: number; notifies: number; /** Dispatches of an open that waited for another vCPU's setup. */ spins: number }

export class BlockDriver {
  readonly stats: BlockDriverStats = { setups: 0, requests: 0, notifies: 0, spins: 0 };

  /**
   * `disks`: how many virtio-mmio block devices the platform has (the device tree's nodes),
   * disk n's registers at BLOCK_OFFSET + n * BLOCK_STRIDE. `currentPid(cpu)`: who runs on a vCPU.
   */
  constructor(private readonly khv: Khv, private readonly pool: PagePool, readonly disks: number,
    private readonly currentPid: (cpu: number) => number) {}

  // *** guest memory of the driver ***

  private dw(d: number, off: number): number { return this.khv.read32(kgpa(K.BLOCK + 64 * d + off)) >>> 0; }
  private setDw(d: number, off: number, v: number): void { this.khv.write32(kgpa(K.BLOCK + 64 * d + off), v); }
  private cw(c: number, off: number): number { return this.khv.read32(kgpa(K.BLOCK + CPU_AREA + 32 * c + off)) >>> 0; }
  private setCw(c: number, off: number, v: number): void { this.khv.write32(kgpa(K.BLOCK + CPU_AREA + 32 * c + off), v); }
  private page(c: number, i: number): number { return this.khv.read32(kgpa(K.BLOCK + PAGE_AREA + 64 * c + 4 * i)) >>> 0; }
  private read16(gpa: number): number { return (this.khv.read32(gpa & ~3) >>> ((gpa & 2) * 8)) & 0xffff; }
  private write16(gpa: number, v: number): void {
    const at = gpa & ~3, sh = (gpa & 2) * 8;
    this.khv.write32(at, (this.khv.read32(at) & ~(0xffff << sh)) | ((v & 0xffff) << sh));
  }

  /** The disk's size in bytes (0 before its setup). */
  sizeBytes(d: number): number { return this.dw(d, D.SECTORS) * SECTOR; }

  /** Whether `d` is a disk of this platform. */
  exists(d: number): boolean { return d >= 0 && d < this.disks; }

  // *** the per-CPU IO list the stub runs ***

  private regVa(d: number, reg: number): number { return (DEVICE_VA + BLOCK_OFFSET + d * BLOCK_STRIDE + reg) >>> 0; }

  /** Asks the stub for these register accesses ([reg, value] writes, [reg] reads) on disk d, then to dispatch the call again. */
  private ask(call: SyscallCall, d: number, ops: ReadonlyArray<readonly [number, number?]>): typeof AGAIN {
    const f = call.cpu.frame;
    if (ops.length === 0 || ops.length > IO_MAX) throw new RangeError(`IO list of ${ops.length} accesses`);
    ops.forEach(([reg, value], i) => {
      f[(PERCPU.IO_LIST >> 2) + 2 * i] = this.regVa(d, reg) | (value === undefined ? 1 : 0);
      f[(PERCPU.IO_LIST >> 2) + 2 * i + 1] = value ?? 0;
    });
    f[PERCPU.IO_COUNT >> 2] = ops.length;
    f[PERCPU.PENDING >> 2] |= IO_PENDING;
    f[PERCPU.CONTINUE >> 2] = 1;
    call.p.restart = true; // the dispatch after the accesses is the same call, not a second one
    return AGAIN;
  }

  /** The value the stub read for entry i of the IO list. */
  private got(call: SyscallCall, i: number): number { return call.cpu.frame[(PERCPU.IO_LIST >> 2) + 2 * i + 1] >>> 0; }

  /** Whether this call of the process on this vCPU is one the driver asked to dispatch again (rather than a fresh call). */
  private continuing(call: SyscallCall, ...phases: number[]): boolean {
    const c = call.cpu.vcpu.id, ph = this.cw(c, C.PHASE);
    return ph !== Phase.Idle && this.cw(c, C.PID) === call.p.pid && (phases.length === 0 || phases.includes(ph));
  }

  private phase(call: SyscallCall, phase: number, d: number): void {
    const c = call.cpu.vcpu.id;
    this.setCw(c, C.PID, call.p.pid);
    this.setCw(c, C.PHASE, phase);
    this.setCw(c, C.DISK, d);
  }

  private idle(call: SyscallCall): void { this.setCw(call.cpu.vcpu.id, C.PHASE, Phase.Idle); }

  // *** setup (openat) ***

  /**
   * Sets disk `d` up if it is not yet (openat of its path): 0 when it is ready, AGAIN while the
   * register rounds run, -ENXIO when the device is not a usable virtio-blk device, -ENOMEM.
   */
  open(call: SyscallCall, d: number): Result {
    const c = call.cpu.vcpu.id;
    const state = this.dw(d, D.STATE);
    if (state === DiskState.Ready) { if (this.continuing(call)) this.idle(call); return 0; }
    if (state === DiskState.Failed) { this.idle(call); return -ERRNO.ENXIO; }
    const mine = this.continuing(call) && this.cw(c, C.DISK) === d;
    if (state === DiskState.SettingUp && !(mine && this.dw(d, D.OWNER) === c + 1)) {
      // Another vCPU is setting it up: spin, unless that vCPU's caller is gone (then take over).
      const o = this.dw(d, D.OWNER) - 1;
      if (o >= 0 && o < MAX_VCPUS && this.currentPid(o) === this.cw(o, C.PID) && this.cw(o, C.PHASE) >= Phase.Setup1 && this.cw(o, C.PHASE) <= Phase.Setup3) {
        this.phase(call, Phase.Spin, d);
        this.stats.spins++;
        return this.ask(call, d, [[R.MagicValue]]);
      }
    }
    const phase = mine && state === DiskState.SettingUp ? this.cw(c, C.PHASE) : Phase.Idle;
    switch (phase) {
      case Phase.Setup1: {
        const [magic, version, id, , featuresHi] = [0, 1, 2, 7, 9].map((i) => this.got(call, i));
        const featuresLo = this.got(call, 7);
        if (magic !== 0x74726976 || version !== 2 || id !== 2 || (featuresHi & F_VERSION_1_HI) === 0) return this.fail(call, d);
        for (const q of [D.DESC, D.AVAIL, D.USED]) {
          if (this.dw(d, q) !== 0) continue;
          const g = this.pool.alloc();
          if (g < 0) { this.setDw(d, D.STATE, DiskState.Unprobed); this.idle(call); return -ERRNO.ENOMEM; }
          this.setDw(d, q, g);
        }
        const flush = featuresLo & F_FLUSH;
        this.setDw(d, D.FLUSH, flush ? 1 : 0);
        this.phase(call, Phase.Setup2, d);
        return this.ask(call, d, [
          [R.DriverFeaturesSel, 0], [R.DriverFeatures, flush], [R.DriverFeaturesSel, 1], [R.DriverFeatures, F_VERSION_1_HI],
          [R.Status, STATUS.Acknowledge | STATUS.Driver | STATUS.FeaturesOk], [R.Status], [R.QueueSel, 0], [R.QueueNumMax],
        ]);
      }
      case Phase.Setup2: {
        if ((this.got(call, 5) & STATUS.FeaturesOk) === 0 || this.got(call, 7) < QUEUE_SIZE) return this.fail(call, d);
        this.khv.fill(this.dw(d, D.DESC), PAGE_SIZE, 0);
        this.khv.fill(this.dw(d, D.AVAIL), PAGE_SIZE, 0);
        this.khv.fill(this.dw(d, D.USED), PAGE_SIZE, 0);
        this.setDw(d, D.LAST_USED, 0);
        this.phase(call, Phase.Setup3, d);
        return this.ask(call, d, [
          [R.QueueNum, QUEUE_SIZE], [R.QueueDescLow, this.dw(d, D.DESC)], [R.QueueDescHigh, 0],
          [R.QueueDriverLow, this.dw(d, D.AVAIL)], [R.QueueDriverHigh, 0], [R.QueueDeviceLow, this.dw(d, D.USED)], [R.QueueDeviceHigh, 0],
          [R.QueueReady, 1], [R.Status, STATUS.Acknowledge | STATUS.Driver | STATUS.FeaturesOk | STATUS.DriverOk],
          [R.Config], [R.Config + 4],
        ]);
      }
      case Phase.Setup3: {
        // Capacity in sectors (u64); disks are at most 1 GiB, so the high word is 0.
        if (this.got(call, 10) !== 0) return this.fail(call, d);
        this.setDw(d, D.SECTORS, this.got(call, 9));
        this.setDw(d, D.STATE, DiskState.Ready);
        this.stats.setups++;
        this.idle(call);
        return 0;
      }
      default: {
        this.setDw(d, D.STATE, DiskState.SettingUp);
        this.setDw(d, D.OWNER, c + 1);
        this.phase(call, Phase.Setup1, d);
        return this.ask(call, d, [
          [R.MagicValue], [R.Version], [R.DeviceID], [R.Status, 0], [R.Status, STATUS.Acknowledge],
          [R.Status, STATUS.Acknowledge | STATUS.Driver], [R.DeviceFeaturesSel, 0], [R.DeviceFeatures],
          [R.DeviceFeaturesSel, 1], [R.DeviceFeatures],
        ]);
      }
    }
  }

  private fail(call: SyscallCall, d: number): number {
    this.setDw(d, D.STATE, DiskState.Failed);
    this.idle(call);
    return -ERRNO.ENXIO;
  }

  // *** requests ***

  /** The vCPU's request pages, allocated on its first request. Returns false when guest RAM is exhausted. */
  private pages(c: number): boolean {
    for (let i = 0; i <= BOUNCE_PAGES; i++) {
      if (this.page(c, i) !== 0) continue;
      const g = this.pool.alloc();
      if (g < 0) return false;
      this.khv.write32(kgpa(K.BLOCK + PAGE_AREA + 64 * c + 4 * i), g);
    }
    return true;
  }

  /** Makes request `type` for `bytes` bytes at `sector` available on disk d's queue and asks the stub to notify. */
  private submit(call: SyscallCall, d: number, type: number, sector: number, bytes: number, phase: number): typeof AGAIN {
    const c = call.cpu.vcpu.id, khv = this.khv;
    this.reap(d);
    const hdr = this.page(c, 0);
    khv.write32(hdr, type);
    khv.write32(hdr + 4, 0);
    khv.write32(hdr + 8, sector);
    khv.write32(hdr + 12, 0);
    khv.writeBytes(hdr + 16, Uint8Array.of(0xff)); // status: the device overwrites it
    const head = DESCS_PER_CPU * c, status = head + DESCS_PER_CPU - 1, table = this.dw(d, D.DESC);
    const desc = (i: number, addr: number, len: number, flags: number, next: number): void => {
      const at = table + 16 * i;
      khv.write32(at, addr);
      khv.write32(at + 4, 0);
      khv.write32(at + 8, len);
      khv.write32(at + 12, (flags & 0xffff) | (next << 16));
    };
    const n = Math.ceil(bytes / PAGE_SIZE);
    desc(head, hdr, 16, VIRTQ_DESC_F.Next, n > 0 ? head + 1 : status);
    for (let i = 0; i < n; i++) {
      const len = Math.min(PAGE_SIZE, bytes - i * PAGE_SIZE);
      desc(head + 1 + i, this.page(c, 1 + i), len, VIRTQ_DESC_F.Next | (type === BLK_T.In ? VIRTQ_DESC_F.Write : 0), i + 1 < n ? head + 2 + i : status);
    }
    desc(status, hdr + 16, 1, VIRTQ_DESC_F.Write, 0);
    const avail = this.dw(d, D.AVAIL), idx = this.read16(avail + 2);
    this.write16(avail + 4 + 2 * (idx % QUEUE_SIZE), head);
    this.write16(avail + 2, idx + 1);
    this.setCw(c, C.COMPLETE, 0);
    this.phase(call, phase, d);
    this.stats.requests++;
    this.stats.notifies++;
    return this.ask(call, d, [[R.QueueNotify, 0]]);
  }

  /** Consumes disk d's used ring: marks the vCPU of each completed request. */
  private reap(d: number): void {
    const used = this.dw(d, D.USED), idx = this.read16(used + 2);
    let last = this.dw(d, D.LAST_USED);
    while (last !== idx) {
      const id = this.khv.read32(used + 4 + 8 * (last % QUEUE_SIZE)) >>> 0;
      const c = Math.floor(id / DESCS_PER_CPU);
      if (c < MAX_VCPUS) this.setCw(c, C.COMPLETE, 1);
      last = (last + 1) & 0xffff;
    }
    this.setDw(d, D.LAST_USED, last);
  }

  /** After the notify: whether this vCPU's request completed with status OK (else it is an I/O error). */
  private completed(call: SyscallCall, d: number): boolean {
    const c = call.cpu.vcpu.id;
    this.reap(d);
    return this.cw(c, C.COMPLETE) === 1 && this.khv.readBytes(this.page(c, 0) + 16, 1)[0] === BLK_S.Ok;
  }

  /** Copies between the vCPU's request pages (from byte `at`) and `bytes`. */
  private bounce(c: number, at: number, bytes: Uint8Array, toPages: boolean): void {
    for (let i = 0; i < bytes.length;) {
      const o = at + i, pg = Math.floor(o / PAGE_SIZE), po = o % PAGE_SIZE, n = Math.min(bytes.length - i, PAGE_SIZE - po);
      const g = this.page(c, 1 + pg) + po;
      if (toPages) this.khv.writeBytes(g, bytes.subarray(i, i + n));
      else bytes.set(this.khv.readBytes(g, n), i);
      i += n;
    }
  }

  /**
   * read/write (readv/writev, pread64/pwrite64) of `segs` at byte `pos` of disk d: as Linux's
   * block device file: a read at or past the end returns 0 and stops at the end; a write at or
   * past the end is -ENOSPC and stops at the end; any offset and length (a partial sector is
   * read, changed and written back). Returns the bytes moved (the caller advances the position),
   * a negative errno (-EIO for a failed request, -EFAULT when nothing could be copied), or AGAIN.
   */
  io(call: SyscallCall, d: number, reading: boolean, segs: Segments, pos: number): Result {
    const c = call.cpu.vcpu.id;
    let total = 0;
    for (let s = 1; s < segs.length; s += 2) total += segs[s];
    const size = this.sizeBytes(d);
    const again = this.continuing(call, Phase.Read, Phase.Fill, Phase.Write) && this.cw(c, C.DISK) === d;
    let done = again ? this.cw(c, C.DONE) : 0;
    if (!again) {
      if (total === 0) return 0;
      if (pos >= size) return reading ? 0 : -ERRNO.ENOSPC;
      if (!this.pages(c)) return -ERRNO.ENOMEM;
    }
    total = Math.min(total, size - pos);
    const step = (): { off: number; len: number; sector: number; span: number } => {
      const off = pos + done, len = Math.min(total - done, BOUNCE - (off % SECTOR));
      const sector = Math.floor(off / SECTOR), span = Math.ceil((off + len) / SECTOR) * SECTOR - sector * SECTOR;
      return { off, len, sector, span };
    };
    if (again) {
      const phase = this.cw(c, C.PHASE);
      if (!this.completed(call, d)) { this.idle(call); return done > 0 ? done : -ERRNO.EIO; }
      const s = step();
      const buf = new Uint8Array(s.len);
      if (phase === Phase.Read) {
        this.bounce(c, s.off % SECTOR, buf, false);
        const n = this.toUser(call, segs, done, buf);
        call.copied += n;
        done += n;
        if (n < s.len) { this.idle(call); return done > 0 ? done : -ERRNO.EFAULT; }
      } else if (phase === Phase.Fill) {
        const n = this.fromUser(call, segs, done, buf);
        if (n < s.len) { this.idle(call); return done > 0 ? done : -ERRNO.EFAULT; }
        this.bounce(c, s.off % SECTOR, buf, true);
        this.setCw(c, C.DONE, done);
        return this.submit(call, d, BLK_T.Out, s.sector, s.span, Phase.Write);
      } else {
        call.copied += s.len;
        done += s.len;
      }
    }
    if (done >= total) { this.idle(call); return done; }
    this.setCw(c, C.DONE, done);
    const s = step();
    if (reading) return this.submit(call, d, BLK_T.In, s.sector, s.span, Phase.Read);
    if (s.off % SECTOR !== 0 || (s.off + s.len) % SECTOR !== 0) return this.submit(call, d, BLK_T.In, s.sector, s.span, Phase.Fill);
    const buf = new Uint8Array(s.len);
    const n = this.fromUser(call, segs, done, buf);
    if (n < s.len) { this.idle(call); return done > 0 ? done : -ERRNO.EFAULT; }
    this.bounce(c, 0, buf, true);
    return this.submit(call, d, BLK_T.Out, s.sector, s.span, Phase.Write);
  }

  /** fsync/fdatasync: one FLUSH request (nothing to do when the device has no write cache to flush). */
  flush(call: SyscallCall, d: number): Result {
    if (this.continuing(call, Phase.Flush) && this.cw(call.cpu.vcpu.id, C.DISK) === d) {
      const ok = this.completed(call, d);
      this.idle(call);
      return ok ? 0 : -ERRNO.EIO;
    }
    if (this.dw(d, D.FLUSH) === 0) return 0;
    if (!this.pages(call.cpu.vcpu.id)) return -ERRNO.ENOMEM;
    return this.submit(call, d, BLK_T.Flush, 0, 0, Phase.Flush);
  }

  /** Copies `bytes` to the user segments from byte `skip` of them; returns how many landed before a fault. */
  private toUser(call: SyscallCall, segs: Segments, skip: number, bytes: Uint8Array): number {
    return this.walk(segs, skip, bytes.length, (va, i, n) => call.p.mm.copyOut(va, bytes.subarray(i, i + n)));
  }

  /** Fills `bytes` from the user segments from byte `skip` of them; returns how many were readable. */
  private fromUser(call: SyscallCall, segs: Segments, skip: number, bytes: Uint8Array): number {
    return this.walk(segs, skip, bytes.length, (va, i, n) => {
      const got = call.p.mm.copyIn(va, n);
      if (got) { bytes.set(got, i); return n; }
      // copyIn is all or nothing: take what is readable, page by page.
      let k = 0;
      while (k < n) {
        const m = Math.min(n - k, PAGE_SIZE - ((va + k) & (PAGE_SIZE - 1)));
        const part = call.p.mm.copyIn((va + k) >>> 0, m);
        if (!part) break;
        bytes.set(part, i + k);
        k += m;
      }
      return k;
    });
  }

  private walk(segs: Segments, skip: number, len: number, fn: (va: number, i: number, n: number) => number): number {
    let i = 0;
    for (let s = 0; s < segs.length && i < len; s += 2) {
      let va = segs[s], n = segs[s + 1];
      if (skip >= n) { skip -= n; continue; }
      va = (va + skip) >>> 0; n -= skip; skip = 0;
      const k = Math.min(n, len - i);
      const got = fn(va, i, k);
      i += got;
      if (got < k) break;
    }
    return i;
  }
}

