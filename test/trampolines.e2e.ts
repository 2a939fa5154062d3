/**
 * Techniques 2 and 4 measured the way a researcher would, over REST: one experiment on the
 * built-in pipeline (`pipewriter | pipereader`: each end's hot file method differs) with three
 * variants that differ in their Spectre-v2 mitigation as well as their techniques: `none`,
 * `retpoline`, and the retpoline with both trampolines. The trampolines win back at least 80 %
 * of what the retpoline costs, output is identical, and a variant's bad mitigation is a 400 that
 * names it and starts nothing.
 */
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { answered, refused, sdk } from './support/sdk.js';

describe.each(BACKENDS)('trampolines against the retpoline in one experiment on $name', (backend) => {
  const session = useTenantSession(backend, 'trampolines');
  const T = () => sdk(session.svc.url, session.token);

  test('none / retpoline / trampolines on the pipeline: >= 80 % of the retpoline overhead recovered, same output', async () => {
    const bad = await refused(T().POST('/v1/experiments', { body: {
      workload: { builtin: 'pipeline' }, variants: [{ name: 'x', techniques: {}, spectreV2Mitigation: 'ibrs' as 'none' }],
    } }), 400);
    expect(bad.detail).toMatch(/spectreV2Mitigation/);
    expect((await answered(T().GET('/v1/experiments', {}), 200)).items).toEqual([]);

    const r = await answered(T().POST('/v1/experiments', { body: {
      workload: { builtin: 'pipeline' }, vm: { memoryMiB: 32 },
      variants: [
        { name: 'none', spectreV2Mitigation: 'none', techniques: {} },
        { name: 'retpoline', spectreV2Mitigation: 'retpoline', techniques: {} },
        { name: 'trampolines', spectreV2Mitigation: 'retpoline', techniques: { callTableInlining: { enabled: true }, instanceCallInlining: { enabled: true } } },
      ],
    } }), 202);
    const at = { params: { path: { id: r.id } } };
    await until('the experiment to end', async () => ['succeeded', 'failed'].includes((await answered(T().GET('/v1/experiments/{id}', at), 200)).state), 280_000);
    const exp = await answered(T().GET('/v1/experiments/{id}', at), 200) as Record<string, any>;
    expect(exp.state).toBe('succeeded');
    const [none, retp, tramp] = exp.result.variants;
    expect([none.spectreV2Mitigation, retp.spectreV2Mitigation, tramp.spectreV2Mitigation]).toEqual(['none', 'retpoline', 'retpoline']);
    expect(exp.result.variants.every((v: { diverged: boolean; statuses: number[] }) => !v.diverged && v.statuses.join() === '0,0')).toBe(true);
    expect(retp.counters.cycles).toBeGreaterThan(none.counters.cycles);
    const recovered = (retp.counters.cycles - tramp.counters.cycles) / (retp.counters.cycles - none.counters.cycles);
    expect(recovered).toBeGreaterThanOrEqual(0.8);
    const t2 = tramp.counters.instanceCallInlining;
    expect(Object.keys(t2.perProcess)).toHaveLength(2); // each end of the pipe has trampolines of its own
    expect(t2.hits / (t2.hits + t2.misses + t2.fallbacks)).toBeGreaterThan(0.9);
    expect(tramp.counters.callTableInlining.hits).toBeGreaterThan(0);
  }, 300_000);
});
