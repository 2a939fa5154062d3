import fc from 'fast-check';
import { Disk, DISK_CHUNK, SECTOR } from './disk.js';
import { BLK_S, BLK_T, DeviceRam, QUEUE_MAX, VIRTIO_MAGIC, VIRTIO_MMIO as R, VIRTQ_DESC_F, VirtioBlk } from './virtio-blk.js';

const RAM = 0x8000_0000;

/** Guest RAM for the device: a flat 128 KiB at RAM. */
class FlatRam implements DeviceRam {
  readonly u8 = new Uint8Array(1 << 17);
  private readonly dv = new DataView(this.u8.buffer);
  isRamRange(gpa: number, len: number): boolean { return gpa >= RAM && gpa + len <= RAM + this.u8.length; }
  read32(gpa: number): number { return this.dv.getInt32(gpa - RAM, true); }
  write32(gpa: number, v: number): void { this.dv.setInt32(gpa - RAM, v, true); }
  readBytes(gpa: number, len: number): Uint8Array { return this.u8.slice(gpa - RAM, gpa - RAM + len); }
  writeBytes(gpa: number, b: Uint8Array): void { this.u8.set(b, gpa - RAM); }
  w16(gpa: number, v: number): void { this.dv.setUint16(gpa - RAM, v, true); }
  r16(gpa: number): number { return this.dv.getUint16(gpa - RAM, true); }
}

const DESC = RAM + 0x1000, AVAIL = RAM + 0x2000, USED = RAM + 0x3000, HDR = RAM + 0x4000, STATUS = RAM + 0x5000, DATA = RAM + 0x10000;
const NUM = 8;

/** A driver as the guest's would be: feature negotiation, one queue, requests polled on used.idx. */
class Driver {
  private avail = 0;
  constructor(readonly ram: FlatRam, readonly dev: VirtioBlk) {
    const w = (off: number, v: number) => dev.access(off, 4, true, v);
    expect(dev.access(R.MagicValue, 4, false, 0)).toBe(VIRTIO_MAGIC);
    expect(dev.access(R.DeviceID, 4, false, 0)).toBe(2);
    w(R.Status, 0); w(R.Status, 1 | 2);
    w(R.DeviceFeaturesSel, 1);
    w(R.DriverFeaturesSel, 1); w(R.DriverFeatures, dev.access(R.DeviceFeatures, 4, false, 0));
    w(R.Status, 1 | 2 | 8);
    w(R.QueueSel, 0);
    expect(dev.access(R.QueueNumMax, 4, false, 0)).toBe(QUEUE_MAX);
    w(R.QueueNum, NUM); w(R.QueueDescLow, DESC); w(R.QueueDriverLow, AVAIL); w(R.QueueDeviceLow, USED); w(R.QueueReady, 1);
    w(R.Status, 1 | 2 | 8 | 4);
  }

  capacity(): number { return this.dev.access(R.Config, 4, false, 0) + this.dev.access(R.Config + 4, 4, false, 0) * 2 ** 32; }

  /** One request; returns its status byte and the used ring's len. */
  request(type: number, sector: number, data: Uint8Array | null, dataLen = data?.length ?? 0): { status: number; len: number; data: Uint8Array } {
    const r = this.ram;
    r.write32(HDR, type); r.write32(HDR + 4, 0); r.write32(HDR + 8, sector); r.write32(HDR + 12, 0);
    if (data) r.writeBytes(DATA, data);
    const descs: Array<[number, number, number]> = [[HDR, 16, 0]];
    if (dataLen) descs.push([DATA, dataLen, type === BLK_T.Out ? 0 : VIRTQ_DESC_F.Write]);
    descs.push([STATUS, 1, VIRTQ_DESC_F.Write]);
    const head = (this.avail * 3) % NUM;
    descs.forEach(([addr, len, flags], i) => {
      const d = DESC + 16 * ((head + i) % NUM);
      r.write32(d, addr); r.write32(d + 4, 0); r.write32(d + 8, len);
      r.w16(d + 12, flags | (i < descs.length - 1 ? VIRTQ_DESC_F.Next : 0)); r.w16(d + 14, (head + i + 1) % NUM);
    });
    r.w16(AVAIL + 4 + 2 * (this.avail % NUM), head);
    this.avail = (this.avail + 1) & 0xffff;
    r.w16(AVAIL + 2, this.avail);
    this.dev.access(R.QueueNotify, 4, true, 0);
    expect(r.r16(USED + 2)).toBe(this.avail);
    const slot = USED + 4 + 8 * ((this.avail - 1) % NUM);
    expect(r.read32(slot)).toBe(head);
    return { status: r.u8[STATUS - RAM], len: r.read32(slot + 4), data: r.readBytes(DATA, dataLen) };
  }
}

describe('virtio-mmio block device', () => {
  test('writes, reads back, flushes; IOERR past the end; the base image stays unchanged (copy-on-write)', () => {
    const image = new Uint8Array(3 * SECTOR).fill(0xab);
    const disk = new Disk(16 * SECTOR, image);
    const ram = new FlatRam();
    const d = new Driver(ram, new VirtioBlk(ram, disk, 'disk-0'));
    expect(d.capacity()).toBe(16);
    expect(d.request(BLK_T.In, 0, null, SECTOR)).toEqual({ status: BLK_S.Ok, len: SECTOR + 1, data: new Uint8Array(SECTOR).fill(0xab) });
    const payload = Uint8Array.from({ length: 2 * SECTOR }, (_, i) => i & 0xff);
    expect(d.request(BLK_T.Out, 2, payload).status).toBe(BLK_S.Ok);
    expect(d.request(BLK_T.In, 2, null, 2 * SECTOR).data).toEqual(payload);
    expect(d.request(BLK_T.Flush, 0, null).status).toBe(BLK_S.Ok);
    expect(d.request(BLK_T.In, 15, null, 2 * SECTOR).status).toBe(BLK_S.IoErr);
    expect(d.request(99, 0, null).status).toBe(BLK_S.Unsupp);
    expect(new TextDecoder().decode(d.request(BLK_T.GetId, 0, null, 20).data).replace(/\0+$/, '')).toBe('disk-0');
    expect(image).toEqual(new Uint8Array(3 * SECTOR).fill(0xab));
    expect(disk.slice(2 * SECTOR, 4 * SECTOR)).toEqual(payload);
    expect(disk.slice(SECTOR, SECTOR + 4)).toEqual(Uint8Array.of(0xab, 0xab, 0xab, 0xab));
    expect(d.dev.counters).toEqual({ requests: 7, bytesRead: 3 * SECTOR, bytesWritten: 2 * SECTOR, flushes: 1, errors: 2 });
  });

  test('a descriptor pointing outside guest RAM stops the queue with DEVICE_NEEDS_RESET, the disk unchanged', () => {
    const ram = new FlatRam(), disk = new Disk(8 * SECTOR);
    const d = new Driver(ram, new VirtioBlk(ram, disk, 'x'));
    ram.write32(HDR, BLK_T.Out);
    ram.write32(DESC, HDR); ram.write32(DESC + 8, 16); ram.w16(DESC + 12, VIRTQ_DESC_F.Next); ram.w16(DESC + 14, 1);
    ram.write32(DESC + 16, 0x1000); ram.write32(DESC + 24, SECTOR); ram.w16(DESC + 28, VIRTQ_DESC_F.Next); ram.w16(DESC + 30, 2);
    ram.write32(DESC + 32, STATUS); ram.write32(DESC + 40, 1); ram.w16(DESC + 44, VIRTQ_DESC_F.Write);
    ram.w16(AVAIL + 4, 0); ram.w16(AVAIL + 2, 1);
    d.dev.access(R.QueueNotify, 4, true, 0);
    expect(d.dev.access(R.Status, 4, false, 0) & 64).toBe(64);
    expect(ram.r16(USED + 2)).toBe(0);
    expect(disk.writtenChunks()).toEqual([]);
  });

  test('any sequence of sector writes and reads through the queue matches a plain byte array; dirty chunks are the written ones', () => {
    const SECTORS = 64;
    fc.assert(fc.property(
      fc.array(fc.record({ write: fc.boolean(), sector: fc.nat(SECTORS - 1), count: fc.integer({ min: 1, max: 8 }), fill: fc.nat(255) }), { maxLength: 30 }),
      (ops) => {
        const ram = new FlatRam(), disk = new Disk(SECTORS * SECTOR), model = new Uint8Array(SECTORS * SECTOR);
        const d = new Driver(ram, new VirtioBlk(ram, disk, 'p'));
        disk.startDirtyLog();
        const dirty = new Set<number>();
        for (const op of ops) {
          const len = op.count * SECTOR, at = op.sector * SECTOR, fits = at + len <= model.length;
          if (op.write) {
            const bytes = Uint8Array.from({ length: len }, (_, i) => (op.fill + i) & 0xff);
            expect(d.request(BLK_T.Out, op.sector, bytes).status).toBe(fits ? BLK_S.Ok : BLK_S.IoErr);
            if (fits) {
              model.set(bytes, at);
              for (let c = Math.floor(at / DISK_CHUNK); c <= Math.floor((at + len - 1) / DISK_CHUNK); c++) dirty.add(c);
            }
          } else {
            const r = d.request(BLK_T.In, op.sector, null, len);
            expect(r.status).toBe(fits ? BLK_S.Ok : BLK_S.IoErr);
            if (fits) expect(Buffer.from(r.data).equals(model.subarray(at, at + len))).toBe(true);
          }
        }
        expect(Buffer.from(disk.slice(0, model.length)).equals(model)).toBe(true);
        expect(disk.takeDirty()).toEqual([...dirty].sort((a, b) => a - b));
      },
    ), { seed: 5, numRuns: 40 });
  });
});

describe('a stopped VM\'s disk: its own chunks exported and imported', () => {
  test('any writes over any base export to chunks that, imported over the same base, give the same content', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 40 }), fc.boolean(),
      fc.array(fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 9000 })), { maxLength: 12 }),
      (sectors, withBase, writes) => {
        const size = sectors * SECTOR;
        const base = withBase ? Uint8Array.from({ length: size - 100 }, (_, i) => (i * 13) & 0xff) : null;
        const a = new Disk(size, base);
        for (const [at, bytes] of writes) {
          const off = at % size, b = bytes.subarray(0, size - off);
          a.write(off, b);
        }
        const w = a.exportWritten();
        expect(w.chunks).toEqual(a.writtenChunks());
        const b = new Disk(size, base);
        b.importWritten(w);
        expect(Buffer.from(b.slice(0, size)).equals(Buffer.from(a.slice(0, size)))).toBe(true);
        expect(b.writtenChunks()).toEqual(a.writtenChunks());
      }), { seed: 140, numRuns: 200 });
  });

  test('content that does not fit the disk is refused', () => {
    const d = new Disk(DISK_CHUNK + SECTOR);
    expect(() => d.importWritten({ chunks: [2], bytes: new Uint8Array(DISK_CHUNK) })).toThrow(RangeError);
    expect(() => d.importWritten({ chunks: [1], bytes: new Uint8Array(DISK_CHUNK) })).toThrow(RangeError);
    expect(() => d.importWritten({ chunks: [0], bytes: new Uint8Array(DISK_CHUNK + 1) })).toThrow(/too many/);
    d.importWritten({ chunks: [1], bytes: new Uint8Array(SECTOR).fill(7) });
    expect(d.slice(DISK_CHUNK, DISK_CHUNK + 2)).toEqual(Uint8Array.of(7, 7));
  });
});
