// Rebuilds workloads/bin/*.elf from workloads/src/*.s + workloads/lib.s with hvsim's own
// assembler (run through `npm run workloads`, which builds dist/ first).
import { chmodSync, writeFileSync } from 'node:fs';
const { BUILTIN_IMAGES, buildBuiltin } = await import(new URL('../dist/runtime/workloads.js', import.meta.url).href);
for (const { name } of BUILTIN_IMAGES) {
  const out = new URL(`bin/${name}.elf`, import.meta.url);
  writeFileSync(out, buildBuiltin(name));
  chmodSync(out, 0o755);
  process.stdout.write(`workloads/bin/${name}.elf\n`);
}
// The key-store protection domain and its client (technique 7).
const { KEYSTORE_BINARIES } = await import(new URL('../dist/runtime/keystore.js', import.meta.url).href);
for (const { file, build } of KEYSTORE_BINARIES) {
  const out = new URL(`bin/${file}`, import.meta.url);
  writeFileSync(out, build());
  chmodSync(out, 0o755);
  process.stdout.write(`workloads/bin/${file}\n`);
}
