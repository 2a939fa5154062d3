/**
 * The installed command's local commands (bin/hvsim.js run/asm/disasm), which run from
 * dist/bundle/cli-local.cjs through a V8 code cache: the same bytes out, the same exit status,
 * help and errors whether the cache is cold, warm, corrupt or off, as from dist/'s modules
 * (HVSIM_NO_BUNDLE=1) and as under qemu-riscv32 when it is installed; and the kernel text the
 * build assembled ahead of time is that of the sources.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelTextFromPrebuilt, MITIGATIONS } from '../src/guest/kernel-text.js';

const SLOW = 600_000;
let dir: string;
let cache: string;
beforeAll(() => {
  expect(existsSync('dist/bundle/cli-local.cjs')).toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'hvsim-cli-bundle-'));
  cache = join(dir, 'cache');
  writeFileSync(join(dir, 'prog.s'), `.globl _start
_start:
  li a0, 1
  la a1, out
  li a2, 6
  li a7, 64
  ecall
  li a0, 2
  la a1, err
  li a2, 4
  li a7, 64
  ecall
  li a0, 7
  li a7, 93
  ecall
.data
out: .ascii "hello\\n"
err: .ascii "err\\n"
`);
});
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

type Result = { stdout: string; stderr: string; status: number | null };
function hvsim(args: string[], env: NodeJS.ProcessEnv = {}): Result {
  const r = spawnSync(process.execPath, ['bin/hvsim.js', ...args], { encoding: 'utf8', timeout: SLOW, env: { ...process.env, HVSIM_CACHE_DIR: cache, ...env } });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}
const cacheFile = () => join(cache, readdirSync(cache).find((f) => f.startsWith('cli-local.cjs'))!);

test('asm, run and disasm give the same bytes and status cold, warm, with a corrupt cache, without one and unbundled', () => {
  const elf = join(dir, 'prog.elf');
  expect(hvsim(['asm', join(dir, 'prog.s'), '-o', elf])).toEqual({ stdout: '', stderr: '', status: 0 });
  const cold = hvsim(['run', elf]);
  expect(cold).toEqual({ stdout: 'hello\n', stderr: 'err\n', status: 7 });
  expect(readdirSync(cache)).toEqual([expect.stringMatching(/^cli-local\.cjs-[0-9a-f]{16}\.v8-code-cache$/)]);
  expect(hvsim(['run', elf])).toEqual(cold);
  const data = readFileSync(cacheFile());
  data[data.length >> 1] ^= 0xff;
  writeFileSync(cacheFile(), data);
  expect(hvsim(['run', elf])).toEqual(cold);
  writeFileSync(cacheFile(), 'not a cache');
  expect(hvsim(['run', elf])).toEqual(cold);
  expect(hvsim(['run', elf], { HVSIM_NO_CODE_CACHE: '1' })).toEqual(cold);
  expect(hvsim(['run', elf], { HVSIM_NO_BUNDLE: '1' })).toEqual(cold);
  const qemu = spawnSync('qemu-riscv32', [elf], { encoding: 'utf8' });
  if (!qemu.error) expect({ stdout: qemu.stdout, stderr: qemu.stderr, status: qemu.status }).toEqual(cold);
  const disasm = hvsim(['disasm', elf]);
  expect(disasm.status).toBe(0);
  expect(disasm.stdout).toMatch(/ecall/);
  expect(hvsim(['disasm', elf], { HVSIM_NO_BUNDLE: '1' })).toEqual(disasm);
}, SLOW);

test('experiment gives the same variants and counters from the bundle as from dist/', () => {
  const elf = join(dir, 'prog.elf');
  if (!existsSync(elf)) expect(hvsim(['asm', join(dir, 'prog.s'), '-o', elf]).status).toBe(0);
  const args = ['experiment', elf, '--variant', 'base:', '--variant', 'lookahead:syscallLookahead=on', '--json'];
  const counters = (r: Result) => {
    expect(r.status).toBe(0);
    return (JSON.parse(r.stdout) as { variants: Array<{ name: string; counters: unknown }> }).variants.map((v) => [v.name, v.counters]);
  };
  const bundled = counters(hvsim(args));
  expect(bundled).toHaveLength(2);
  expect(counters(hvsim(args, { HVSIM_NO_BUNDLE: '1' }))).toEqual(bundled);
}, SLOW);

test('help, usage errors and a missing file are the same from the bundle as from dist/', () => {
  for (const args of [['run', '--help'], ['run'], ['run', join(dir, 'missing.elf')], ['run', '--vcpus', '99', 'x'], ['asm', '--help'], ['disasm']]) {
    const bundled = hvsim(args);
    expect(hvsim(args, { HVSIM_NO_BUNDLE: '1' })).toEqual(bundled);
    expect(bundled.status).not.toBe(70);
  }
}, SLOW);

test('bin/hvsim.js runs from the local bundle exactly the local commands of src/cli/main.ts (less serve, which needs the service)', () => {
  const set = (file: string) => JSON.parse(/const LOCAL_COMMANDS = new Set\((\[[^\]]*\])\)/.exec(readFileSync(file, 'utf8'))![1].replace(/'/g, '"')) as string[];
  expect(set('bin/hvsim.js')).toEqual(set('src/cli/main.ts').filter((c) => c !== 'serve'));
});

test('the build assembled the kernel text of the current sources ahead of time', () => {
  const json = readFileSync('dist/guest/kernel-text.prebuilt.json', 'utf8');
  for (const m of MITIGATIONS) expect(kernelTextFromPrebuilt(json, m)).toBeDefined();
});
