/**
 * The reference RISC-V toolchain and qemu-user, used by differential tests as the oracle.
 * Under CI (CI=true) a missing tool is a test failure; elsewhere tests using it are skipped with
 * a message naming the Debian package to install.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TOOLS = {
  as: { bin: 'riscv64-unknown-elf-as', pkg: 'binutils-riscv64-unknown-elf' },
  ld: { bin: 'riscv64-unknown-elf-ld', pkg: 'binutils-riscv64-unknown-elf' },
  objdump: { bin: 'riscv64-unknown-elf-objdump', pkg: 'binutils-riscv64-unknown-elf' },
  gcc: { bin: 'riscv64-unknown-elf-gcc', pkg: 'gcc-riscv64-unknown-elf' },
  qemu: { bin: 'qemu-riscv32', pkg: 'qemu-user' },
} as const;

export type Tool = keyof typeof TOOLS;

const have = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;

/**
 * True when every tool is installed. Raises (under CI=true) when one is missing, so a CI run
 * without the oracle fails instead of silently skipping.
 */
export function toolsAvailable(...tools: Tool[]): boolean {
  const missing = tools.filter((t) => !have(TOOLS[t].bin));
  if (missing.length === 0) return true;
  const msg = `missing ${missing.map((t) => TOOLS[t].bin).join(', ')}: apt-get install ${[...new Set(missing.map((t) => TOOLS[t].pkg))].join(' ')}`;
  if (process.env.CI === 'true') throw new Error(msg);
  console.warn(`skipping differential tests: ${msg}`);
  return false;
}

export const tempDir = (prefix = 'hvsim-'): string => mkdtempSync(join(tmpdir(), prefix));

export const MARCH = 'rv32imac_zicsr_zifencei';
const CFLAGS = ['-march=rv32imac', '-mabi=ilp32', '-O2', '-nostdlib', '-static', '-fno-builtin'];

/** Compiles and links C sources with the reference GCC (static, no libc, libgcc linked). */
export function gccBuild(sources: string[], out: string, extra: string[] = []): Uint8Array {
  execFileSync(TOOLS.gcc.bin, [...CFLAGS, ...extra, '-o', out, ...sources, '-lgcc'], { stdio: 'pipe' });
  return new Uint8Array(readFileSync(out));
}

/** Assembles and links one GNU-as source into a static ELF with entry _start at 0x10000. */
export function gnuAssembleLink(source: string, dir: string, name = 'prog', march = MARCH): Uint8Array {
  const s = join(dir, `${name}.s`);
  const o = join(dir, `${name}.o`);
  const elf = join(dir, `${name}.elf`);
  writeFileSync(s, source);
  execFileSync(TOOLS.as.bin, [`-march=${march}`, '-mabi=ilp32', '-o', o, s], { stdio: 'pipe' });
  execFileSync(TOOLS.ld.bin, ['-m', 'elf32lriscv', '-static', '--no-relax', '-Ttext=0x10000', '-e', '_start', '-o', elf, o], { stdio: 'pipe' });
  return new Uint8Array(readFileSync(elf));
}

export interface ProcessResult { stdout: Buffer; stderr: Buffer; status: number }

/** Runs an ELF under qemu-riscv32; status is 128+signal when killed by a signal. */
export function qemuRun(elf: string, args: string[] = [], stdin?: Buffer | string): ProcessResult {
  const r = spawnSync(TOOLS.qemu.bin, [elf, ...args], { input: stdin ?? '', maxBuffer: 64 << 20 });
  const sig = r.signal ? ({ SIGSEGV: 11, SIGILL: 4, SIGBUS: 7, SIGABRT: 6, SIGKILL: 9, SIGTRAP: 5, SIGPIPE: 13, SIGTERM: 15 } as Record<string, number>)[r.signal] ?? 0 : 0;
  return { stdout: r.stdout, stderr: r.stderr, status: r.status ?? 128 + sig };
}
