/**
 * Built-in workloads: RV32 assembly programs in workloads/src (each assembled together with
 * workloads/lib.s), shipped as ELFs in workloads/bin so nothing needs a cross-compiler at run
 * time. `npm run workloads` rebuilds the ELFs; a test checks that the committed ones match.
 * A workload runs one or more of these images as the processes of a VM.
 */
import { readFileSync } from 'node:fs';
import { assemble } from '../isa/assembler.js';

/** The package root (this file is src/runtime/*.ts or dist/runtime/*.js). */
const ROOT = new URL('../../', import.meta.url);

export interface BuiltinImage {
  name: string;
  description: string;
  /** Uses hvsim's own syscalls, so qemu-riscv32 cannot be its oracle: why. */
  hvsimOnly?: string;
}

export interface Workload {
  name: string;
  description: string;
  vcpus: number;
  processes: Array<{ image: string; argv: string[] }>;
}

export const BUILTIN_IMAGES: readonly BuiltinImage[] = [
  { name: 'hello', description: 'prints a greeting and exits 0' },
  { name: 'cpu', description: 'CPU-bound: bitwise CRC-32 over a 16 KiB buffer, argv[1] rounds (default 8); almost no syscalls' },
  { name: 'syscalls', description: 'syscall-heavy: argv[1] iterations (default 2000) of getpid, clock_gettime64 and sched_yield with ALU work between' },
  { name: 'console', description: 'console-bound: argv[1] numbered lines (default 500), two writes each (one doorbell MMIO exit per write)' },
  { name: 'memtouch', description: 'memory toucher: maps argv[1] MiB (default 8) and dirties every 64-byte line argv[2] times (default 4), sleeping argv[3] ms (default 0) after the first pass' },
  { name: 'pmcounter', description: 'technique 6 (hvsim only): argv[1] times (default 100) increments the privileged mode\'s protected counter through an SBI hypercall, checking it only grows; then a MAC under the sealed key and a read of the key outside the mode (faults, reads ffffffff)',
    hvsimOnly: 'syscalls 500-502 are hvsim\'s privileged-mode calls (technique 6); qemu-riscv32 returns -ENOSYS for them' },
];

export const WORKLOADS: readonly Workload[] = [
  ...BUILTIN_IMAGES.map((i) => ({ name: i.name, description: i.description, vcpus: 1, processes: [{ image: i.name, argv: [i.name] }] })),
  {
    name: 'mix', description: 'multi-process mix on 2 vCPUs: cpu, syscalls, memtouch and hello at once',
    vcpus: 2,
    processes: [
      { image: 'cpu', argv: ['cpu', '4'] }, { image: 'syscalls', argv: ['syscalls', '1000'] },
      { image: 'memtouch', argv: ['memtouch', '4', '2'] }, { image: 'hello', argv: ['hello'] },
    ],
  },
  {
    name: 'privileged', description: 'technique 6 on 4 vCPUs: pmcounter on every vCPU at once, each entering the privileged mode 100 times',
    vcpus: 4,
    processes: [0, 1, 2, 3].map(() => ({ image: 'pmcounter', argv: ['pmcounter', '100'] })),
  },
];

/** The assembly source of a built-in image: its file followed by the shared library. */
export function builtinSource(name: string): string {
  return readFileSync(new URL(`workloads/src/${name}.s`, ROOT), 'utf8') + '\n' + readFileSync(new URL('workloads/lib.s', ROOT), 'utf8');
}

/** Assembles a built-in image from source (what `npm run workloads` writes to workloads/bin). */
export function buildBuiltin(name: string): Uint8Array {
  return assemble(builtinSource(name), { fileName: `workloads/src/${name}.s` }).elf;
}

/** The committed ELF of a built-in image. Raises: Error for an unknown name. */
export function builtinElf(name: string): Uint8Array {
  if (!BUILTIN_IMAGES.some((i) => i.name === name)) throw new Error(`unknown built-in image ${name}`);
  return new Uint8Array(readFileSync(new URL(`workloads/bin/${name}.elf`, ROOT)));
}
