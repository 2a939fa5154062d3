/**
 * docs/techniques/README.md, generated from the catalogue (`npm run docs:techniques`); a test
 * checks the committed file matches, so the docs cannot drift from the table.
 */
import { TECHNIQUES, TechniqueParam } from './catalogue.js';

const paramValue = (v: TechniqueParam['default']): string => (typeof v === 'object' ? `\`${JSON.stringify(v)}\`` : String(v));
const range = (p: TechniqueParam): string => {
  if (p.min !== undefined) return `${p.min}–${p.max}`;
  if (p.keys) return `keys ${p.keys.map((k) => `\`${k}\``).join(', ')}; values ${p.values!.map((x) => `\`${JSON.stringify(x)}\``).join(', ')}`;
  return '';
};

export function catalogueMarkdown(): string {
  const out = [
    '# Techniques',
    '',
    '<!-- Generated from src/techniques/catalogue.ts by `npm run docs:techniques`; do not edit. -->',
    '',
    'Each technique is configured per host (defaults) and per VM (overrides) as',
    '`techniques: {NAME: {enabled, PARAM: VALUE, ...}}`, validated against this catalogue',
    '(`GET /v1/techniques`). Enabling a technique that is not implemented is a 501.',
    '',
    '| # | name | patent | support | live change |',
    '|---:|---|---|---|---|',
    ...TECHNIQUES.map((t) => `| ${t.number} | \`${t.name}\` | ${t.patent} | ${t.support} | ${t.live ? `yes, at ${t.appliesAt}` : 'no (409 while running)'} |`),
    '',
  ];
  for (const t of TECHNIQUES) {
    out.push(`## ${t.number}. ${t.title} (\`${t.name}\`)`, '', `${t.patent} — ${t.support}.`, '', t.description, '', `Changes: ${t.changes}.`, '');
    out.push('| parameter | type | default | range | meaning |', '|---|---|---|---|---|');
    out.push(`| \`enabled\` | boolean | ${t.enabledByDefault} | | turns the technique on |`);
    for (const p of t.params) out.push(`| \`${p.name}\` | ${p.type} | ${paramValue(p.default)} | ${range(p)} | ${p.description} |`);
    out.push('');
    if (t.counters.length) out.push(`Counters: ${t.counters.map((c) => `\`${c}\``).join(', ')}.`, '');
  }
  return out.join('\n');
}
