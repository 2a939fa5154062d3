#!/usr/bin/env node
// The hvsim command. Runs the compiled CLI in dist/ (built by `npm install` through the
// `prepare` script, or by `npm run build`), from its bundles when they are there and
// HVSIM_NO_BUNDLE is unset (they start in less CPU time; see scripts/bundle.mjs), else from
// dist/cli/main.js and the modules it imports:
// - the local commands (run, experiment, asm, disasm) from dist/bundle/cli-local.cjs, compiled
//   through a V8 code cache kept in ~/.cache/hvsim (src/cli/code-cache.ts);
// - anything else from dist/bundle/cli.js.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const LOCAL_COMMANDS = new Set(['run', 'experiment', 'asm', 'disasm']);
const dist = (path) => new URL(`../dist/${path}`, import.meta.url);
const bundled = !process.env.HVSIM_NO_BUNDLE;
const local = dist('bundle/cli-local.cjs');
if (bundled && LOCAL_COMMANDS.has(process.argv[2]) && existsSync(fileURLToPath(local))) {
  const { runCommonJsBundle } = await import(dist('cli/code-cache.js').href);
  runCommonJsBundle(fileURLToPath(local));
} else {
  const bundle = dist('bundle/cli.js');
  const entry = bundled && existsSync(fileURLToPath(bundle)) ? bundle : dist('cli/main.js');
  if (!existsSync(fileURLToPath(entry))) {
    process.stderr.write('hvsim: dist/ is missing; run `npm run build` first\n');
    process.exit(2);
  }
  await import(entry.href);
}
