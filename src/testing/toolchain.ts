/**
 * The reference RISC-V toolchain and qemu-user, used by differential tests as the oracle.
 * Under CI (CI=true) a missing tool is a test failure; elsewhere tests using it are skipped with
 * a message naming the Debian package to install.
 */
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
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

/** The two commands that assemble and link `name`.s in `dir` into `name`.elf (entry _start at 0x10000). */
function assembleLinkCommands(dir: string, name: string, march: string): { s: string; elf: string; steps: Array<[string, string[]]> } {
  const s = join(dir, `${name}.s`);
  const o = join(dir, `${name}.o`);
  const elf = join(dir, `${name}.elf`);
  return {
    s, elf, steps: [
      [TOOLS.as.bin, [`-march=${march}`, '-mabi=ilp32', '-o', o, s]],
      [TOOLS.ld.bin, ['-m', 'elf32lriscv', '-static', '--no-relax', '-Ttext=0x10000', '-e', '_start', '-o', elf, o]],
    ],
  };
}

/** Assembles and links one GNU-as source into a static ELF with entry _start at 0x10000. */
export function gnuAssembleLink(source: string, dir: string, name = 'prog', march = MARCH): Uint8Array {
  const { s, elf, steps } = assembleLinkCommands(dir, name, march);
  writeFileSync(s, source);
  for (const [bin, args] of steps) execFileSync(bin, args, { stdio: 'pipe' });
  return new Uint8Array(readFileSync(elf));
}

export interface ProcessResult { stdout: Buffer; stderr: Buffer; status: number }

const SIGNALS: Record<string, number> = { SIGSEGV: 11, SIGILL: 4, SIGBUS: 7, SIGABRT: 6, SIGKILL: 9, SIGTRAP: 5, SIGPIPE: 13, SIGTERM: 15 };
/** A process's exit status the way a shell reports it: 128 + the signal's number when a signal killed it. */
const shellStatus = (status: number | null, signal: string | null): number => status ?? 128 + (signal ? SIGNALS[signal] ?? 0 : 0);

/** Runs an ELF under qemu-riscv32; status is 128+signal when killed by a signal. */
export function qemuRun(elf: string, args: string[] = [], stdin?: Buffer | string): ProcessResult {
  const r = spawnSync(TOOLS.qemu.bin, [elf, ...args], { input: stdin ?? '', maxBuffer: 64 << 20 });
  return { stdout: r.stdout, stderr: r.stderr, status: shellStatus(r.status, r.signal) };
}

/** qemuRun without blocking this thread (no stdin). */
function qemuRunAsync(elf: string): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(TOOLS.qemu.bin, [elf], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [], err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.once('error', reject);
    child.once('close', (status, signal) => resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err), status: shellStatus(status, signal) }));
  });
}

/**
 * gnuAssembleLink and qemuRun for every source (named p0, p1, ... in `dir`), `parallel` programs
 * at a time. The tools spend most of their time starting up (a few ms of CPU each, more waiting
 * for a core on a busy machine), so running them side by side, instead of one after another
 * from the test's thread, cuts a differential test's wall time without changing a result.
 */
export async function referenceRuns(sources: string[], dir: string, parallel = 4): Promise<Array<{ elf: Uint8Array; path: string; want: ProcessResult }>> {
  const run = promisify(execFile);
  const results: Array<{ elf: Uint8Array; path: string; want: ProcessResult }> = new Array(sources.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < sources.length; i = next++) {
      const { s, elf, steps } = assembleLinkCommands(dir, `p${i}`, MARCH);
      writeFileSync(s, sources[i]);
      for (const [bin, args] of steps) await run(bin, args);
      results[i] = { elf: new Uint8Array(readFileSync(elf)), path: elf, want: await qemuRunAsync(elf) };
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return results;
}
