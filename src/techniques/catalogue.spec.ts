import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TECHNIQUE_BY_NAME, TECHNIQUES, TechniqueConfigError, notLive, resolveTechniques, validateTechniques } from './catalogue.js';
import { catalogueMarkdown } from './docs.js';

describe('technique catalogue', () => {
  test('seven techniques, numbered 1-7, unique names; parameter defaults lie in their ranges; implemented ones list counters', () => {
    expect(TECHNIQUES.map((t) => t.number)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(TECHNIQUES.map((t) => t.name)).size).toBe(7);
    for (const t of TECHNIQUES) {
      for (const p of t.params) if (p.type === 'integer') { expect(p.default).toBeGreaterThanOrEqual(p.min!); expect(p.default).toBeLessThanOrEqual(p.max!); }
      if (t.support === 'implemented') expect(t.counters.length).toBeGreaterThan(0);
      if (t.live) expect(t.appliesAt).toBeTruthy();
    }
  });

  test('validation names the problem; resolution layers catalogue defaults, host defaults and VM overrides', () => {
    expect(() => validateTechniques({ nope: {} })).toThrow(/unknown technique 'nope'/);
    expect(() => validateTechniques({ syscallLookahead: { window: 2.5 } })).toThrow(/window must be an integer/);
    // Every technique is implemented today; a row marked not-implemented refuses to be enabled (501) and may be disabled.
    const planned = new Map([...TECHNIQUE_BY_NAME].map(([n, t]) => [n, n === 'protectionDomains' ? { ...t, support: 'not-implemented' as const } : t]));
    try { validateTechniques({ protectionDomains: { enabled: true } }, planned); throw new Error('no error'); } catch (e) { expect((e as TechniqueConfigError).status).toBe(501); }
    expect(() => validateTechniques({ protectionDomains: { enabled: false } }, planned)).not.toThrow();
    expect(() => validateTechniques({ protectionDomains: { enabled: true } })).not.toThrow();
    const r = resolveTechniques({ syscallLookahead: { window: 8 } }, { syscallLookahead: { enabled: true } });
    expect(r.syscallLookahead).toEqual({ enabled: true, window: 8, allowForwardBranches: true, maxChain: 64 });
    expect(r.umeAwareMigration.enabled).toBe(true); // on by default
    expect(resolveTechniques({ umeAwareMigration: { enabled: false } }).umeAwareMigration.enabled).toBe(false);
    expect(r.protectionDomains).toEqual({ enabled: true, fastGate: true }); // on by default: a VM's domains work without opting in
    expect(notLive({ syscallLookahead: {}, protectionDomains: {} })).toEqual(['protectionDomains']);
  });

  test('docs/techniques/README.md is generated from the catalogue (npm run docs:techniques)', () => {
    expect(readFileSync(join(process.cwd(), 'docs/techniques/README.md'), 'utf8')).toBe(catalogueMarkdown());
  });
});
