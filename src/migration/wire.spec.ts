/**
 * The migration wire format: records round-trip through any chunking; a flipped bit, an unknown
 * type or version, a non-zero reserved field or an oversized length is refused; truncation is
 * visible as pending bytes. Property-based with a fixed seed.
 */
import fc from 'fast-check';
import { encodeRecord, MAX_PAYLOAD, PayloadReader, PayloadWriter, RecordName, RECORDS, RecordReader, WireError } from './wire.js';

const NAMES = Object.keys(RECORDS) as RecordName[];
const SEED = 20261125;

function readAll(bytes: Buffer, cuts: number[]): Array<{ name: string; payload: Buffer }> {
  const r = new RecordReader();
  const out: Array<{ name: string; payload: Buffer }> = [];
  let at = 0;
  for (const c of [...cuts.filter((x) => x < bytes.length)].sort((a, b) => a - b).concat(bytes.length)) {
    r.push(bytes.subarray(at, c));
    at = c;
    for (let x = r.next(); x; x = r.next()) out.push({ name: x.name, payload: Buffer.from(x.payload) });
  }
  expect(r.pending).toBe(0);
  return out;
}

describe('migration wire format', () => {
  test('records survive any chunking', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ name: fc.constantFrom(...NAMES), payload: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 20 }),
      fc.array(fc.nat(8000), { maxLength: 30 }),
      (recs, cuts) => {
        const bytes = Buffer.concat(recs.map((x) => encodeRecord(x.name, x.payload)));
        expect(readAll(bytes, cuts)).toEqual(recs.map((x) => ({ name: x.name, payload: Buffer.from(x.payload) })));
      }), { seed: SEED, numRuns: 200 });
  });

  test('any single flipped bit is refused (checksum, type, version, reserved or length)', () => {
    fc.assert(fc.property(fc.constantFrom(...NAMES), fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.nat(), fc.nat(7), (name, payload, at, bit) => {
      const b = encodeRecord(name, payload);
      const i = at % b.length;
      b[i] ^= 1 << bit;
      const r = new RecordReader();
      r.push(b);
      let got: unknown = null;
      try { got = r.next(); } catch (e) { expect(e).toBeInstanceOf(WireError); return; }
      // A flipped length bit can make the record look longer: then it is incomplete, never accepted.
      expect(got).toBeNull();
      expect(i).toBeGreaterThanOrEqual(4);
      expect(i).toBeLessThan(8);
    }), { seed: SEED, numRuns: 300 });
  });

  test('unknown types, versions and oversized lengths are refused before the payload arrives', () => {
    const hdr = (type: number, version: number, len: number) => { const b = Buffer.alloc(8); b[0] = type; b[1] = version; b.writeUInt32LE(len, 4); return b; };
    for (const [b, msg] of [[hdr(99, 1, 0), /unknown record type 99/], [hdr(2, 7, 0), /version 7/], [hdr(2, 1, MAX_PAYLOAD + 1), /exceeds/]] as const) {
      const r = new RecordReader();
      r.push(b);
      expect(() => r.next()).toThrow(msg);
    }
  });

  test('a truncated record waits for more bytes and shows as pending', () => {
    const b = encodeRecord('RAM_PAGE', new Uint8Array(4100));
    const r = new RecordReader();
    r.push(b.subarray(0, 2000));
    expect(r.next()).toBeNull();
    expect(r.pending).toBe(2000);
  });

  test('payload readers refuse short and over-long payloads', () => {
    const p = new PayloadWriter().u32(7).str('hi').f64(1.5).done();
    const r = new PayloadReader(p, 'T');
    expect([r.u32(), r.str(), r.f64()]).toEqual([7, 'hi', 1.5]);
    r.end();
    expect(() => new PayloadReader(p.subarray(0, 5), 'T').u32() && new PayloadReader(p.subarray(0, 5), 'T').str()).toThrow(WireError);
    const long = new PayloadReader(Buffer.concat([p, Buffer.alloc(1)]), 'T');
    long.u32(); long.str(); long.f64();
    expect(() => long.end()).toThrow(/trailing/);
  });
});
