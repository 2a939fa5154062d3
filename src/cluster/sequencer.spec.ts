import fc from 'fast-check';
import { Sequencer } from './sequencer.js';

interface Ev { tenantId: string; seq: number }

describe('Sequencer', () => {
  test('any arrival order, with duplicates, is delivered per tenant in seq order, each once', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 1, max: 40 })), { maxLength: 60 }),
      fc.array(fc.nat(), { maxLength: 200 }),
      (spec, order) => {
        // The events of each tenant: seqs 1..n (gap-free, as the event log allocates them).
        const events: Ev[] = [];
        for (const [tenantId, n] of new Map(spec)) for (let s = 1; s <= n; s++) events.push({ tenantId, seq: s });
        // The first of each tenant arrives first (a node starts following a tenant there); the rest in any order, some twice.
        const firsts = events.filter((e) => e.seq === 1);
        const rest = events.filter((e) => e.seq > 1);
        for (let i = 0; i < order.length && rest.length > 1; i++) {
          const a = order[i] % rest.length, b = (i * 7 + 3) % rest.length;
          [rest[a], rest[b]] = [rest[b], rest[a]];
        }
        const arrivals = [...firsts, ...rest, ...rest.filter((_, i) => order[i] !== undefined && order[i] % 3 === 0)];
        const got: Ev[] = [];
        const s = new Sequencer<Ev>((e) => got.push(e));
        for (const e of arrivals) s.push(e, 0);
        for (const [tenantId, n] of new Map(spec)) {
          expect(got.filter((e) => e.tenantId === tenantId).map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
        }
        expect(s.gaps(1e9, 0)).toEqual([]);
      },
    ), { seed: 22, numRuns: 300 });
  });

  test('a gap is reported after the delay, filled by pushing the missing events, or skipped', () => {
    const got: number[] = [];
    const s = new Sequencer<Ev>((e) => got.push(e.seq));
    s.push({ tenantId: 't', seq: 5 }, 0);
    s.push({ tenantId: 't', seq: 8 }, 100);
    s.push({ tenantId: 't', seq: 9 }, 100);
    expect(got).toEqual([5]);
    expect(s.gaps(300, 500)).toEqual([]);
    expect(s.gaps(700, 500)).toEqual([{ tenantId: 't', from: 6, to: 7 }]);
    s.push({ tenantId: 't', seq: 6 }, 800);
    expect(got).toEqual([5, 6]);
    s.skipTo('t', 8);
    expect(got).toEqual([5, 6, 8, 9]);
    expect(s.gaps(1e9, 0)).toEqual([]);
    s.push({ tenantId: 't', seq: 7 }, 900); // late: already skipped
    expect(got).toEqual([5, 6, 8, 9]);
  });

  test('held events are bounded: beyond maxHeld the oldest gap is skipped', () => {
    const got: number[] = [];
    const s = new Sequencer<Ev>((e) => got.push(e.seq), 3);
    s.push({ tenantId: 't', seq: 1 });
    for (const seq of [3, 4, 5, 7]) s.push({ tenantId: 't', seq });
    expect(got).toEqual([1, 3, 4, 5]);
  });
});
