import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TECHNIQUES, TechniqueConfigError, notLive, resolveTechniques, validateTechniques } from './catalogue.js';
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
    try { validateTechniques({ protectionDomains: { enabled: true } }); throw new Error('no error'); } catch (e) { expect((e as TechniqueConfigError).status).toBe(501); }
    expect(() => validateTechniques({ protectionDomains: { enabled: false } })).not.toThrow();
    const r = resolveTechniques({ syscallLookahead: { window: 8 } }, { syscallLookahead: { enabled: true } });
    expect(r.syscallLookahead).toEqual({ enabled: true, window: 8, allowForwardBranches: true, maxChain: 64 });
    expect(r.umeAwareMigration.enabled).toBe(true); // on by default
    expect(resolveTechniques({ umeAwareMigration: { enabled: false } }).umeAwareMigration.enabled).toBe(false);
    expect(r.protectionDomains.enabled).toBe(false);
    expect(notLive({ syscallLookahead: {}, protectionDomains: {} })).toEqual(['protectionDomains']);
  });

  test('docs/techniques/README.md is generated from the catalogue (npm run docs:techniques)', () => {
    expect(readFileSync(join(process.cwd(), 'docs/techniques/README.md'), 'utf8')).toBe(catalogueMarkdown());
  });
});
