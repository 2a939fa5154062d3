#!/usr/bin/env node
// The hvsim command. Runs the compiled CLI in dist/ (built by `npm install` through the
// `prepare` script, or by `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('hvsim: dist/ is missing; run `npm run build` first\n');
  process.exit(2);
}
await import(entry.href);
