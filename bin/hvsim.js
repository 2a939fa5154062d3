#!/usr/bin/env node
// The hvsim command. Runs the compiled CLI in dist/ (built by `npm install` through the
// `prepare` script, or by `npm run build`): its bundle dist/bundle/cli.js when there is one and
// HVSIM_NO_BUNDLE is unset (it starts in less CPU time; see scripts/bundle.mjs), else
// dist/cli/main.js and the modules it imports.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const bundle = new URL('../dist/bundle/cli.js', import.meta.url);
const entry = !process.env.HVSIM_NO_BUNDLE && existsSync(fileURLToPath(bundle)) ? bundle : new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('hvsim: dist/ is missing; run `npm run build` first\n');
  process.exit(2);
}
await import(entry.href);
