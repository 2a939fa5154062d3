/**
 * The live-migration wire format (docs/migration-protocol.md is its reference): a stream of
 * records over one TCP connection, source -> destination, and ACK records back.
 *
 *   record = type u8 | version u8 | reserved u16 (0) | length u32 | payload[length] | crc32 u32
 *
 * Integers are little-endian. The CRC-32 (ISO-HDLC, as zlib) covers the 8-byte record header and
 * the payload. The first record is HELLO; the last is END, answered by one ACK. Every record type
 * has its own version; a reader accepts exactly the versions in RECORDS and nothing it does not
 * know, so a malformed or foreign stream fails cleanly (WireError) instead of being half-applied.
 */
import { crc32 } from 'node:zlib';

export const MAGIC = 'HVSIMMIG';
export const PROTOCOL_VERSION = 1;
export const RECORD_HEADER = 8;
/** Largest payload a reader accepts (a guest-OS record of a big VM stays far below it). */
export const MAX_PAYLOAD = 16 << 20;

/** Record types, their current version and what they carry (the table docs/migration-protocol.md describes). */
export const RECORDS = {
  HELLO: { type: 1, version: 1 },
  RAM_PAGE: { type: 2, version: 1 },
  ZERO_PAGE: { type: 3, version: 1 },
  ERROR_META: { type: 4, version: 1 },
  ROUND_END: { type: 5, version: 1 },
  VCPU: { type: 6, version: 1 },
  DEVICE: { type: 7, version: 1 },
  GUEST_OS: { type: 8, version: 1 },
  END: { type: 9, version: 1 },
  ACK: { type: 10, version: 1 },
  DISK_CHUNK: { type: 11, version: 1 },
} as const;
export type RecordName = keyof typeof RECORDS;
const BY_TYPE = new Map<number, RecordName>(Object.entries(RECORDS).map(([name, r]) => [r.type, name as RecordName]));

/** How the source learned a page's error (ERROR_META.foundBy). */
export const FOUND_BY = { known: 1, 'migration-copy': 2, 'guest-access': 3 } as const;
export type FoundBy = keyof typeof FOUND_BY;
export const FOUND_BY_NAME = new Map<number, FoundBy>(Object.entries(FOUND_BY).map(([k, v]) => [v, k as FoundBy]));

/** A stream that is not a valid migration stream (bad magic, version, checksum, order or content). */
export class WireError extends Error {}

/** Encodes one record. */
export function encodeRecord(name: RecordName, payload: Uint8Array): Buffer {
  const r = RECORDS[name];
  const out = Buffer.allocUnsafe(RECORD_HEADER + payload.length + 4);
  out[0] = r.type;
  out[1] = r.version;
  out.writeUInt16LE(0, 2);
  out.writeUInt32LE(payload.length, 4);
  out.set(payload, RECORD_HEADER);
  out.writeUInt32LE(crc32(out.subarray(0, RECORD_HEADER + payload.length)), RECORD_HEADER + payload.length);
  return out;
}

export interface WireRecord { name: RecordName; payload: Buffer }

/**
 * Splits a byte stream into checked records. `push` chunks as they arrive; `next` returns the
 * next complete record, or null when more bytes are needed.
 * Raises: WireError for an unknown type or version, a reserved field that is not 0, a payload over
 * MAX_PAYLOAD, or a checksum mismatch.
 */
export class RecordReader {
  private buf: Buffer = Buffer.alloc(0);
  private off = 0;

  push(chunk: Buffer): void {
    this.buf = this.off < this.buf.length ? Buffer.concat([this.buf.subarray(this.off), chunk]) : chunk;
    this.off = 0;
  }

  /** Bytes received but not yet returned as records (a truncated stream ends with some). */
  get pending(): number { return this.buf.length - this.off; }

  next(): WireRecord | null {
    const b = this.buf, o = this.off;
    if (b.length - o < RECORD_HEADER) return null;
    const name = BY_TYPE.get(b[o]);
    if (name === undefined) throw new WireError(`unknown record type ${b[o]}`);
    if (b[o + 1] !== RECORDS[name].version) throw new WireError(`${name} record version ${b[o + 1]} is not supported (want ${RECORDS[name].version})`);
    if (b.readUInt16LE(o + 2) !== 0) throw new WireError(`${name} record has a non-zero reserved field`);
    const len = b.readUInt32LE(o + 4);
    if (len > MAX_PAYLOAD) throw new WireError(`${name} record of ${len} bytes exceeds ${MAX_PAYLOAD}`);
    if (b.length - o < RECORD_HEADER + len + 4) return null;
    const sum = b.readUInt32LE(o + RECORD_HEADER + len);
    if (crc32(b.subarray(o, o + RECORD_HEADER + len)) !== sum) throw new WireError(`${name} record: checksum mismatch`);
    this.off = o + RECORD_HEADER + len + 4;
    return { name, payload: b.subarray(o + RECORD_HEADER, o + RECORD_HEADER + len) };
  }
}

/** Little-endian payload builder. */
export class PayloadWriter {
  private parts: Buffer[] = [];
  u8(v: number): this { const b = Buffer.allocUnsafe(1); b[0] = v; this.parts.push(b); return this; }
  u16(v: number): this { const b = Buffer.allocUnsafe(2); b.writeUInt16LE(v); this.parts.push(b); return this; }
  u32(v: number): this { const b = Buffer.allocUnsafe(4); b.writeUInt32LE(v >>> 0); this.parts.push(b); return this; }
  i32(v: number): this { const b = Buffer.allocUnsafe(4); b.writeInt32LE(v | 0); this.parts.push(b); return this; }
  f64(v: number): this { const b = Buffer.allocUnsafe(8); b.writeDoubleLE(v); this.parts.push(b); return this; }
  bytes(v: Uint8Array): this { this.parts.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength)); return this; }
  /** A u32 length and UTF-8 bytes. */
  str(v: string): this { const b = Buffer.from(v, 'utf8'); return this.u32(b.length).bytes(b); }
  done(): Buffer { return Buffer.concat(this.parts); }
}

/**
 * Little-endian payload reader for one record. Raises: WireError when a read runs past the end,
 * and from `end()` when bytes are left over (a record must be consumed exactly).
 */
export class PayloadReader {
  private o = 0;
  constructor(private readonly b: Buffer, private readonly what: string) {}
  private need(n: number): number {
    if (this.o + n > this.b.length) throw new WireError(`${this.what} record is truncated`);
    const at = this.o;
    this.o += n;
    return at;
  }
  u8(): number { return this.b[this.need(1)]; }
  u16(): number { return this.b.readUInt16LE(this.need(2)); }
  u32(): number { return this.b.readUInt32LE(this.need(4)); }
  i32(): number { return this.b.readInt32LE(this.need(4)); }
  f64(): number { return this.b.readDoubleLE(this.need(8)); }
  bytes(n: number): Buffer { const at = this.need(n); return this.b.subarray(at, at + n); }
  str(): string { return this.bytes(this.u32()).toString('utf8'); }
  end(): void { if (this.o !== this.b.length) throw new WireError(`${this.what} record has ${this.b.length - this.o} unexpected trailing bytes`); }
}

/** A 32-bit value as 8 hex digits (how digests are reported). */
export const hex32 = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');

/** The destination's answer to END: whether it took the VM, its RAM digest, and why not. */
export function encodeAck(ok: boolean, digest: number, message: string): Buffer {
  return encodeRecord('ACK', new PayloadWriter().u8(ok ? 1 : 0).u32(digest).str(message).done());
}

/** Raises: WireError for a malformed ACK payload. */
export function decodeAck(payload: Buffer): { ok: boolean; digest: string; message: string } {
  const p = new PayloadReader(payload, 'ACK');
  const ok = p.u8() === 1, digest = hex32(p.u32()), message = p.str();
  p.end();
  return { ok, digest, message };
}
