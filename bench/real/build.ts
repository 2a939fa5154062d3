/**
 * Builds the real-program benchmark (bench/real): our own C programs linked with Debian's
 * picolibc (`picolibc-riscv64-unknown-elf`) for rv32imac/ilp32, with our start file (start.S)
 * and Linux glue (linux.c), as static ELFs for the Linux RV32 ABI that both qemu-riscv32 and
 * `hvsim run` execute.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stateMachineSource } from './statemachine.js';

const here = import.meta.dirname ?? new URL('.', import.meta.url).pathname;
export const PICOLIBC = '/usr/lib/picolibc/riscv64-unknown-elf';
const LIB = `${PICOLIBC}/lib/release/rv32imac/ilp32`;

/** True when picolibc for rv32imac/ilp32 is installed (apt-get install picolibc-riscv64-unknown-elf). */
export const havePicolibc = (): boolean => existsSync(`${LIB}/libc.a`);

/**
 * The programs, each with the repetition count (`-DSCALE`) the benchmark builds it with (about
 * 25-45 million instructions; SCALE=1 is a few million, what the tests use). `states`: the state
 * machine's size (generated source, compiled at -O1: at -O2 GCC takes minutes on it).
 */
export const REAL_PROGRAMS = [
  { name: 'strings', scale: 10 },
  { name: 'float', scale: 10 },
  { name: 'statemachine', scale: 4, states: 3000 },
  { name: 'calls', scale: 10 },
  { name: 'sort', scale: 25 },
  { name: 'lz', scale: 16 },
] as const;

export type RealName = (typeof REAL_PROGRAMS)[number]['name'];

/**
 * Builds `name` into `dir`/`name`.elf with `-DSCALE=scale` and returns the ELF's path; the state
 * machine with `states` states (default its benchmark size). Raises the compiler's error.
 */
export function buildReal(name: RealName, dir: string, scale: number, states?: number): string {
  const out = join(dir, `${name}.elf`);
  let src = join(here, `${name}.c`), opt = '-O2';
  if (name === 'statemachine') {
    src = join(dir, 'statemachine.c');
    writeFileSync(src, stateMachineSource(states ?? 3000));
    opt = '-O1';
  }
  execFileSync('riscv64-unknown-elf-gcc', ['-march=rv32imac', '-mabi=ilp32', opt, '-nostdlib', '-static', '-isystem', `${PICOLIBC}/include`,
    `-DSCALE=${scale}`, '-o', out, join(here, 'start.S'), join(here, 'linux.c'), src, `${LIB}/libc.a`, `${LIB}/libm.a`, '-lgcc', `${LIB}/libc.a`], { stdio: 'pipe' });
  return out;
}
