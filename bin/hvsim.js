#!/usr/bin/env node
// The hvsim command. Runs the compiled CLI in dist/ (built by `npm install` through the
// `prepare` script, or by `npm run build`), from its bundles when they are there and
// HVSIM_NO_BUNDLE is unset (they start in less CPU time; see scripts/bundle.mjs), else from
// dist/cli/main.js and the modules it imports:
// - the local commands (run, experiment, asm, disasm) from dist/bundle/cli-local.cjs, compiled
//   through a V8 code cache kept in ~/.cache/hvsim (src/cli/code-cache.ts);
// - anything else from dist/bundle/cli.js, an ES module.
// This file is CommonJS (bin/package.json says so): started as an ES module, Node sets up its ES
// module loader first, ~10 ms of CPU that the local commands do not need.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

// The local commands of src/cli/main.ts without serve (test/cli-bundle.e2e.ts keeps the two lists equal).
const LOCAL_COMMANDS = new Set(['run', 'experiment', 'asm', 'disasm']);
const dist = join(__dirname, '..', 'dist');
const bundled = !process.env.HVSIM_NO_BUNDLE;
const local = join(dist, 'bundle', 'cli-local.cjs');
const loader = join(dist, 'bundle', 'code-cache.cjs');
if (bundled && LOCAL_COMMANDS.has(process.argv[2]) && existsSync(local) && existsSync(loader)) {
  require(loader).runCommonJsBundle(local);
} else {
  const bundle = join(dist, 'bundle', 'cli.js');
  const entry = bundled && existsSync(bundle) ? bundle : join(dist, 'cli', 'main.js');
  if (!existsSync(entry)) {
    process.stderr.write('hvsim: dist/ is missing; run `npm run build` first\n');
    process.exit(2);
  }
  import(pathToFileURL(entry).href);
}
