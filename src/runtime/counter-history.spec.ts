import fc from 'fast-check';
import { COUNTER_HISTORY_POINTS, CounterHistory } from './counter-history.js';

describe('CounterHistory', () => {
  test('stays bounded, in time order, starting with the first sample and ending with the latest, however many samples come', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1, maxLength: 3000 }), (gaps) => {
      const h = new CounterHistory(1000);
      let t = 0;
      for (const g of gaps) { t += g; h.add({ wallMs: t, instructions: t * 10, cycles: t * 20, virtualTimeNs: t }); }
      const p = h.points();
      expect(p.length).toBeLessThanOrEqual(COUNTER_HISTORY_POINTS + 1);
      expect(p[0].wallMs).toBe(gaps[0]);
      expect(p[p.length - 1]).toEqual(h.latest);
      expect(h.latest!.wallMs).toBe(t);
      for (let i = 1; i < p.length; i++) expect(p[i].wallMs).toBeGreaterThan(p[i - 1].wallMs);
    }), { seed: 14, numRuns: 100 });
  });

  test('an hour of 250 ms samples keeps at most 257 points', () => {
    const h = new CounterHistory(1000);
    for (let t = 0; t < 3_600_000; t += 250) h.add({ wallMs: t, instructions: t, cycles: t, virtualTimeNs: t });
    expect(h.points().length).toBeLessThanOrEqual(COUNTER_HISTORY_POINTS + 1);
    expect(h.stepMs).toBeGreaterThan(1000);
  });
});
