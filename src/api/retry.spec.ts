import { QueryFailedError } from 'typeorm';
import { withRetry } from './retry.js';

/** A driver error as pg reports it, wrapped the way TypeORM throws it. */
const pgError = (code: string, message: string) => new QueryFailedError('UPDATE vms ...', [], Object.assign(new Error(message), { code }));

/** Work that fails with `errors` in turn, then answers 'done'; counts its attempts. */
function flaky(errors: Error[]) {
  let calls = 0;
  return { get calls() { return calls; }, work: async () => { calls++; if (calls <= errors.length) throw errors[calls - 1]; return 'done'; } };
}

describe('withRetry', () => {
  test('retries a busy database (statement timeout, deadlock, serialization failure, lock not available) as it retries an unreachable one', async () => {
    const f = flaky([
      pgError('57014', 'canceling statement due to statement timeout'),
      pgError('40P01', 'deadlock detected'),
      pgError('40001', 'could not serialize access'),
      pgError('55P03', 'could not obtain lock'),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    ]);
    await expect(withRetry(f.work, { attempts: 6, firstDelayMs: 1 })).resolves.toBe('done');
    expect(f.calls).toBe(6);
  });

  test('does not retry an error that repeating cannot cure (a unique violation), and gives up after its attempts', async () => {
    const unique = flaky([pgError('23505', 'duplicate key value violates unique constraint')]);
    await expect(withRetry(unique.work, { firstDelayMs: 1 })).rejects.toThrow(/duplicate key/);
    expect(unique.calls).toBe(1);
    const busy = flaky(Array.from({ length: 10 }, () => pgError('57014', 'canceling statement due to statement timeout')));
    await expect(withRetry(busy.work, { attempts: 3, firstDelayMs: 1 })).rejects.toThrow(/statement timeout/);
    expect(busy.calls).toBe(3);
  });
});
