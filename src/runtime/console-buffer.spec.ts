import fc from 'fast-check';
import { ConsoleBuffer } from './console-buffer.js';

describe('ConsoleBuffer', () => {
  test('holds exactly the newest capacity bytes per port and counts what it dropped (model: one growing array)', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 64 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), fc.uint8Array({ maxLength: 100 })), { maxLength: 60 }),
      (capacity, pushes) => {
        const c = new ConsoleBuffer(capacity);
        const model: number[][] = [[], []];
        for (const [port, bytes] of pushes) {
          c.push(port, bytes);
          model[port].push(...bytes);
          for (const p of [0, 1]) {
            const want = model[p].slice(Math.max(0, model[p].length - capacity));
            expect([...c.bytes(p)]).toEqual(want);
            expect(c.total[p]).toBe(model[p].length);
            expect(c.dropped[p]).toBe(model[p].length - want.length);
            expect(c.truncated[p]).toBe(model[p].length > capacity);
          }
        }
      }), { seed: 23, numRuns: 300 });
  });

  test('pushing many small chunks into a full buffer keeps the newest bytes (17,000 lines of issue 23)', () => {
    const c = new ConsoleBuffer(1 << 10);
    const line = Buffer.from('0123456789'.repeat(6));
    for (let i = 0; i < 17_000; i++) c.push(0, line);
    expect(c.bytes(0).length).toBe(1 << 10);
    expect(c.total[0]).toBe(17_000 * 60);
    expect(c.dropped[0]).toBe(17_000 * 60 - (1 << 10));
  });
});
