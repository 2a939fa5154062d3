// Bundles the compiled service and CLI (dist/, from tsc) with esbuild into dist/bundle/:
// service.js (what dist/main.js runs) and cli.js (what bin/hvsim.js runs), sharing chunks; each
// command's dynamic imports stay separate chunks, so `hvsim run` still loads only the emulator.
//
// Why: on Node 20 the ES module loader costs ~0.15 ms of CPU per module (resolve, read,
// package.json lookups, the CommonJS export lexer); the service loaded ~2,600 modules before it
// listened and `hvsim run` ~70. bench/results/startup.md has the numbers with and without.
//
// Bundled code keeps the paths it had: every `import.meta.url`, `__dirname` and `__filename` in
// a bundled file is rewritten to the URL/path of the file it came from (so ../../package.json,
// workloads/, web/dist/, the VM worker scripts and swagger-ui-dist's assets are found where they
// were). PGlite stays external (it loads its WebAssembly next to its own module), and so do
// optional packages NestJS and pg look for but hvsim does not install.
//
// A second bundle, dist/bundle/cli-local.cjs, holds the CLI with only its local commands (run,
// experiment, asm, disasm) in one CommonJS file: bin/hvsim.js runs those commands from it through
// a V8 code cache (src/cli/code-cache.ts, bundled as dist/bundle/code-cache.cjs), which Node 20
// offers for scripts but not for ES modules. The client commands and `serve` are not in it
// (bin/hvsim.js never sends them there).
//
// Usage: node scripts/bundle.mjs   (run by `npm run build` after tsc). dist/main.js and
// bin/hvsim.js fall back to the unbundled dist/ when dist/bundle/ is missing or HVSIM_NO_BUNDLE=1.
import { build } from 'esbuild';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist/bundle');

/** The expression, in the bundle, of a bundled file's own URL. */
// (`__hvsimBase` is the output file's import.meta.url, set by the banner: writing import.meta into
// a CommonJS file would make esbuild treat it as an ES module.)
const urlOf = (file) => `new URL(${JSON.stringify(relative(outdir, file).split('\\').join('/'))}, __hvsimBase).href`;

/** Dynamic imports the local commands never reach (the client commands, `serve`), as modules that throw. */
const LOCAL_ONLY = /(?:^|\/)(?:client\/index|service-main)\.js$/;
const localOnly = {
  name: 'local-only',
  setup(b) {
    b.onResolve({ filter: LOCAL_ONLY }, (args) => ({ path: args.path, namespace: 'local-only' }));
    b.onLoad({ filter: /.*/, namespace: 'local-only' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not in dist/bundle/cli-local.cjs (bin/hvsim.js runs only the local commands from it)`)});`,
      loader: 'js',
    }));
  },
};

/**
 * Source edits of the local bundle: commander requires node:child_process at load (for
 * executable subcommands, which hvsim has none of), and with it net, dgram and the socket
 * machinery, ~3 ms of `hvsim run`'s start-up; in the local bundle it is required when first used.
 * The build fails if the line is no longer there (commander changed: look again).
 */
const LOCAL_EDITS = [{
  file: /[\\/]commander[\\/]lib[\\/]command\.js$/,
  from: "const childProcess = require('node:child_process');",
  to: "const childProcess = { spawn: (...args) => require('node:child_process').spawn(...args) };",
}];

/** `edits`: source edits [{ file, from, to }] applied before the path rewriting. */
const keepPaths = (edits = []) => ({
  name: 'keep-paths',
  setup(b) {
    b.onLoad({ filter: /\.(c|m)?js$/ }, async (args) => {
      let code = await readFile(args.path, 'utf8');
      let edited = false;
      for (const e of edits.filter((e) => e.file.test(args.path))) {
        if (!code.includes(e.from)) throw new Error(`bundle: ${args.path} no longer has ${e.from}`);
        code = code.replace(e.from, e.to);
        edited = true;
      }
      if (!/import\.meta\.url|__dirname|__filename/.test(code)) return edited ? { contents: code, loader: 'js', resolveDir: dirname(args.path) } : undefined;
      const url = urlOf(args.path);
      // A file's own declarations of __dirname/__filename (ESM code deriving them from
      // import.meta.url) are left alone; otherwise it gets its own, as Node's CommonJS wrapper gives.
      const prelude = ['__filename', '__dirname']
        .filter((name) => new RegExp(`\\b${name}\\b`).test(code) && !new RegExp(`\\b(?:const|let|var)\\s+${name}\\b`).test(code))
        .map((name) => `var ${name} = ${name === '__filename' ? `__hvsimPath(${url})` : `__hvsimDir(${url})`};\n`);
      code = prelude.join('') + code.replace(/\bimport\.meta\.url\b/g, url);
      return { contents: code, loader: 'js', resolveDir: dirname(args.path) };
    });
  },
});

await rm(outdir, { recursive: true, force: true });
const t = performance.now();
const result = await build({
  entryPoints: { service: join(root, 'dist/service-start.js'), cli: join(root, 'dist/cli/main.js') },
  outdir, bundle: true, splitting: true, format: 'esm', platform: 'node', target: 'node20',
  metafile: true, legalComments: 'none', logLevel: 'warning', plugins: [keepPaths()],
  // node_modules may be a link (a worktree's, a test's copy of the image): keep the paths through it
  preserveSymlinks: true,
  banner: {
    js: [
      "import { createRequire as __hvsimRequire } from 'node:module';",
      "import { fileURLToPath as __hvsimPath } from 'node:url';",
      "import { dirname as __hvsimDirname } from 'node:path';",
      'const __hvsimBase = import.meta.url;',
      'const require = __hvsimRequire(import.meta.url);',
      'const __hvsimDir = (u) => __hvsimDirname(__hvsimPath(u));',
    ].join(' '),
  },
  external: [
    'reflect-metadata', '@electric-sql/*',
    // optional peers NestJS, TypeORM and pg try to load; not installed
    '@nestjs/microservices', '@nestjs/microservices/*', '@nestjs/websockets/socket-module', '@fastify/*',
    'class-transformer/storage', 'pg-native', 'tsx', 'tsx/*',
    // NestJS's ValidationPipe loads these with import() and the DTOs' decorators fill their
    // metadata stores: bundled, the pipe got a namespace without plainToInstance. One copy, from
    // node_modules, for both.
    'class-transformer', 'class-validator',
  ],
});
const local = await build({
  entryPoints: { 'cli-local': join(root, 'dist/cli/main.js') }, outdir, outExtension: { '.js': '.cjs' },
  bundle: true, format: 'cjs', platform: 'node', target: 'node20',
  metafile: true, legalComments: 'none', logLevel: 'warning', plugins: [localOnly, keepPaths(LOCAL_EDITS)], preserveSymlinks: true,
  // the same helpers as the ES modules' banner, from CommonJS (the file's own __filename)
  banner: {
    js: [
      "const { pathToFileURL: __hvsimUrl, fileURLToPath: __hvsimPath } = require('node:url');",
      "const { dirname: __hvsimDirname } = require('node:path');",
      'const __hvsimBase = __hvsimUrl(__filename).href;',
      'const __hvsimDir = (u) => __hvsimDirname(__hvsimPath(u));',
    ].join(' '),
  },
});
// What bin/hvsim.js (CommonJS) runs that bundle with: src/cli/code-cache.ts as CommonJS.
await build({
  entryPoints: { 'code-cache': join(root, 'dist/cli/code-cache.js') }, outdir, outExtension: { '.js': '.cjs' },
  bundle: true, format: 'cjs', platform: 'node', target: 'node20', legalComments: 'none', logLevel: 'warning',
});
// A vm.Script without a dynamic-import callback cannot import(): every import() must have been bundled.
let localOut = await readFile(join(outdir, 'cli-local.cjs'), 'utf8');
if (/\bimport\(/.test(localOut)) throw new Error('bundle: dist/bundle/cli-local.cjs still has an import()');
// ASCII only, so that code-cache.ts can read it as latin1 (~1 ms for the bundle) rather than
// decode UTF-8 (~9 ms). esbuild escapes what is in the code already (charset 'ascii', its
// default); what is left is in comments, where an escape means the same.
if (/[^\x00-\x7f]/.test(localOut)) {
  localOut = localOut.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  await writeFile(join(outdir, 'cli-local.cjs'), localOut);
}
const inputs = Object.keys(result.metafile.inputs).length;
const localInputs = Object.keys(local.metafile.inputs).length;
process.stdout.write(`bundle: ${inputs} modules into dist/bundle/, ${localInputs} into dist/bundle/cli-local.cjs, in ${Math.round(performance.now() - t)} ms\n`);
