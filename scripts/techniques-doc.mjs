// Writes docs/techniques/README.md from the technique catalogue (run through `npm run docs:techniques`).
import { mkdirSync, writeFileSync } from 'node:fs';
const { catalogueMarkdown } = await import(new URL('../dist/techniques/docs.js', import.meta.url).href);
mkdirSync(new URL('../docs/techniques/', import.meta.url), { recursive: true });
writeFileSync(new URL('../docs/techniques/README.md', import.meta.url), catalogueMarkdown());
process.stdout.write('docs/techniques/README.md\n');
